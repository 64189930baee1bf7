"""IMDB sentiment with LoRA on Llama-2-7B in the Alpaca prompt format, as in the IMDB report (needs the Hub and a GPU)."""
from peft import LoraConfig

from zoo import ALPACA, GenerationArgs, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="imdb-lora",
    base_model="meta-llama/Llama-2-7b-hf",
    task="stanfordnlp/imdb",
    # The Stanford Alpaca format with a fixed instruction; the review is the input, the label word the response.
    prompt=PromptFormat(template=ALPACA.replace("{instruction}", "Classify the sentiment of this movie review as "
                                                "positive or negative.").replace("{input}", "{text}"), chat=False),
    # The report's settings: r=8, alpha=16, dropout 0.1 on q_proj and v_proj: 4.2M trainable weights.
    method=LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]),
    # lr 5e-4 (the report's constant schedule is approximated by no warmup); 22.5k train / 4 = 5.6k steps.
    train=TrainArgs(learning_rate=5e-4, epochs=1, batch_size=4, eval_batch_size=8, max_length=512,
                    max_generate_samples=2000),
    generation=GenerationArgs(max_new_tokens=3),
)
