"""SST-2 sentiment, prompt tuning on MiniLM-L6 swept over the training-sample budget N and the virtual tokens V, as the LLaMA-2 IMDB report swept them."""
from peft import PromptTuningConfig

from zoo import Recipe, Sweep, TrainArgs

# A sweep: one adapter per grid point (4 budgets x 3 prompt lengths = 12), named sst2-budget-01-prompt-tuning
# ... sst2-budget-12-prompt-tuning, each with its N and V in zoo.json and on its card; `zoo report` draws the
# validation accuracy as an N x V heat map. The report's settings: 2 epochs at learning rate 0.03.
# Points cost 2 x N examples: 1,000 to 8,000, i.e. 31 to 250 steps of 32, a minute or less each on 2 cores.
# The N samples are drawn from train with the recipe's seed, so a larger budget holds the smaller ones' examples.
recipe = Sweep(
    Recipe(
        name="sst2-budget-prompt-tuning",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        task="glue/sst2",
        method=PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20),
        train=TrainArgs(learning_rate=3e-2, epochs=2, batch_size=32, max_length=64, warmup_ratio=0.06),
    ),
    grid={"train.max_train_samples": [500, 1000, 2000, 4000], "method.num_virtual_tokens": [5, 10, 20]},
)
