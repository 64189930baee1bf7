"""SST-2 sentiment with LoRA on MiniLM-L6: the zoo's walking example, trains on a laptop CPU."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="sst2-lora",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    # r=16 on every attention and feed-forward projection: 6 layers x 6 matrices; ~0.6M + head.
    method=LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "key", "value", "dense"]),
    # 67,349 ex / 32 = 2,105 steps; one epoch is enough at this learning rate.
    train=TrainArgs(learning_rate=1e-3, epochs=1, batch_size=32, warmup_ratio=0.06, weight_decay=0.01),
)
