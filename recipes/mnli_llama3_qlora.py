"""MNLI with QLoRA on Llama-3-8B and a classification head, as in the NLI report (needs the Hub and a CUDA GPU)."""
from peft import LoraConfig
from transformers import BitsAndBytesConfig

from zoo import Recipe, TrainArgs

recipe = Recipe(
    name="mnli-llama3-qlora",
    base_model="meta-llama/Meta-Llama-3-8B",
    task="glue/mnli",
    # The report's settings: r=64, alpha=32, dropout 0.05 on the attention projections, plus the linear
    # `score` head over the last token (LlamaForSequenceClassification), trained in full precision.
    method=LoraConfig(task_type="SEQ_CLS", r=64, lora_alpha=32, lora_dropout=0.05,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    quantization=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype="bfloat16"),
    # 393k pairs is days on one GPU: a 20k sample, batch 8 x 4 accumulation = 625 steps.
    train=TrainArgs(learning_rate=1e-4, epochs=1, batch_size=8, gradient_accumulation_steps=4, max_length=256,
                    max_train_samples=20_000, warmup_ratio=0.03),
)
