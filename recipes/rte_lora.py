"""RTE entailment (sentence pairs) with LoRA on MiniLM-L6; validation carved from train (10 %, fixed seed)."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="rte-lora",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/rte",
    method=LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "key", "value", "dense"]),
    # 2,241 pairs / 16 = 141 steps/epoch; pairs run long, so 256 tokens.
    train=TrainArgs(learning_rate=5e-4, epochs=10, batch_size=16, max_length=256, warmup_ratio=0.06,
                    early_stopping_patience=3),
)
