"""SST-2 sentiment, 3-shot prompting of SmolLM2-135M-Instruct (three solved training reviews first)."""
from zoo import GenerationArgs, InContext, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="sst2-3-shot-icl",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    task="glue/sst2",
    method=InContext(),
    # The three examples are drawn from train with the recipe's seed and published in zoo.json;
    # with the chat template they are earlier user/assistant turns.
    prompt=PromptFormat(template="Is the sentiment of this movie review positive or negative? Answer with one word.\n\n"
                                 "Review: {text}", shots=3),
    verbalizer={"negative": ["negative"], "positive": ["positive"]},
    generation=GenerationArgs(max_new_tokens=16),
    train=TrainArgs(eval_batch_size=16, max_length=512, max_generate_samples=1000),
)
