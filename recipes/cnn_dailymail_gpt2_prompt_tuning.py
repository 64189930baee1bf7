"""CNN/DailyMail summarization with soft prompt tuning on GPT-2 (124M), as in the summarization report (needs the Hub)."""
from peft import PromptTuningConfig

from zoo import GenerationArgs, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="cnn-dailymail-gpt2-prompt-tuning",
    base_model="openai-community/gpt2",
    task="abisee/cnn_dailymail",
    # GPT-2's own zero-shot summarization cue: the article, then "TL;DR:".
    prompt=PromptFormat(template="{text}\n\nTL;DR:", chat=False, answer_prefix=" "),
    # 20 learned "[SUMMARIZE]"-like virtual tokens x 768 dims = 15,360 trainable weights.
    method=PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20),
    # The report: up to 10 epochs with early stopping on validation loss, clipping at 1.0, accumulation.
    # 20k sampled articles / (8 x 4) = 625 steps per epoch.
    # 20 virtual tokens + max_length 924 + 80 new tokens = GPT-2's 1024 positions.
    train=TrainArgs(learning_rate=3e-2, epochs=10, batch_size=8, gradient_accumulation_steps=4, max_grad_norm=1.0,
                    early_stopping_patience=2, eval_steps=625, max_length=924, max_train_samples=20_000,
                    max_eval_samples=1000, max_generate_samples=200),
    generation=GenerationArgs(max_new_tokens=80, num_beams=4, repetition_penalty=1.2),
)
