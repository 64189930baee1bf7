"""TweetEval emotion (anger, joy, optimism, sadness), full fine-tuning of MiniLM-L6: the ceiling the adapters are measured against."""
from zoo import FullFineTuning, Recipe, TrainArgs

# every one of the 22.7M weights moves, so a small learning rate (as SST-2's); weight decay against
# overfitting 3,257 examples.
# 3,257 examples / 16 = 204 steps/epoch; at most 10 epochs (2,040 steps), tweets are short: 128 tokens hold all of them.
# The labels are skewed (anger 1,400 ... optimism 294) and the metric is macro-F1: each class's loss is
# weighted by n / (4 x its count). Generalize, not fit one validation split: the best epoch is kept by the official macro-F1 and training stops after
# 3 epochs without improvement; warm-up and weight decay as the SST-2 recipes.
recipe = Recipe(
    name="tweet-emotion-full",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/emotion",
    method=FullFineTuning(),
    train=TrainArgs(learning_rate=5e-05, epochs=10, batch_size=16, max_length=128, warmup_ratio=0.06,
                    weight_decay=0.01, early_stopping_patience=3,
                    class_weights="balanced"),
)
