"""RTE entailment (sentence pairs), P-tuning on MiniLM-L6: 20 virtual tokens produced by a small MLP prompt encoder."""
from peft import PromptEncoderConfig

from zoo import Recipe, TrainArgs

# the prompt encoder (an MLP of width 128) reparametrizes the 20 tokens; the same large rate as prompt tuning.
# 2,241 examples / 16 = 141 steps/epoch; at most 10 epochs (1,410 steps), pairs run long, so 256 tokens.
# Generalize, not fit one validation split: the best epoch is kept by the accuracy and training stops after
# 3 epochs without improvement; warm-up and weight decay as the SST-2 recipes.
recipe = Recipe(
    name="rte-p-tuning",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/rte",
    method=PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=20, encoder_hidden_size=128),
    train=TrainArgs(learning_rate=0.03, epochs=10, batch_size=16, max_length=256, warmup_ratio=0.06,
                    weight_decay=0.01, early_stopping_patience=3),
)
