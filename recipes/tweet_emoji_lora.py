"""TweetEval emoji prediction (20 emoji) with LoRA on MiniLM-L6, after the TweetEval LoRA report (r=8, alpha 32, query/value); official metric: macro-F1."""
from peft import LoraConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="tweet-emoji-lora",
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    task="tweet_eval/emoji",
    # The report's r=8 on query/value reached macro-F1 0.13 after one epoch, under FastText's 0.258: 20 classes
    # need more capacity, so rank 16 on every attention and feed-forward projection (as sst2-lora), ~0.6M weights.
    method=LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.1,
                      target_modules=["query", "key", "value", "dense"]),
    # 45,000 tweets / 32 = 1,407 steps/epoch; at most 6 epochs (8,442 steps, ~40 min on 2 cores), the best kept by
    # macro-F1 (patience 2). With 3 epochs validation macro-F1 was still rising at the end (0.184, 0.207, 0.239, the
    # learning rate decayed to 0). The labels are skewed (red heart 9,204 tweets, the rarest 934) and macro-F1 counts
    # each emoji the same, so each class's loss is weighted by n / (20 x its count). Full fine-tuning of the base for
    # 3 epochs (tweet_emoji_full.py) reaches 0.2381, level with this LoRA at 3 epochs: MiniLM-L6, not the adapter,
    # limits the ranking, and no training setting tried (rank 32, 8 epochs, LoRA on the word embeddings, no class
    # weights) passed 0.2434, under FastText's 25.8.
    # What the weighted loss leaves wrong is each emoji's share of the predictions: the red heart, 21 % of the
    # validation tweets, got 2 % of the predictions. tune_offsets moves each class's logit by an offset tuned for
    # macro-F1 on 10,000 training tweets (validation untouched; the offsets live in the head's bias). On the
    # 0.2434 adapter: 0.2434 -> 0.2734 on validation; tuned on one half of validation and scored on the other, the
    # gain was +0.019 +- 0.006 (6 splits), so it is not an artefact of one split. Offsets are a decision rule for
    # one metric: they trade accuracy on the common emoji for recall on the rare ones, which is what macro-F1 asks.
    # This recipe, two seeds: 42 (published) 0.2480 -> 0.2702, 43 (--set seed=43) 0.2440 -> 0.2780 with the offsets.
    train=TrainArgs(learning_rate=1e-3, epochs=6, batch_size=32, max_length=64, warmup_ratio=0.06, weight_decay=0.01,
                    early_stopping_patience=2, class_weights="balanced",
                    tune_offsets=True),
)
