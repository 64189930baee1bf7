"""MNLI (3-way NLI) with LoRA r=8 on roberta-large, as in the NLI homework setting (3 % of train)."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="mnli-lora",
    base_model="FacebookAI/roberta-large",
    task="glue/mnli",
    method=LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"]),
    # homework: same training settings as full fine-tuning; 3 % of 392,702 = 11,781 ex / 4 = 2,945 steps.
    train=TrainArgs(learning_rate=2e-5, epochs=1, batch_size=4, max_train_samples=11_781, max_length=256),
)
