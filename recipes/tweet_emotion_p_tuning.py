"""TweetEval emotion (anger, joy, optimism, sadness), P-tuning on MiniLM-L6: 20 virtual tokens produced by a small MLP prompt encoder."""
from peft import PromptEncoderConfig

from zoo import Recipe, TrainArgs

# the prompt encoder (an MLP of width 128) reparametrizes the 20 tokens; the same large rate as prompt tuning.
# 3,257 examples / 16 = 204 steps/epoch; at most 10 epochs (2,040 steps), tweets are short: 128 tokens hold all of them.
# The labels are skewed (anger 1,400 ... optimism 294) and the metric is macro-F1: each class's loss is
# weighted by n / (4 x its count). Generalize, not fit one validation split: the best epoch is kept by the official macro-F1 and training stops after
# 3 epochs without improvement; warm-up and weight decay as the SST-2 recipes.
recipe = Recipe(
    name="tweet-emotion-p-tuning",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/emotion",
    method=PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=20, encoder_hidden_size=128),
    train=TrainArgs(learning_rate=0.03, epochs=10, batch_size=16, max_length=128, warmup_ratio=0.06,
                    weight_decay=0.01, early_stopping_patience=3,
                    class_weights="balanced"),
)
