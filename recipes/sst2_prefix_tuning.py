"""SST-2 sentiment with prefix tuning: 20 trained key/value prefixes in every layer."""
from peft import PrefixTuningConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="sst2-prefix-tuning",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    method=PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20),  # 20 tokens x 6 layers x 2 (k, v) x 384 = 92,160 + head
    train=TrainArgs(learning_rate=1e-2, epochs=2, batch_size=32, warmup_ratio=0.06),
)
