"""SST-2 sentiment with prompt tuning: 20 soft tokens prepended to the input, the encoder frozen."""
from peft import PromptTuningConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="sst2-prompt-tuning",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    method=PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20),  # 20 x 384 = 7,680 weights + head
    # soft prompts want a large learning rate (0.03 in the IMDB report; 3e-2 here too)
    train=TrainArgs(learning_rate=3e-2, epochs=2, batch_size=32, warmup_ratio=0.06),
)
