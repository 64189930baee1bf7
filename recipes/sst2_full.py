"""SST-2 sentiment, full fine-tuning of MiniLM-L6: the quality ceiling the adapters are measured against."""
from zoo import FullFineTuning, Recipe, TrainArgs

recipe = Recipe(
    name="sst2-full",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    method=FullFineTuning(),
    # every one of the 22.7M weights moves, so a small learning rate: 67,349 / 32 = 2,105 steps/epoch.
    train=TrainArgs(learning_rate=5e-5, epochs=2, batch_size=32, warmup_ratio=0.06, weight_decay=0.01),
)
