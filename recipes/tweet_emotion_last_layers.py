"""TweetEval emotion (anger, joy, optimism, sadness), training only the classifier head plus MiniLM's top 2 of 6 layers (a baseline)."""
from zoo import LastLayers, Recipe, TrainArgs

# 2 x 1.8M layer weights + pooler + head: between full fine-tuning and the adapters.
# 3,257 examples / 16 = 204 steps/epoch; at most 10 epochs (2,040 steps), tweets are short: 128 tokens hold all of them.
# The labels are skewed (anger 1,400 ... optimism 294) and the metric is macro-F1: each class's loss is
# weighted by n / (4 x its count). Generalize, not fit one validation split: the best epoch is kept by the official macro-F1 and training stops after
# 3 epochs without improvement; warm-up and weight decay as the SST-2 recipes.
recipe = Recipe(
    name="tweet-emotion-last-layers",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/emotion",
    method=LastLayers(num_layers=2),
    train=TrainArgs(learning_rate=0.0001, epochs=10, batch_size=16, max_length=128, warmup_ratio=0.06,
                    weight_decay=0.01, early_stopping_patience=3,
                    class_weights="balanced"),
)
