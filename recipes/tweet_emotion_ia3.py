"""TweetEval emotion (anger, joy, optimism, sadness), IA3 on MiniLM-L6: learned rescaling of keys, values and feed-forward activations."""
from peft import IA3Config

from zoo import Recipe, TrainArgs

# IA3 vectors on key/value and the feed-forward output (the paper's choice, as SST-2's): ~10k weights + head;
# rescaling vectors need a larger rate than LoRA.
# 3,257 examples / 16 = 204 steps/epoch; at most 10 epochs (2,040 steps), tweets are short: 128 tokens hold all of them.
# The labels are skewed (anger 1,400 ... optimism 294) and the metric is macro-F1: each class's loss is
# weighted by n / (4 x its count). Generalize, not fit one validation split: the best epoch is kept by the official macro-F1 and training stops after
# 3 epochs without improvement; warm-up and weight decay as the SST-2 recipes.
recipe = Recipe(
    name="tweet-emotion-ia3",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/emotion",
    method=IA3Config(task_type="SEQ_CLS", target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"]),
    train=TrainArgs(learning_rate=0.003, epochs=10, batch_size=16, max_length=128, warmup_ratio=0.06,
                    weight_decay=0.01, early_stopping_patience=3,
                    class_weights="balanced"),
)
