"""SST-2 sentiment, zero-shot prompting of SmolLM2-135M-Instruct: no training, a baseline row."""
from zoo import GenerationArgs, InContext, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="sst2-zero-shot-icl",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    task="glue/sst2",
    method=InContext(),
    # An expert persona, as the prompting report compared, is one flag away:
    # --set "prompt.system=You are an expert film critic."
    prompt=PromptFormat(template="Is the sentiment of this movie review positive or negative? Answer with one word.\n\n"
                                 "Review: {text}"),
    verbalizer={"negative": ["negative"], "positive": ["positive"]},
    # SmolLM2 often answers in a sentence ("The sentiment of this review is negative."): 16 new tokens
    # leave room for that; the verbalizer takes the first label word. All 872 validation sentences are answered.
    generation=GenerationArgs(max_new_tokens=16),
    train=TrainArgs(eval_batch_size=16, max_length=256, max_generate_samples=1000),
)
