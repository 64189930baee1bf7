"""TweetEval offensive language (offensive / not) with LoRA on MiniLM-L6, after the TweetEval LoRA report (r=8, alpha 32, query/value); official metric: macro-F1."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="tweet-offensive-lora",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/offensive",
    # the report's LoRA: rank 8 on the attention query and value projections, PEFT's defaults otherwise
    method=LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "value"]),
    # 11,916 tweets / 16 = 745 steps/epoch; at most 3 epochs; LoRA wants a larger rate than full fine-tuning's 5e-5.
    # Two thirds of the tweets are not offensive and the metric is macro-F1: each class's loss is weighted by
    # n / (2 x its count); the best epoch is kept by macro-F1 (patience 1).
    train=TrainArgs(learning_rate=1e-3, epochs=3, batch_size=16, warmup_ratio=0.06, weight_decay=0.01,
                    early_stopping_patience=1, class_weights="balanced"),
)
