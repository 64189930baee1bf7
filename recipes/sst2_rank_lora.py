"""SST-2 sentiment, LoRA on MiniLM-L6 swept over the rank r and the learning rate, on a 4,000-sentence budget."""
from peft import LoraConfig

from zoo import Recipe, Sweep, TrainArgs

# A sweep: rank 2, 8, 32 x learning rate 3e-4, 1e-3, 3e-3 = 9 adapters (sst2-rank-1-lora ... sst2-rank-9-lora);
# `zoo report` draws their validation accuracy as an r x learning-rate heat map. alpha stays 16 at every rank, as
# the LoRA paper's rank study kept it, so the update's scale alpha/r shrinks as r grows and the rate compensates.
# 4,000 sentences x 2 epochs / 32 = 250 steps per point, about a minute each on 2 cores.
recipe = Sweep(
    Recipe(
        name="sst2-rank-lora",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        task="glue/sst2",
        method=LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1,
                          target_modules=["query", "key", "value", "dense"]),
        train=TrainArgs(learning_rate=1e-3, epochs=2, batch_size=32, max_length=64, warmup_ratio=0.06,
                        weight_decay=0.01, max_train_samples=4000),
    ),
    grid={"method.r": [2, 8, 32], "train.learning_rate": [3e-4, 1e-3, 3e-3]},
)
