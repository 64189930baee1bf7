"""Reading a published adapter folder into the tensors the registry serves, without PEFT's loader.

What every method shares is checked here, before anything is served: the method is one the registry
serves on a shared base, the adapter was trained on this base, its task type fits the base, the folder
holds safetensors only (nothing is unpickled, no code from the adapter runs), and every tensor is a
finite floating-point number. Then the method's own reader (``zoo.methods.<method>.read``) turns the
tensors into an :class:`~zoo.methods.served.AdapterWeights`, refusing any tensor or configuration it
does not understand.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load

from zoo.artifact.record import AdapterRecord, check_safe_folder
from zoo.data.bases import same_base
from zoo.errors import AdapterBaseMismatch, UnsafeAdapter, UnsupportedAdapter
from zoo.methods import get as get_method
from zoo.methods.served import AdapterWeights, BaseLayout, check_positions


def read_adapter(folder: Path, record: AdapterRecord, layout: BaseLayout) -> AdapterWeights:
    """Parse and check one published folder against the base layout."""
    where = f"adapter {record.name!r} ({folder})"
    method = get_method(record.method)
    if not method.shares_base:
        raise UnsupportedAdapter(
            f"{where} is a {method.title} {'model' if method.name == 'full' else 'adapter'}, which the shared-base "
            "registry does not serve; load it on its own with zoo.load()"
        )
    if not same_base(record.base_model, layout.base_id):
        raise AdapterBaseMismatch(
            f"{where} was trained on base {record.base_model!r}, but this registry serves base {layout.base_id!r}; "
            f"load it with zoo.load({record.base_model!r}, adapter={record.name!r})"
        )
    _check_task(record, layout, where)
    check_safe_folder(folder, method.weights)  # a folder that claims no weights (in-context) must hold none
    state = _read_tensors(folder / method.weights, where, layout.dtype) if method.weights else {}
    out = method.read(state, record, layout, where, folder)
    virtual = next((t.shape[0] for t in (out.prompt, out.prefix) if t is not None), 0)
    check_positions(record, layout.max_positions, virtual, layout.base_id, where)
    out.nbytes = sum(v.numel() * v.element_size() for v in state.values())
    return out


def _read_tensors(path: Path, where: str, dtype: torch.dtype) -> dict:
    """The file's tensors, floating point, finite, and in the base's dtype (converted here, once, with a warning:
    a half-precision adapter on a float32 base would otherwise fail at predict, and fail its batch-mates)."""
    try:
        # Read into memory we own: tensors viewing a memory-mapped file would keep the whole mapping
        # resident beside the copies made below, and would change if the file were rewritten.
        state = load(path.read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise UnsafeAdapter(f"{path} is corrupt or truncated ({e}); publish the adapter again") from None
    converted = sorted({str(v.dtype).replace("torch.", "") for v in state.values()
                        if v.is_floating_point() and v.dtype != dtype})
    for k, v in state.items():
        if not v.is_floating_point():
            raise UnsafeAdapter(f"{where}: tensor {k} has dtype {v.dtype}; adapters hold floating-point weights")
        if v.dtype != dtype:
            state[k] = v = v.to(dtype)
        if not torch.isfinite(v).all():
            raise UnsafeAdapter(f"{where}: tensor {k} holds NaN or infinite values"
                                + (f" (as {str(dtype).replace('torch.', '')})" if converted else ""))
    if converted:
        warnings.warn(f"{where} stores {'/'.join(converted)} weights; converted to the base's "
                      f"{str(dtype).replace('torch.', '')} at load", stacklevel=4)
    return state


def _check_task(record: AdapterRecord, layout: BaseLayout, where: str) -> None:
    """The adapter's task type is one this base serves (a causal adapter needs a decoder-only base)."""
    if record.causal and not layout.causal:
        raise UnsupportedAdapter(f"{where} is a causal-LM adapter, but base {layout.base_id!r} is not a decoder-only LM")
    if not record.causal and layout.head_template is None:
        raise UnsupportedAdapter(
            f"{where} is a classification adapter, but base {layout.base_id!r} has no sequence-classification "
            "class in transformers; load it alone with zoo.serve.loading.load_folder"
        )
