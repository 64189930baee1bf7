"""What a base model id means: one base may have two Hub ids.

The Hub moved its oldest models under organisations (``roberta-large`` is ``FacebookAI/roberta-large``,
``bert-base-uncased`` is ``google-bert/bert-base-uncased``, ``gpt2`` is ``openai-community/gpt2``...)
and answers for both ids. The zoo compares bases by identity, not by spelling: :func:`canonical_base`
gives the organisation form, recorded in zoo.json and cards and used for the local hub's folders, and
every place that takes a base (``zoo.load``, ``Zoo(...)``, ``zoo list --base``, the demo) accepts either
form. Offline, a built-in table of the legacy ids answers; with the Hub reachable, an id not in the
table is resolved by the Hub itself (one request per id and process).

    >>> canonical_base("roberta-large")
    'FacebookAI/roberta-large'
    >>> same_base("gpt2", "openai-community/gpt2"), same_base("gpt2", "gpt2-medium")
    (True, False)
    >>> canonical_base("sentence-transformers/all-MiniLM-L6-v2")
    'sentence-transformers/all-MiniLM-L6-v2'
"""

from __future__ import annotations

import functools
import os

from zoo.data.endpoint import hub_endpoint, hub_reachable

_ORGS = {  # organisation -> its legacy (unprefixed) Hub ids
    "FacebookAI": ("roberta-base", "roberta-large", "roberta-large-mnli", "roberta-base-openai-detector",
                   "roberta-large-openai-detector", "xlm-roberta-base", "xlm-roberta-large", "xlm-mlm-en-2048",
                   "xlm-roberta-large-finetuned-conll03-english"),
    "google-bert": ("bert-base-uncased", "bert-base-cased", "bert-large-uncased", "bert-large-cased",
                    "bert-base-multilingual-uncased", "bert-base-multilingual-cased", "bert-base-chinese",
                    "bert-base-german-cased", "bert-large-uncased-whole-word-masking",
                    "bert-large-cased-whole-word-masking", "bert-large-uncased-whole-word-masking-finetuned-squad",
                    "bert-large-cased-whole-word-masking-finetuned-squad", "bert-base-cased-finetuned-mrpc"),
    "distilbert": ("distilbert-base-uncased", "distilbert-base-cased", "distilbert-base-multilingual-cased",
                   "distilbert-base-uncased-finetuned-sst-2-english", "distilbert-base-uncased-distilled-squad",
                   "distilbert-base-cased-distilled-squad", "distilbert-base-german-cased", "distilroberta-base",
                   "distilgpt2"),
    "openai-community": ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "openai-gpt"),
    "google-t5": ("t5-small", "t5-base", "t5-large", "t5-3b", "t5-11b"),
    "albert": ("albert-base-v1", "albert-large-v1", "albert-xlarge-v1", "albert-xxlarge-v1", "albert-base-v2",
               "albert-large-v2", "albert-xlarge-v2", "albert-xxlarge-v2"),
    "xlnet": ("xlnet-base-cased", "xlnet-large-cased"),
    "almanach": ("camembert-base",),
    "Salesforce": ("ctrl",),
}
LEGACY_IDS: dict[str, str] = {old: f"{org}/{old}" for org, ids in _ORGS.items() for old in ids}


@functools.lru_cache(maxsize=256)
def _hub_id(model_id: str, endpoint: str) -> str | None:
    """The Hub's own name for ``model_id`` (it redirects legacy ids), or None when it does not say."""
    try:
        from huggingface_hub import model_info

        return model_info(model_id, endpoint=endpoint, timeout=5).id
    except Exception:  # noqa: BLE001  (any failure: keep the id as written; the table already answered)
        return None


def canonical_base(model_id: str) -> str:
    """The organisation form of a Hub model id; other ids (and local folders) unchanged."""
    if not isinstance(model_id, str):
        return model_id
    if model_id in LEGACY_IDS:
        return LEGACY_IDS[model_id]
    if "/" in model_id or os.path.isabs(model_id) or model_id.startswith(".") or not model_id:
        return model_id
    if hub_reachable():  # an unprefixed id the table does not know: ask the Hub once
        return _hub_id(model_id, hub_endpoint()) or model_id
    return model_id


def same_base(a: str, b: str) -> bool:
    """Two base ids name the same model (``roberta-large`` and ``FacebookAI/roberta-large`` do)."""
    return a == b or canonical_base(a) == canonical_base(b)


def legacy_ids(model_id: str) -> list[str]:
    """Every id of one base: the canonical one first, then its legacy spelling(s)."""
    canonical = canonical_base(model_id)
    return [canonical] + [old for old, new in LEGACY_IDS.items() if new == canonical and old != canonical]
