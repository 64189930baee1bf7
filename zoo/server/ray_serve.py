"""``zoo serve --ray``: the same HTTP API (``zoo.server.app``) deployed on Ray Serve, for many replicas and nodes.

Two deployments. The ingress (one replica) runs the server's Starlette app, checks requests exactly as
``zoo serve`` does, and sends each request's rows, grouped by adapter, to the ``ZooReplica`` deployment with
Serve's model multiplexing (model id = the entry's id), so an adapter's traffic goes to replicas that already
hold it. Each replica holds one shared frozen base per base model and the catalogue's registry; its
``get_model`` (``@serve.multiplexed``) puts an adapter on the shared base, and Serve's LRU eviction takes it off
again (the cleanup is safe to run twice: Serve calls it, and garbage collection may call it again). Rows that
reach a replica together, from any adapters, are answered as one mixed batch by the catalogue's coalescer:
Ray 2.60's ``@serve.batch`` splits every batch by multiplexed model id, which would undo mixed-adapter batching.

Start it with ``zoo serve --ray [--replicas N] [--max-adapters-per-replica K]``, or with Serve's own CLI:
``serve run zoo.server.ray_serve:build hub=local replicas=2``. Streaming requests are answered in one piece
at the end on Ray (the rows are computed on a replica).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Optional

try:
    from ray import serve
except ImportError:  # the ray extra is not installed: application() and run() say how to get it
    serve = None

from zoo.demo.catalogue import Catalogue
from zoo.demo.entries import MAX_CHARS, Entry
from zoo.errors import BadInput, EntryFailed, EntryNotFound, ZooError
from zoo.server.app import create_app

log = logging.getLogger("zoo.server.ray")
REPLICA = "ZooReplica"


class Resident:
    """An adapter that a replica holds, as Serve's multiplexing sees it; ``__del__`` takes it off the base."""

    def __init__(self, catalogue: Catalogue, entry_id: str, held: set):
        self.catalogue, self.entry_id, self.held = catalogue, entry_id, held
        self._gone = False
        self._lock = threading.Lock()

    def __del__(self):  # Serve's eviction calls it, then garbage collection may call it again
        with self._lock:
            if self._gone:
                return
            self._gone = True
        self.held.discard(self.entry_id)
        try:
            self.catalogue.unload(self.entry_id)
        except Exception:  # a cleanup must never raise into Serve's eviction or the garbage collector
            log.exception("unloading %s", self.entry_id)


def replica_deployment(max_adapters: int):
    """The ``ZooReplica`` deployment, each replica holding at most ``max_adapters`` adapters (Serve's LRU evicts
    past it; ``@serve.multiplexed`` takes its bound when the class is defined, hence a class per bound)."""

    @serve.deployment(name=REPLICA)
    class ZooReplica:
        """One shared base per base model and the registry, answering rows of one adapter at a time."""

        def __init__(self, hub: Optional[str] = None, max_chars: int = MAX_CHARS):
            self.catalogue = Catalogue(hub, max_chars=max_chars, strict=False)
            self.held: set[str] = set()
            self.replica = serve.get_replica_context().replica_id.unique_id

        def _entry(self, entry_id: str) -> Entry:
            try:
                return self.catalogue.get(entry_id)
            except EntryNotFound:
                self.catalogue.refresh(strict=False)  # pushed after this replica listed the hub
                return self.catalogue.get(entry_id)

        @serve.multiplexed(max_num_models_per_replica=max_adapters)
        async def get_model(self, entry_id: str) -> Resident:
            entry = await asyncio.to_thread(self._entry, entry_id)
            await asyncio.to_thread(self.catalogue.model, entry)
            self.held.add(entry_id)
            return Resident(self.catalogue, entry_id, self.held)

        async def answer(self, items: list, settings: dict) -> dict:
            """The rows of one adapter (the request's multiplexed model id), answered by ``Catalogue.answer_rows``."""
            entry_id = serve.get_multiplexed_model_id()
            if not entry_id:
                return {"error": "BadInput", "message": "a request to the zoo's replicas names its adapter as the "
                                                        "multiplexed model id"}
            was_resident = entry_id in self.held
            try:
                await self.get_model(entry_id)
                entry = await asyncio.to_thread(self._entry, entry_id)
                rows = await asyncio.to_thread(self.catalogue.answer_rows, [(entry, x) for x in items],
                                               settings=settings, strict=True)
            except ZooError as e:
                return {"error": type(e).__name__, "message": str(e)}
            return {"rows": rows, "replica": self.replica, "was_resident": was_resident}

    return ZooReplica


ERRORS = {cls.__name__: cls for cls in (BadInput, EntryFailed, EntryNotFound, ZooError)}


class RayCatalogue(Catalogue):
    """The ingress's catalogue: it lists the hub (names, kinds, checks) like any catalogue, and answers rows on
    the replicas: one call per adapter, routed by Serve's multiplexing. Models are never loaded here."""

    def __init__(self, hub, replicas_handle, **kwargs):
        super().__init__(hub, **kwargs)
        self.replicas = replicas_handle
        self.routing = {"calls": 0, "resident": 0}  # calls answered by a replica that already held the adapter
        self._routing_lock = threading.Lock()

    def model(self, entry: Entry):
        return None  # on the replicas; the server then streams a row's text in one piece

    def loaded(self) -> dict:
        return {"ray": {"replica_deployment": REPLICA, **self.routing}}

    def answer_rows(self, rows_in, *, settings=None, strict: bool = False, streams=None) -> list[dict]:
        settings = dict(settings or {})
        groups: dict[str, list[int]] = {}
        for i, (entry, _) in enumerate(rows_in):
            groups.setdefault(entry.id, []).append(i)
        calls = {eid: self.replicas.options(multiplexed_model_id=eid).answer.remote(
            [rows_in[i][1] for i in idx], settings) for eid, idx in groups.items()}
        out: list[dict] = [{} for _ in rows_in]
        for eid, call in calls.items():
            answer = call.result()
            if "error" in answer:
                raise ERRORS.get(answer["error"], EntryFailed)(answer["message"])
            with self._routing_lock:
                self.routing["calls"] += 1
                self.routing["resident"] += bool(answer["was_resident"])
            for i, row in zip(groups[eid], answer["rows"]):
                out[i] = {**row, "replica": answer["replica"], "was_resident": answer["was_resident"]}
        return out


def ingress_deployment():
    """The ``ZooIngress`` deployment: ``zoo.server.app`` over a RayCatalogue (a class made when deploying: Serve's
    decorators start Ray's telemetry set-up, which importing this module must not do)."""

    @serve.deployment(name="ZooIngress")
    @serve.ingress()
    class ZooIngress:
        def __init__(self, replicas, hub: Optional[str] = None, settings: Optional[dict] = None):
            self.replicas, self.hub, self.settings = replicas, hub, dict(settings or {})

        def __serve_build_asgi_app__(self):
            settings = dict(self.settings)
            token_env = settings.pop("token_env", None)
            token = os.environ.get(token_env) if token_env else None
            catalogue = RayCatalogue(self.hub, self.replicas, max_chars=settings.get("max_chars", MAX_CHARS),
                                     strict=False)
            return create_app(catalogue, token=token, **settings)

    return ZooIngress


def application(*, hub: Optional[str] = None, replicas: int = 2, max_adapters_per_replica: int = 8,
                max_chars: int = MAX_CHARS, **settings):
    """The bound Serve application: the ingress over ``replicas`` ZooReplicas."""
    if serve is None:
        raise ZooError("zoo serve --ray needs Ray Serve, which is not installed; pip install 'adapter-zoo[ray]'")
    if replicas < 1 or max_adapters_per_replica < 1:
        raise BadInput("--replicas and --max-adapters-per-replica must be at least 1")
    # A replica reserves one CPU (Ray then gives its torch one thread); the ingress only checks and forwards, so it
    # reserves none: on 2 cores, 2 replicas and the ingress all start.
    quick = {"graceful_shutdown_timeout_s": 5, "graceful_shutdown_wait_loop_s": 0.5}  # answers take seconds, not 20
    replica = replica_deployment(max_adapters_per_replica).options(num_replicas=replicas, max_ongoing_requests=64,
                                                                   ray_actor_options={"num_cpus": 1}, **quick)
    return ingress_deployment().options(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0}, **quick).bind(
        replica.bind(hub, max_chars), hub, {"max_chars": max_chars, **settings})


def build(args: dict):
    """For ``serve run zoo.server.ray_serve:build hub=local replicas=2 max_adapters_per_replica=4``."""
    known = {"hub": str, "replicas": int, "max_adapters_per_replica": int, "max_chars": int, "max_queue": int,
             "timeout": float, "refresh_seconds": float, "token_env": str}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise BadInput(f"unknown argument(s) {unknown}; the arguments are: {', '.join(known)}")
    return application(**{k: known[k](v) for k, v in args.items()})


# What the replicas must see of the environment that started them (where the hub and the data are, offline
# or not, the Hub's token); Ray's workers are started by its own processes.
FORWARDED = ("ZOO_HOME", "ZOO_DATA_DIR", "ZOO_HUB", "HF_HUB_OFFLINE", "HF_HOME", "HF_ENDPOINT", "HF_TOKEN",
             "OMP_NUM_THREADS", "TRANSFORMERS_OFFLINE")


def run(*, host: str, port: int, hub: Optional[str], replicas: int, max_adapters_per_replica: int,
        token_env: Optional[str] = None, **settings) -> None:
    """Start a local Ray cluster (this machine only), deploy the zoo on Serve at http://HOST:PORT, serve until
    interrupted, then shut Serve and Ray down."""
    import signal

    import ray

    env = {k: os.environ[k] for k in (*FORWARDED, *([token_env] if token_env else [])) if k in os.environ}
    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", runtime_env={"env_vars": env},
             logging_level=logging.WARNING, log_to_driver=False)
    stop = threading.Event()
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(application(hub=hub, replicas=replicas, max_adapters_per_replica=max_adapters_per_replica,
                              token_env=token_env, **settings), name="zoo", route_prefix="/", blocking=False)
        print(f"serve: Ray Serve at http://{host}:{port}, {replicas} replica(s) of at most {max_adapters_per_replica} "
              "adapters each", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
