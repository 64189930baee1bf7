"""TweetEval emotion (4 classes: anger, joy, optimism, sadness) with LoRA on MiniLM-L6, after the TweetEval LoRA report (r=8, alpha 32, query/value); official metric: macro-F1."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="tweet-emotion-lora",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/emotion",
    # the report's LoRA: rank 8 on the attention query and value projections, PEFT's defaults otherwise
    method=LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "value"]),
    # 3,257 tweets / 16 = 204 steps/epoch; at most 10 epochs; LoRA wants a larger rate than full fine-tuning's 5e-5.
    # The labels are skewed (anger 1,400, sadness 855, joy 708, optimism 294) and the metric is macro-F1, so each
    # class's loss is weighted by n / (4 x its count); the best epoch is kept by macro-F1, with patience 3.
    train=TrainArgs(learning_rate=1e-3, epochs=10, batch_size=16, warmup_ratio=0.06, weight_decay=0.01,
                    early_stopping_patience=3, class_weights="balanced"),
)
