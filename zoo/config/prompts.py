"""Prompts for causal language models: templates, chat templates, k-shot examples, verbalizers.

A causal adapter's ``zoo.json`` carries its ``prompt`` (a ``PromptFormat`` as a dict, plus the
k-shot ``examples`` drawn at training time) so that whoever loads it builds exactly the prompts it
was trained or measured with. Inputs are dicts of the format's fields, or a string (the first
field), or a tuple (the first fields in order).

Example:
    >>> from zoo.config.prompts import PromptFormat, ALPACA
    >>> fmt = PromptFormat(template="Review: {text}\\nSentiment:", chat=False)
    >>> render(fmt.to_dict(), None, {"text": "a fine film"})
    'Review: a fine film\\nSentiment:'
    >>> verbalize(label_words(["negative", "positive"]), " Positive, clearly.")
    'positive'
"""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass, field
from typing import Optional

from zoo.errors import BadInput, RecipeError

# The Stanford Alpaca prompt (tatsu-lab/stanford_alpaca), with and without an input.
ALPACA = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


@dataclass
class PromptFormat:
    """How an example becomes the text a causal LM reads (and, for training, what it must answer)."""

    template: str = field(metadata={"help": "str.format template over the input fields, e.g. 'Review: {text}\\nSentiment:'"})
    template_no_input: Optional[str] = field(
        default=None, metadata={"help": "template used when the optional field 'input' is empty (Alpaca)"})
    chat: bool = field(default=True, metadata={"help": "wrap in the tokenizer's chat template when it has one"})
    system: Optional[str] = field(default=None, metadata={"help": "a system / persona instruction put first"})
    shots: int = field(default=0, metadata={"help": "k-shot: solved training examples shown before the input"})
    answer_prefix: str = field(default="", metadata={"help": "text put before the answer, e.g. ' ' after 'Sentiment:'"})

    def __post_init__(self):
        if not isinstance(self.template, str) or not self.template.strip():
            raise RecipeError("prompt.template must be a non-empty str.format template, e.g. 'Review: {text}'")
        for name in ("template", "template_no_input"):
            value = getattr(self, name)
            if value is not None:
                try:
                    fields_of(value)
                except ValueError as e:
                    raise RecipeError(f"prompt.{name} is not a valid format string: {e}") from None
        if self.template_no_input is not None:  # used when the input is empty: its fields must be the template's
            extra = sorted(set(fields_of(self.template_no_input)) - set(fields_of(self.template)))
            if extra:
                raise RecipeError(f"prompt.template_no_input uses field(s) {extra} that prompt.template does not; it "
                                  "is the template without the input field, so every input fills it too")
        if not isinstance(self.shots, int) or self.shots < 0:
            raise RecipeError(f"prompt.shots must be an integer >= 0, got {self.shots!r}")

    @property
    def fields(self) -> list[str]:
        return fields_of(self.template)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def fields_of(template: str) -> list[str]:
    """The named fields of a format string, in order: ``'{instruction} {input}'`` -> ['instruction', 'input']."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"field {{{name}}} must be a plain name")
        if spec or conversion:  # '{text:>999999999}' would make a gigabyte per input; '{text!r}' quotes it
            raise ValueError(f"field {{{name}}} must be a plain name, without a conversion or format spec")
        if name not in names:
            names.append(name)
    return names


MAX_PROMPT_CHARS = 20_000  # a template, a system text or an example's field; prompts are cut to max_length anyway
MAX_EXAMPLES = 64          # k-shot examples shown before every input
_PROMPT_KEYS = {f.name: f for f in dataclasses.fields(PromptFormat)}


def prompt_problem(fmt, examples) -> Optional[str]:
    """What is wrong with a stranger's prompt format (``PromptFormat`` as a dict) and k-shot ``examples``, as an
    adapter's zoo.json carries them; None: nothing. Both are formatted for every input of the adapter."""
    if not isinstance(fmt, dict):
        return f"prompt must be an object (a PromptFormat) when examples are given, got {type(fmt).__name__}"
    unknown = sorted(set(fmt) - set(_PROMPT_KEYS))
    if unknown:
        return f"prompt has unknown keys {unknown[:4]}"
    for key in ("template", "template_no_input", "system", "answer_prefix"):
        value = fmt.get(key)
        if key in fmt and not (isinstance(value, str) or value is None and key not in ("template", "answer_prefix")):
            return f"prompt.{key} must be text, got {type(value).__name__}"
        if isinstance(value, str) and len(value) > MAX_PROMPT_CHARS:
            return f"prompt.{key} is {len(value):,} characters; at most {MAX_PROMPT_CHARS:,}"
    if "chat" in fmt and not isinstance(fmt["chat"], bool):
        return "prompt.chat must be true or false"
    if "shots" in fmt and (type(fmt["shots"]) is not int or not 0 <= fmt["shots"] <= MAX_EXAMPLES):
        return f"prompt.shots must be an integer from 0 to {MAX_EXAMPLES}"
    try:
        names = PromptFormat(**fmt).fields
    except (RecipeError, TypeError) as e:
        return str(e)
    if len(examples) > MAX_EXAMPLES:
        return f"{len(examples)} examples; at most {MAX_EXAMPLES}"
    # each example is formatted as an input: 'input' may be left out only where template_no_input replaces it
    need = {n for n in names if n != "input" or not fmt.get("template_no_input")} | {"output"}
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not need <= set(ex):
            return f"examples[{i}] must hold the prompt's fields {sorted(need)}"
        if not all(isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_PROMPT_CHARS for k, v in ex.items()):
            return f"examples[{i}] must map field names to texts of at most {MAX_PROMPT_CHARS:,} characters"
    return None


def as_fields(fmt: dict, item) -> dict:
    """One input as a dict of the template's fields (a str is the first field, a tuple the first ones)."""
    names = fields_of(fmt["template"])
    if isinstance(item, dict):
        values = dict(item)
    elif isinstance(item, str):
        values = {names[0]: item}
    elif isinstance(item, (tuple, list)) and all(isinstance(x, str) for x in item) and 0 < len(item) <= len(names):
        values = dict(zip(names, item))
    else:
        raise BadInput(f"expected a string, a tuple of strings or a dict with {names}, got {type(item).__name__}")
    missing = [n for n in names if n != "input" and not isinstance(values.get(n), str)]
    if missing:
        raise BadInput(f"input lacks field(s) {missing}; this prompt needs {names}")
    values.setdefault("input", "")
    return values


def _user_text(fmt: dict, values: dict) -> str:
    template = fmt["template"]
    if fmt.get("template_no_input") and not str(values.get("input", "")).strip():
        template = fmt["template_no_input"]
    return template.format(**{k: v for k, v in values.items()})


def uses_chat(fmt: dict, tokenizer) -> bool:
    return bool(fmt.get("chat")) and tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def render(fmt: dict, tokenizer, item, examples: list[dict] = ()) -> str:
    """The full prompt for ``item``: system text, k solved ``examples`` ({fields..., 'output'}), then the input."""
    values = as_fields(fmt, item)
    prefix = fmt.get("answer_prefix", "")
    if uses_chat(fmt, tokenizer):
        messages = [{"role": "system", "content": fmt["system"]}] if fmt.get("system") else []
        for ex in examples:
            messages += [{"role": "user", "content": _user_text(fmt, ex)},
                         {"role": "assistant", "content": prefix + ex["output"]}]
        messages.append({"role": "user", "content": _user_text(fmt, values)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefix
    parts = [fmt["system"]] if fmt.get("system") else []
    parts += [_user_text(fmt, ex) + prefix + ex["output"] for ex in examples]
    parts.append(_user_text(fmt, values) + prefix)
    return "\n\n".join(parts)


def render_inputs(fmt: dict | None, examples, tokenizer, inputs) -> list[str]:
    """Prompts for a causal adapter's inputs, as it was trained: its prompt format ``fmt`` (None: the
    inputs are prompts already) and its k-shot ``examples``."""
    if not fmt:
        return [_plain(i, item) for i, item in enumerate(inputs)]
    out = []
    for i, item in enumerate(inputs):
        try:
            out.append(render(fmt, tokenizer, item, list(examples)))
        except BadInput as e:
            raise BadInput(f"input {i}: {e}") from None
    return out


def _plain(i: int, item) -> str:
    if not isinstance(item, str):
        raise BadInput(f"input {i}: expected a string prompt, got {type(item).__name__}")
    return item


def label_words(labels, verbalizer: dict | None = None) -> dict[str, list[str]]:
    """label -> the words that count as that label in a generation (the label's own name by default).

        >>> label_words(["very_bad", "good"], {"good": ["Great"]})
        {'very_bad': ['very bad', 'very_bad'], 'good': ['great']}
    """
    words = verbalizer or {}
    return {label: [w.lower() for w in words.get(label, [label.replace("_", " "), label])] for label in labels}


def verbalize(words: dict[str, list[str]], text: str) -> Optional[str]:
    """The label whose word (``label_words``) appears first in ``text`` (whole words, case-insensitive); None: no answer.

        >>> verbalize({"negative": ["negative"], "positive": ["positive"]}, "Positive, not negative.")
        'positive'
    """
    best = None
    low = text.lower()
    for label, options in words.items():
        for word in options:
            m = re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", low)
            if m and (best is None or m.start() < best[0] or (m.start() == best[0] and len(word) > best[2])):
                best = (m.start(), label, len(word))
    return best[1] if best else None


def answer(words: dict[str, list[str]], text: str) -> dict:
    """A generation read as a classification: ``{"label": name or None, "text": text, "no_answer": bool}``."""
    label = verbalize(words, text)
    return {"label": label, "text": text, "no_answer": label is None}
