"""TweetEval irony (irony / non-irony) with LoRA on MiniLM-L6, after the TweetEval LoRA report (r=8, alpha 32, query/value); official metric: F1 of the irony class."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="tweet-irony-lora",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/irony",
    # the report's LoRA: rank 8 on the attention query and value projections, PEFT's defaults otherwise
    method=LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "value"]),
    # 2,862 tweets / 16 = 179 steps/epoch; 5 epochs; LoRA wants a larger rate than full fine-tuning's 5e-5
    train=TrainArgs(learning_rate=1e-3, epochs=5, batch_size=16, warmup_ratio=0.06, weight_decay=0.01),
)
