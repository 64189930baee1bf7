"""Per-request routing inside one shared base model: which rows of a batch use which adapter.

The registry wraps the base model's modules once (``zoo.serve.base.wrap_base``):

- every ``nn.Linear`` (and GPT-2's ``Conv1D``) becomes a :class:`RoutedLinear` that adds, per row,
  that row's adapter delta (LoRA ``B A x``, IA3 scaling of the input or the output) on top of the
  one shared base matmul;
- every block that a last-layers adapter may replace (the top transformer layers, the pooler)
  becomes a :class:`RoutedBlock` that sends the rows of such adapters through their own copy;
- the classification head becomes a :class:`RoutedHead` holding one head per adapter.

Which rows belong to which adapter is not module state: it is a :class:`Route` held in a
``contextvars.ContextVar`` for the duration of one forward pass. Each thread (and each asyncio
task) has its own context, so concurrent callers never see each other's routes, and there is no
global "active adapter". Rows of one forward are ordered by adapter (:func:`route_rows`), so each
adapter's rows are a contiguous slice and its work is a matmul on a view, never a gather. Virtual
tokens inside ``generate`` (prompt tuning, P-tuning, prefix tuning) are added by ``zoo.serve.generation``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from zoo.models.layers import linear_features

_ROUTE: contextvars.ContextVar["Route | None"] = contextvars.ContextVar("zoo_route", default=None)


@dataclass(frozen=True)
class Segment:
    """Rows ``start:stop`` of the current batch use ``adapter`` (an ``AdapterWeights``)."""

    adapter: object
    start: int
    stop: int


@dataclass(frozen=True)
class Route:
    segments: tuple[Segment, ...]
    rows: int

    def head(self, stop: int) -> "Route":
        """The route of the first ``stop`` rows (a prefix of whole segments)."""
        return Route(tuple(s for s in self.segments if s.stop <= stop), stop)

    def slice(self, start: int, stop: int) -> "Route":
        """The route of rows ``start:stop`` (whole segments), renumbered from 0."""
        return Route(tuple(Segment(s.adapter, s.start - start, s.stop - start) for s in self.segments
                           if s.start >= start and s.stop <= stop), stop - start)

    def repeat(self, k: int) -> "Route":
        """The route once every row is repeated ``k`` times in place, as beam search expands a batch."""
        return Route(tuple(Segment(s.adapter, s.start * k, s.stop * k) for s in self.segments), self.rows * k)


@contextlib.contextmanager
def routed(route: Route):
    token = _ROUTE.set(route)
    try:
        yield
    finally:
        _ROUTE.reset(token)


def current_route() -> Route | None:
    return _ROUTE.get()


def route_rows(chunk: list[int], rows) -> tuple[list[int], Route]:
    """The chunk reordered so each adapter's rows are one slice, and its route. Adapters replacing more blocks
    come later (a linear probe's pooler before a last-layers adapter's top layers and pooler), so that the rows
    sharing a block are few runs: each is one call of the block."""
    order: dict[int, list[int]] = OrderedDict()
    for i in sorted(chunk, key=lambda i: len(rows[i].blocks)):
        order.setdefault(id(rows[i]), []).append(i)
    chunk = [i for members in order.values() for i in members]
    segments, start = [], 0
    for members in order.values():
        segments.append(Segment(rows[members[0]], start, start + len(members)))
        start += len(members)
    return chunk, Route(tuple(segments), len(chunk))


def prompt_embeddings(route: Route) -> torch.Tensor:
    """Each row's virtual prompt embeddings (prompt tuning, P-tuning): (rows, n, hidden)."""
    return torch.cat([s.adapter.prompt.unsqueeze(0).expand(s.stop - s.start, -1, -1) for s in route.segments])


def prefix_cache(route: Route, dtype: torch.dtype):
    """Each row's past keys/values (prefix tuning), laid out as PEFT's prefix tuning lays them out."""

    segments = route.segments
    pkv = torch.cat([s.adapter.prefix.unsqueeze(0).expand(s.stop - s.start, -1, -1) for s in segments])
    n, shape = pkv.shape[1], segments[0].adapter.prefix_shape
    pkv = pkv.to(dtype).view(pkv.shape[0], n, *shape).permute([2, 0, 3, 1, 4]).split(2)
    return DynamicCache(pkv)


class RoutedLinear(nn.Module):
    """A frozen ``nn.Linear`` plus the per-row LoRA / IA3 deltas of the adapters in the current route.

    Each adapter keeps its own tensors for this module under ``adapter.linear[self.path]`` as
    ``("lora", A^T, scale * B^T)`` or ``("ia3", vector, is_feedforward)``.
    """

    def __init__(self, base: nn.Module, path: str):
        super().__init__()
        self.base = base
        self.path = path
        # transformers' Conv1D (GPT-2) is x @ W + b with W stored (in, out), the transpose of nn.Linear's
        self.transposed = not isinstance(base, nn.Linear)
        self.in_features, self.out_features = linear_features(base)

    @property
    def weight(self):  # code that inspects the base (dtype/device probes) still finds it
        return self.base.weight

    @property
    def bias(self):
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = _ROUTE.get()
        if route is None:
            return self.base(x)
        deltas = [(seg, seg.adapter.linear.get(self.path)) for seg in route.segments]
        deltas = [(seg, d) for seg, d in deltas if d is not None]
        if not deltas:
            return self.base(x)
        if len(deltas) == 1 and deltas[0][0].stop - deltas[0][0].start == route.rows:
            return self._one_adapter(x, deltas[0][1])
        feedforward = [(seg, d[1]) for seg, d in deltas if d[0] == "ia3" and d[2]]
        if feedforward:  # IA3 on a feed-forward layer scales the input, per row: one multiply
            scale = x.new_ones((x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],))
            for seg, vec in feedforward:
                scale[seg.start:seg.stop] = vec
            x_in = torch.mul(x, scale, out=_workspace(x))
        else:
            x_in = x
        y = self.base(x_in)
        per_row = y[0].numel() // y.shape[-1]  # tokens per row (1 for 2-d inputs such as the pooler)
        flat_x, flat_y = x.reshape(-1, x.shape[-1]), y.view(-1, y.shape[-1])  # y is fresh: views update it
        for seg, d in deltas:
            if d[0] == "lora":
                a, b = seg.start * per_row, seg.stop * per_row
                flat_y[a:b].addmm_(flat_x[a:b] @ d[1], d[2])
            elif not d[2]:  # IA3 on an attention projection scales the output
                y[seg.start:seg.stop].mul_(d[1])
        return y

    def _one_adapter(self, x: torch.Tensor, d: tuple) -> torch.Tensor:
        """Every row uses one adapter: fold its delta into a temporary weight (one matmul, no side pass).

        For LoRA, W + s B A costs in*out*r multiply-adds once, against tokens*(in+out)*r for the side
        pass; the fold is never stored, so the base stays untouched and nothing leaks between requests.
        """
        w, b = self.base.weight, self.base.bias
        if d[0] == "lora":
            # Few tokens (a decoding step): the side pass is cheaper; measured for one token per row on
            # 576x1536 layers, folding costs 2-4x the side pass, which costs ~1.1x the bare matmul.
            if x.numel() // x.shape[-1] * (w.shape[0] + w.shape[1]) <= w.shape[0] * w.shape[1]:
                y = self.base(x)
                y.view(-1, y.shape[-1]).addmm_(x.reshape(-1, x.shape[-1]) @ d[1], d[2])
                return y
            if self.transposed:
                flat = x.reshape(-1, x.shape[-1])
                y = torch.addmm(b, flat, torch.addmm(w, d[1], d[2])) if b is not None else flat @ torch.addmm(w, d[1], d[2])
                return y.view(*x.shape[:-1], self.out_features)
            return nn.functional.linear(x, torch.addmm(w, d[2].t(), d[1].t()), b)
        if d[2]:  # IA3, feed-forward: W (x * l)
            return self.base(torch.mul(x, d[1], out=_workspace(x)))
        y = self.base(x)
        return y.mul_(d[1])


_LOCAL = threading.local()


def _workspace(like: torch.Tensor) -> torch.Tensor:
    """A per-thread scratch tensor shaped like ``like``, reused by every IA3 feed-forward layer.

    The scaled input lives only until the base matmul has read it. Allocating it afresh in each
    layer made glibc return and re-fault the pages on every forward (8x the minor page faults of
    the bare base, 10 % of the time); one buffer per thread, grown when needed, avoids that.
    """
    need = like.numel()
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or buf.numel() < need or buf.dtype != like.dtype or buf.device != like.device:
        buf = _LOCAL.buf = torch.empty(max(need, 1 << 16), dtype=like.dtype, device=like.device)
    return buf[:need].view(like.shape)


def _slice_rows(value, start: int, stop: int, rows: int):
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
        return value[start:stop]
    if isinstance(value, tuple):  # rotary (cos, sin) of decoder-only models
        return tuple(_slice_rows(v, start, stop, rows) for v in value)
    return value


class RoutedBlock(nn.Module):
    """A base block (a transformer layer, the pooler) that last-layers adapters may replace.

    Rows of adapters with their own copy of this block run through it; the other rows run the shared
    block, one call per run of consecutive rows. The registry orders segments so that adapters
    replacing more blocks come last, which makes those runs few (one, when the replaced blocks nest).
    """

    def __init__(self, base: nn.Module, path: str):
        super().__init__()
        self.base = base
        self.path = path

    def forward(self, hidden, *args, **kwargs):
        route = _ROUTE.get()
        if route is None:
            return self.base(hidden, *args, **kwargs)
        own = [(seg, seg.adapter.blocks.get(self.path)) for seg in route.segments]
        own = [(seg, block) for seg, block in own if block is not None]
        if not own:
            return self.base(hidden, *args, **kwargs)
        rows = route.rows
        if len(own) == 1 and own[0][0].start == 0 and own[0][0].stop == rows:
            with routed(Route((), rows)):  # every row replaces this block: one call, a KV cache may pass through
                return own[0][1](hidden, *args, **kwargs)
        if any(isinstance(v, _CACHE_TYPES) for v in (*args, *kwargs.values())):
            # a KV cache is one object for the whole batch: split calls would append partial rows to it
            raise RuntimeError("a cached forward cannot mix replaced and shared layers")  # the registry never does this
        parts = []

        def shared(start: int, stop: int) -> None:  # rows start:stop (whole segments) keep the base's block
            if stop > start:
                a = [_slice_rows(v, start, stop, rows) for v in args]
                k = {n: _slice_rows(v, start, stop, rows) for n, v in kwargs.items()}
                with routed(route.slice(start, stop)):
                    parts.append(self.base(hidden[start:stop], *a, **k))

        done = 0
        for seg, block in own:  # in row order; the rows between them run the shared block, one call per run
            shared(done, seg.start)
            a = [_slice_rows(v, seg.start, seg.stop, rows) for v in args]
            k = {n: _slice_rows(v, seg.start, seg.stop, rows) for n, v in kwargs.items()}
            with routed(Route((), seg.stop - seg.start)):  # the adapter's own block has no deltas inside
                parts.append(block(hidden[seg.start:seg.stop], *a, **k))
            done = seg.stop
        shared(done, rows)
        return _cat_rows(parts)


def _cat_rows(parts):
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0)
    if isinstance(first, tuple):
        return tuple(_cat_rows([p[i] for p in parts]) if isinstance(first[i], torch.Tensor) else first[i]
                     for i in range(len(first)))
    raise TypeError(f"cannot join block outputs of type {type(first).__name__}")


class RoutedHead(nn.Module):
    """One classification head per adapter; output padded with zeros to the widest label set."""

    def __init__(self, template: nn.Module, path: str):
        super().__init__()
        self.template = [template]  # a list: kept out of the module tree (its weights are not served)
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = _ROUTE.get()
        if route is None or not route.segments:
            raise RuntimeError("the shared base has no head of its own; predict through the registry")
        outs = [(seg, seg.adapter.head(x[seg.start:seg.stop])) for seg in route.segments]
        width = max(o.shape[-1] for _, o in outs)
        first = outs[0][1]  # heads may pool inside (RoBERTa's takes token 0): shape from their output
        y = first.new_zeros((route.rows, *first.shape[1:-1], width))
        for seg, o in outs:
            y[seg.start:seg.stop, ..., :o.shape[-1]] = o
        return y


try:  # GPT-2's projections
    from transformers.pytorch_utils import Conv1D as _Conv1D

    _CONV1D: tuple = (_Conv1D,)
except ImportError:  # pragma: no cover
    _CONV1D = ()

try:  # transformers' cache classes, to refuse splitting a cached forward
    from transformers.cache_utils import Cache as _Cache

    _CACHE_TYPES: tuple = (_Cache,)
except ImportError:  # pragma: no cover
    _CACHE_TYPES = ()
