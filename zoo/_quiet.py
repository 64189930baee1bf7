"""Library noise the zoo silences inside its own calls, and nowhere else.

``import zoo`` installs no warning or logging filter: a user's own code sees every warning their
libraries give. Within a zoo call (training, loading an adapter alone, generating with PEFT) these
known, harmless messages are filtered for the length of the call:

- PEFT still calls a transformers API deprecated in 5.x (``is_gradient_checkpointing``);
- datasets' ``Dataset.sort`` uses a pyarrow option deprecated in pyarrow 25 (``null_placement``);
- PEFT warns on every prompt-tuning ``generate`` step that position ids are not supported (the ids
  are rebuilt anyway);
- bitsandbytes logs, when PEFT first imports it, that an optional CPU inference kernel from the
  Hub's ``kernels`` package is missing (4-bit training works without it).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with quiet():
    ...         warnings.warn("Position ids are not supported for parameter efficient tuning")
    ...     warnings.warn("Position ids are not supported for parameter efficient tuning")
    >>> len(seen)   # silenced inside the zoo's call only
    1
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import warnings

_WARNINGS = (
    (".*is_gradient_checkpointing.*", FutureWarning),
    (".*null_placement.*", FutureWarning),
    ("Position ids are not supported for parameter efficient tuning", UserWarning),
)
_BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
_LOCK = threading.Lock()
_DEPTH = 0  # nested or concurrent zoo calls share one set of filters: added by the first, removed by the last
_ADDED: list = []  # the exact filter entries we inserted, removed by identity (a user's own stay untouched)


def _not_kernels_notice(record: logging.LogRecord) -> bool:
    return "kernels-community" not in record.getMessage()


@contextlib.contextmanager
def quiet():
    """Filter the known library noise (see the module docstring) for the length of a zoo call.

    Reference-counted rather than ``warnings.catch_warnings`` (which saves and restores the whole
    filter list, so two threads interleaving their calls, as concurrent demo requests loading models
    do, could leave the filters installed for good): the first call in adds them, the last one out
    removes exactly those entries."""
    global _DEPTH
    with _LOCK:
        _DEPTH += 1
        if _DEPTH == 1:
            logging.getLogger(_BNB_LOGGER).addFilter(_not_kernels_notice)
            _ADDED[:] = [("ignore", re.compile(message, re.I), category, None, 0) for message, category in _WARNINGS]
            warnings.filters[:0] = _ADDED
            warnings._filters_mutated()
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                logging.getLogger(_BNB_LOGGER).removeFilter(_not_kernels_notice)
                warnings.filters[:] = [f for f in warnings.filters if not any(f is a for a in _ADDED)]
                warnings._filters_mutated()
                _ADDED.clear()
