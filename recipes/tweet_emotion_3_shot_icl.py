"""TweetEval emotion, 3-shot prompting (three solved training tweets first) of SmolLM2-135M-Instruct: no training, the prompting baseline row."""
from zoo import GenerationArgs, InContext, PromptFormat, Recipe, TrainArgs

recipe = Recipe(
    name="tweet-emotion-3-shot-icl",
    base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
    task="tweet_eval/emotion",
    method=InContext(),
    # The four labels named in the question, one word asked for; the verbalizer counts the first label word of
    # the answer (also its common synonyms: a small model says "happy" for joy, "sad" for sadness).
    prompt=PromptFormat(template="Which emotion does this tweet express: anger, joy, optimism or sadness? "
                                 "Answer with one word.\n\nTweet: {text}", shots=3),
    verbalizer={"anger": ["anger", "angry"], "joy": ["joy", "happy", "happiness"],
                "optimism": ["optimism", "optimistic", "hope"], "sadness": ["sadness", "sad"]},
    # 16 new tokens leave room for a sentence ("The emotion is joy."); all 374 validation tweets are answered.
    generation=GenerationArgs(max_new_tokens=16),
    train=TrainArgs(eval_batch_size=16, max_length=512, max_generate_samples=1000),
)
