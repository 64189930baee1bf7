"""RTE entailment (sentence pairs), prefix tuning on MiniLM-L6: 20 trained key/value prefixes in every layer."""
from peft import PrefixTuningConfig

from zoo import Recipe, TrainArgs

# 20 tokens x 6 layers x 2 (k, v) x 384 = 92,160 + head; a rate between LoRA's and prompt tuning's.
# 2,241 examples / 16 = 141 steps/epoch; at most 10 epochs (1,410 steps), pairs run long, so 256 tokens.
# Generalize, not fit one validation split: the best epoch is kept by the accuracy and training stops after
# 3 epochs without improvement; warm-up and weight decay as the SST-2 recipes.
recipe = Recipe(
    name="rte-prefix-tuning",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/rte",
    method=PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20),
    train=TrainArgs(learning_rate=0.01, epochs=10, batch_size=16, max_length=256, warmup_ratio=0.06,
                    weight_decay=0.01, early_stopping_patience=3),
)
