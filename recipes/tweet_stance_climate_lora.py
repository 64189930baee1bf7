"""TweetEval stance on climate change (none / against / favor) with LoRA on MiniLM-L6, after the TweetEval LoRA report (r=8, alpha 32, query/value); official metric: mean F1 of against and favor."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="tweet-stance-climate-lora",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/stance_climate",
    # the report's LoRA: rank 8 on the attention query and value projections, PEFT's defaults otherwise
    method=LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "value"]),
    # 355 tweets / 16 = 23 steps/epoch; 10 epochs; LoRA wants a larger rate than full fine-tuning's 5e-5
    train=TrainArgs(learning_rate=1e-3, epochs=10, batch_size=16, warmup_ratio=0.06, weight_decay=0.01),
)
