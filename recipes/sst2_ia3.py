"""SST-2 sentiment with IA3: learned rescaling of keys, values and feed-forward activations."""
from peft import IA3Config

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="sst2-ia3",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    # IA3 vectors on key/value and the feed-forward output (the paper's choice): ~10k weights + head.
    method=IA3Config(task_type="SEQ_CLS", target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"]),
    train=TrainArgs(learning_rate=3e-3, epochs=2, batch_size=32, warmup_ratio=0.06),
)
