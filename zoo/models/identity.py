"""What every loaded base gets before anyone uses it: a pad token, and its Hub id as its name."""

from __future__ import annotations


def settle(model, tokenizer, model_id: str):
    """Give ``tokenizer`` a pad token (decoder-only bases such as GPT-2 and Llama ship without one, and batches need
    it), tell the model which it is, and name the model by ``model_id``: the id, not the folder it was read from
    here. PEFT writes it as base_model_name_or_path, which plain PEFT users on other machines load, and which the zoo
    checks against zoo.json's base_model. PEFT reads the model's own name_or_path attribute (set from the config
    when the model was built), so both are set. Returns ``(model, tokenizer)``."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.config._name_or_path = model_id
    model.name_or_path = model_id
    return model, tokenizer
