"""RTE entailment (sentence pairs), training only the classifier head plus MiniLM's top 2 of 6 layers (a baseline)."""
from zoo import LastLayers, Recipe, TrainArgs

# 2 x 1.8M layer weights + pooler + head: between full fine-tuning and the adapters.
# 2,241 examples / 16 = 141 steps/epoch; at most 10 epochs (1,410 steps), pairs run long, so 256 tokens.
# Generalize, not fit one validation split: the best epoch is kept by the accuracy and training stops after
# 3 epochs without improvement; warm-up and weight decay as the SST-2 recipes.
recipe = Recipe(
    name="rte-last-layers",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/rte",
    method=LastLayers(num_layers=2),
    train=TrainArgs(learning_rate=0.0001, epochs=10, batch_size=16, max_length=256, warmup_ratio=0.06,
                    weight_decay=0.01, early_stopping_patience=3),
)
