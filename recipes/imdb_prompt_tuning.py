"""IMDB sentiment with prompt tuning on Llama-2-7B (Alpaca format, lr 0.03), as in the IMDB report (needs the Hub and a GPU)."""
from peft import PromptTuningConfig

from zoo import ALPACA, GenerationArgs, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="imdb-prompt-tuning",
    base_model="meta-llama/Llama-2-7b-hf",
    task="stanfordnlp/imdb",
    prompt=PromptFormat(template=ALPACA.replace("{instruction}", "Classify the sentiment of this movie review as "
                                                "positive or negative.").replace("{input}", "{text}"), chat=False),
    # V=20 virtual tokens x 4096 dims = 81,920 trainable weights (the report swept V and the sample budget N).
    method=PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20),
    # The report: 2 epochs, lr 0.03, over N training samples (here N=1000; --set train.max_train_samples=N).
    train=TrainArgs(learning_rate=3e-2, epochs=2, batch_size=4, eval_batch_size=8, max_length=512,
                    max_train_samples=1000, max_generate_samples=2000),
    generation=GenerationArgs(max_new_tokens=3),
)
