"""MNLI (3-way NLI), full fine-tuning of roberta-large (355M weights), as in the NLI homework (86.45 %)."""
from zoo import FullFineTuning, Recipe, TrainArgs

recipe = Recipe(
    name="mnli-full",
    base_model="FacebookAI/roberta-large",
    task="glue/mnli",
    method=FullFineTuning(),
    # homework: lr 2e-5, batch 4, 3 % of 392,702 = 11,781 ex / 4 = 2,945 steps; 2 h 10 min on its GPU.
    train=TrainArgs(learning_rate=2e-5, epochs=1, batch_size=4, max_train_samples=11_781, max_length=256),
)
