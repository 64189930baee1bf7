"""What a method is, in one record: how it trains, what it saves, how it is served and described.

Each module of ``zoo.methods`` defines one (or two: QLoRA beside LoRA, P-tuning beside prompt tuning)
:class:`Method`, and ``zoo.methods.METHODS`` lists them. Everything else that depends on the method
(training, the registry's reader, the stand-alone loader, the card, the demo, ``zoo.testing``) asks
this record instead of keeping a table of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from zoo.artifact.card import MethodText


def any_value(value) -> bool:
    """An adapter_config.json field whose value does not change what the registry computes."""
    return True


def is_falsy(value) -> bool:
    """A feature flag that must be off (False, None, empty) for the registry to serve the adapter."""
    return not value


@dataclass(frozen=True)
class Method:
    """One fine-tuning method of the zoo (see the module docstring)."""

    name: str                                # zoo.json "method"; recipes are named <task>-<name>
    title: str                               # how cards, `zoo list` and the demo name it
    summary: str                             # one line: what it trains
    config: str                              # the recipe's config class: PEFT's own, or the zoo's baseline
    prepare: Callable                        # (model, config, task_type) -> the model the Trainer trains
    save: Callable                           # (model, config, folder, tokenizer) -> weights file written (None: none)
    load_alone: Callable                     # (resolved base, folder, record, dtype) -> (model, tokenizer)
    peft_type: Optional[str] = None          # adapter_config.json "peft_type"; None: not a PEFT adapter
    weights: Optional[str] = None            # the weights file of a published folder; None: no weights
    read: Optional[Callable] = None          # (state, record, layout, where, folder) -> AdapterWeights; None:
                                             # not served on the shared base (a model of its own, via load_alone)
    served_fields: Mapping[str, Callable] = field(default_factory=dict)  # adapter_config.json field -> test:
                                             # the configurations the registry's routing implements
    quantized: bool = False                  # trained over a 4-bit base (QLoRA)
    library: str = "peft"                    # the card's library_name
    usage: Callable[[bool], str] = lambda causal: ""  # the card's "without adapter-zoo" section (Jinja over m)
    defaults: Callable[..., object] = None   # (task_type) -> a small config, for zoo.testing and the demo's tests

    @property
    def shares_base(self) -> bool:
        """Served by the registry on the one shared base (else loaded as a model of its own)."""
        return self.read is not None

    def text(self, causal: bool) -> MethodText:
        """What a card says about this method."""
        return MethodText(title=self.title, summary=self.summary, library=self.library, usage=self.usage(causal))
