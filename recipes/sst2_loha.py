"""SST-2 sentiment with LoHa (PEFT's low-rank Hadamard product), the zoo's example of adding a method."""
from peft import LoHaConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="sst2-loha",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    # Two rank-8 pairs per layer, (W1a W1b) * (W2a W2b): 4 x 8 x 384 = 12k weights per query/value + head.
    method=LoHaConfig(task_type="SEQ_CLS", r=8, alpha=16, target_modules=["query", "value"]),
    train=TrainArgs(learning_rate=1e-3, epochs=2, batch_size=32, warmup_ratio=0.06),
)
