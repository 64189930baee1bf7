"""SST-2 sentiment, training only the classifier head plus MiniLM's top 2 of 6 layers."""
from zoo import LastLayers, Recipe, TrainArgs

recipe = Recipe(
    name="sst2-last-layers",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    method=LastLayers(num_layers=2),  # 2 x 1.8M layer weights + pooler + head
    train=TrainArgs(learning_rate=1e-4, epochs=2, batch_size=32, warmup_ratio=0.06, weight_decay=0.01),
)
