"""Torch threads that follow the CPU cores actually free.

On a CPU, torch runs each operation on an OpenMP pool of one thread per core. When another busy process
holds one of those cores, the pool's threads wait for a descheduled peer at every operation: a second
torch process beside a training run made it 18-25x slower on a 2-core machine. :class:`FollowFreeCores`
measures, between training steps, how many cores other processes used since the last look (``/proc/stat``
less this process's own CPU time) and sets ``torch.set_num_threads`` to the cores left, at least one.

It stays out of the way when a GPU trains, when the user set ``OMP_NUM_THREADS`` (their choice stands),
and where ``/proc/stat`` does not exist (not Linux).
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch
from transformers import TrainerCallback


def _cpu_totals() -> tuple[float, float] | None:
    """(busy, all) jiffies of every core since boot, from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [float(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return sum(values) - idle, sum(values)


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class FollowFreeCores(TrainerCallback):
    """After ``first`` seconds of training, then every ``every`` seconds, set torch's threads to the cores other
    processes left free."""

    def __init__(self, every: float = 10.0, cores: int | None = None, sampler=None, first: float = 2.0):
        self.every, self.first, self._looked = every, first, False
        self.cores = cores or os.cpu_count() or 1
        self.enabled = (not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ
                        and _cpu_totals() is not None and self.cores > 1)
        self.threads = torch.get_num_threads()
        self._last = None
        # (monotonic seconds, (busy, all) jiffies or None, this process's CPU seconds); replaceable in tests
        self._sample = sampler or (lambda: (time.monotonic(), _cpu_totals(), _own_cpu_seconds()))

    def on_train_begin(self, args, state, control, **kwargs):
        if self.enabled:
            self._last = self._sample()

    def on_step_end(self, args, state, control, **kwargs):
        if not self.enabled or self._last is None:
            return
        now = self._sample()
        wall = now[0] - self._last[0]
        if wall < (self.every if self._looked else self.first) or now[1] is None or self._last[1] is None:
            return
        self._looked = True  # the first look comes early (a busy neighbour costs most at the start), then every ``every``
        busy, total = now[1][0] - self._last[1][0], now[1][1] - self._last[1][1]
        own = now[2] - self._last[2]
        self._last = now
        if total <= 0:
            return
        busy_cores = self.cores * busy / total  # every process, this one included
        elsewhere = max(0.0, busy_cores - own / wall)
        want = max(1, min(self.cores, math.floor(self.cores - elsewhere + 0.3)))
        if want != self.threads:
            torch.set_num_threads(want)
            print(f"zoo: {elsewhere:.1f} of {self.cores} cores busy elsewhere; training on {want} "
                  f"thread{'s' if want > 1 else ''} (was {self.threads})", file=sys.stderr, flush=True)
            self.threads = want


__all__ = ["FollowFreeCores"]
