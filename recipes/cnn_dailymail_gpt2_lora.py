"""CNN/DailyMail summarization with LoRA on GPT-2 (124M), as in the summarization report (needs the Hub)."""
from peft import LoraConfig

from zoo import GenerationArgs, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="cnn-dailymail-gpt2-lora",
    base_model="openai-community/gpt2",
    task="abisee/cnn_dailymail",
    # GPT-2's own zero-shot summarization cue: the article, then "TL;DR:".
    prompt=PromptFormat(template="{text}\n\nTL;DR:", chat=False, answer_prefix=" "),
    # r=8 on the fused attention projection (GPT-2's Conv1D c_attn): 295k trainable weights.
    method=LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["c_attn"],
                      fan_in_fan_out=True),
    # The report: up to 10 epochs with early stopping on validation loss, clipping at 1.0, accumulation.
    # 20k sampled articles / (8 x 4) = 625 steps per epoch.
    # max_length 944 + 80 new tokens = GPT-2's 1024 positions (the report's 1024 left no room for the summary).
    train=TrainArgs(learning_rate=5e-4, epochs=10, batch_size=8, gradient_accumulation_steps=4, max_grad_norm=1.0,
                    early_stopping_patience=2, eval_steps=625, max_length=944, max_train_samples=20_000,
                    max_eval_samples=1000, max_generate_samples=200),
    generation=GenerationArgs(max_new_tokens=80, num_beams=4, repetition_penalty=1.2),
)
