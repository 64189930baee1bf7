"""The server's Prometheus metrics (``GET /metrics``), on a registry of its own per app.

Labels take only names the catalogue lists (an unknown adapter is counted as "-"), so a stranger cannot grow
the series without bound by inventing names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from zoo.serve.registry import shared_registries

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Registries:
    """Resident adapters and evictions of every shared base in this process, read when scraped."""

    def collect(self):
        resident = GaugeMetricFamily("zoo_resident_adapters", "Adapters resident on a shared base", labels=["base"])
        evictions = CounterMetricFamily("zoo_adapter_evictions", "Adapters evicted from a shared base", labels=["base"])
        loads = CounterMetricFamily("zoo_adapter_loads", "Adapters loaded onto a shared base", labels=["base"])
        for z in shared_registries():
            resident.add_metric([z.base], len(z.resident))
            evictions.add_metric([z.base], z.stats.get("evictions", 0))
            loads.add_metric([z.base], z.stats.get("loads", 0))
        yield resident
        yield evictions
        yield loads


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("zoo_requests", "HTTP requests answered", ["endpoint", "adapter", "status"], registry=r)
        self.latency = Histogram("zoo_request_seconds", "Time from admission to answer", ["endpoint", "adapter"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("zoo_batch_rows", "Rows in the model call that answered a request's rows",
                               ["kind"], buckets=BATCH_BUCKETS, registry=r)
        self.queue = Gauge("zoo_queue_depth", "Requests admitted and not yet answered", registry=r)
        self.rejected = Counter("zoo_rejected", "Requests refused before running", ["reason"], registry=r)
        self.tokens = Counter("zoo_generated_tokens", "Tokens generated", ["adapter"], registry=r)
        r.register(_Registries())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
