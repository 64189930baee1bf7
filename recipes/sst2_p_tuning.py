"""SST-2 sentiment with P-tuning: 20 virtual tokens produced by a small MLP prompt encoder."""
from peft import PromptEncoderConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="sst2-p-tuning",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="glue/sst2",
    method=PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=20, encoder_hidden_size=128),
    # soft prompts want a large learning rate: on 10k examples 1e-3 stays at the majority class, 3e-2 learns.
    train=TrainArgs(learning_rate=3e-2, epochs=2, batch_size=32, warmup_ratio=0.06),
)
