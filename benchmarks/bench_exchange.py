"""Benchmark: moving rows between Dask workers directly, without the scheduler (issue 17).

Starts the embedded LocalCluster (``dw2v.dask_cluster.local_cluster``: worker processes, one
thread each, dw2v's quiet settings) and launches one long-lived task per worker, pinned with
``workers=[address]`` (the resident-trainer shape of engine v2). Those tasks then exchange
payloads of int32 row ids, float32 rows of dimension ``--dim`` and an int32 touch count per row
directly with their peers, over:

(a) ``rpc``: a handler registered in each peer's ``worker.handlers`` and called with
    ``worker.rpc(peer).<handler>(...)`` (the worker's own pooled connections); the handler's
    reply is the acknowledgement;
(b) ``comm``: one ``distributed.comm`` connection per pair of workers, opened on a listener
    of its own on each worker (dask-cuda's explicit comms: ``comm.listen`` / ``comm.connect``
    on the worker's event loop, rank-ordered connects), messages with ``write`` / ``read``;
(b') ``attach``: the same, but connected to the peer's own worker address: the first message
    calls a handler (first argument ``comm``) that keeps the connection for the session, so no
    extra port is opened;
(d) ``futures``: the way dw2v moves results today, through the scheduler: tasks submitted by
    the client, their results passed as futures to the next task (after the resident tasks).

(c) Dask's Pub/Sub (``distributed.Pub`` / ``Sub``) is gone from distributed (deprecated in
dask/distributed#8724, 2024, removed in #9039, April 2025), so it is reported, not measured.

The task thread drives the exchange by running a coroutine on the worker's event loop
(``distributed.utils.sync(worker.loop, ...)``), once per operation, as a trainer would once per
round; every time below includes that hop. Patterns, for each payload size S (MB = 10^6 bytes):

- ``ping``: a tiny message to a peer and its answer (median and p90 of many);
- ``one-way``: worker 0 sends S to worker 1, which acknowledges it with a tiny message;
- ``all-to-all``: every worker holds S, keeps 1/N and sends each peer 1/N (a reduce-scatter's
  shape); the time of a repetition is the slowest worker's, from a barrier to its last message;
- ``round``: all-to-all twice (the reduce-scatter, then an all-gather of the same size back).

    python benchmarks/bench_exchange.py [--workers 2 4] [--sizes 0.25 1 4 8 24 96] [--dim 100]
        [--json benchmarks/_data/bench_exchange.json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import operator
import os
import statistics
import time
import uuid
from typing import Any

import numpy as np

MB = 1_000_000
TRANSPORTS_DIRECT = ("rpc", "comm", "attach")


# ----------------------------------------------------------------------------------- payloads

def row_bytes(dim: int) -> int:
    """Bytes per exchanged row: an int32 id, ``dim`` float32 values, an int32 touch count."""
    return 4 + 4 * dim + 4


def make_rows(nbytes: float, dim: int, start: int = 0) -> dict[str, np.ndarray]:
    """About ``nbytes`` of rows: ids ``start, start+1, ...``, filled values and counts."""
    n = max(1, round(nbytes / row_bytes(dim)))
    ids = np.arange(start, start + n, dtype=np.int32)
    rows = np.empty((n, dim), dtype=np.float32)
    rows[:] = (ids[:, None] % 97).astype(np.float32) * 0.01  # touch every page
    counts = (ids % 7 + 1).astype(np.int32)
    return {"ids": ids, "rows": rows, "counts": counts}


def split_rows(part: dict[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """``part`` cut into ``n`` contiguous shares (views, no copy): row ``i``'s owner share."""
    bounds = np.linspace(0, len(part["ids"]), n + 1).astype(int)
    return [{k: v[a:b] for k, v in part.items()} for a, b in itertools.pairwise(bounds)]


def wrap(part: dict[str, np.ndarray]) -> dict[str, Any]:
    """Arrays marked for Dask's own serializers (a header and the array's buffer as a frame)."""
    from distributed.protocol import to_serialize

    return {k: to_serialize(v) for k, v in part.items()}


class _Collect(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def frames_check(dim: int) -> dict[str, Any]:
    """How ``distributed.protocol.dumps`` turns a message with NumPy arrays into frames."""
    from distributed.protocol import dumps, loads

    part = make_rows(8 * MB, dim)
    out: dict[str, Any] = {}
    for name, msg in (("to_serialize", wrap(part)), ("raw arrays", dict(part))):
        records: list[str] = []
        handler = _Collect(records)
        logger = logging.getLogger("distributed.protocol.core")
        logger.addHandler(handler)
        old, propagate = logger.level, logger.propagate
        logger.setLevel(logging.INFO)
        logger.propagate = False  # keep Dask's own log line off the terminal
        try:
            frames = dumps(msg)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old)
            logger.propagate = propagate
        big = max(frames, key=lambda f: memoryview(f).nbytes)
        shares = np.shares_memory(np.frombuffer(big, dtype=np.uint8), part["rows"])
        back = loads([bytearray(f) for f in frames])
        out[name] = {
            "frames": len(frames),
            "largest_frame_bytes": memoryview(big).nbytes,
            "largest_frame_is_the_array_buffer": bool(shares),
            "pickle_fallback_logged": any("falling back to pickle" in r for r in records),
            "round_trip_equal": bool(np.array_equal(back["rows"], part["rows"])),
        }
    return out


# ---------------------------------------------------------------- worker side: the transports

class Inbox:
    """Messages by (tag, sender), each awaited once (asyncio futures on the worker's loop)."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, int], asyncio.Future] = {}

    def _future(self, key: tuple[str, int]) -> asyncio.Future:
        fut = self._waiting.get(key)
        if fut is None:
            fut = self._waiting[key] = asyncio.get_running_loop().create_future()
        return fut

    def put(self, key: tuple[str, int], value: Any) -> None:
        self._future(key).set_result(value)

    async def get(self, key: tuple[str, int]) -> Any:
        value = await self._future(key)
        del self._waiting[key]
        return value


class Session:
    """One benchmark session's state on one worker (kept on the Worker object by ``setup``)."""

    def __init__(self, worker: Any, session: str, addresses: list[str]) -> None:
        self.worker = worker
        self.session = session
        self.addresses = addresses
        self.rank = addresses.index(worker.address)
        self.n = len(addresses)
        self.op = f"dw2v_bench_{session}"
        self.attach_op = f"dw2v_bench_attach_{session}"
        self.inbox = Inbox()
        self.eps: dict[int, Any] = {}  # (b) over our own listener
        self.attached: dict[int, Any] = {}  # (b') over the worker's own listener
        self.detached = asyncio.Event()
        self.listener: Any = None
        self.received_writeable: set[bool] = set()

    # (a) a handler on every worker, called through the worker's connection pool
    async def handle(self, src: int, tag: str, deposit: bool = True, **arrays: Any) -> str:
        if deposit:
            self.inbox.put((tag, src), arrays)
        return "OK"

    # (b') a handler that keeps the connection it was called on, for this session's messages
    async def attach(self, comm: Any, src: int) -> None:
        self.attached[src] = comm
        await self.detached.wait()  # the worker's own reading of this comm waits till then


def _state(worker: Any, session: str) -> Session:
    return worker._dw2v_bench[session]


async def setup(session: str, addresses: list[str], dask_worker: Any) -> str:
    """Register the handler (a) and open this worker's own listener (b); its address back."""
    import distributed.comm
    from distributed.comm.addressing import get_address_host, parse_address

    st = Session(dask_worker, session, addresses)
    if not hasattr(dask_worker, "_dw2v_bench"):
        dask_worker._dw2v_bench = {}
    dask_worker._dw2v_bench[session] = st
    dask_worker.handlers[st.op] = st.handle
    dask_worker.handlers[st.attach_op] = st.attach

    async def on_connect(comm: Any) -> None:
        peer = await comm.read()
        st.eps[peer] = comm

    scheme, _ = parse_address(dask_worker.address)
    host = get_address_host(dask_worker.address)
    st.listener = distributed.comm.listen(
        f"{scheme}://{host}:0", on_connect,
        **dask_worker.security.get_listen_args("worker"))
    await st.listener.start()
    return st.listener.contact_address


async def connect(session: str, listen_addresses: list[str], dask_worker: Any) -> int:
    """Connect to every peer of a higher rank; wait for the lower ones to connect to us.
    (b): to the peer's own listener; (b'): to the peer worker's address, calling ``attach``."""
    import distributed.comm

    st = _state(dask_worker, session)
    args = dask_worker.security.get_connection_args("worker")
    for peer in range(st.rank + 1, st.n):
        comm = await distributed.comm.connect(listen_addresses[peer], **args)
        await comm.write(st.rank)
        st.eps[peer] = comm
        comm = await distributed.comm.connect(st.addresses[peer], **args)
        await comm.write({"op": st.attach_op, "src": st.rank, "reply": False})
        st.attached[peer] = comm
    while len(st.eps) < st.n - 1 or len(st.attached) < st.n - 1:
        await asyncio.sleep(0.01)
    st.listener.stop()
    return len(st.eps)


async def teardown(session: str, dask_worker: Any) -> None:
    st = dask_worker._dw2v_bench.pop(session)
    dask_worker.handlers.pop(st.op, None)
    dask_worker.handlers.pop(st.attach_op, None)
    for comm in [*st.eps.values(), *st.attached.values()]:
        comm.abort()
    st.detached.set()


class Transport:
    """send / recv of one message to / from one peer, on the worker's loop."""

    acked = False  # whether ``send`` returns only once the peer has the message

    def __init__(self, st: Session) -> None:
        self.st = st

    async def send(self, peer: int, tag: str, part: dict[str, Any] | None) -> None:
        raise NotImplementedError

    async def recv(self, peer: int, tag: str) -> dict[str, Any]:
        raise NotImplementedError

    async def ping(self, peer: int) -> None:
        await self.send(peer, "ping", None)
        await self.recv(peer, "pong")

    async def pong(self, peer: int) -> None:
        await self.recv(peer, "ping")
        await self.send(peer, "pong", None)


class RpcTransport(Transport):
    acked = True

    async def send(self, peer: int, tag: str, part: dict[str, Any] | None,
                   deposit: bool = True) -> None:
        st = self.st
        call = getattr(st.worker.rpc(st.addresses[peer]), st.op)
        reply = await call(src=st.rank, tag=tag, deposit=deposit,
                           **(wrap(part) if part else {}))
        assert reply == "OK", reply

    async def recv(self, peer: int, tag: str) -> dict[str, Any]:
        return await self.st.inbox.get((tag, peer))

    async def ping(self, peer: int) -> None:  # a request and its reply are the round trip
        await self.send(peer, "ping", None, deposit=False)

    async def pong(self, peer: int) -> None:
        pass


class CommTransport(Transport):
    def __init__(self, st: Session, eps: dict[int, Any]) -> None:
        super().__init__(st)
        self.eps = eps

    async def send(self, peer: int, tag: str, part: dict[str, Any] | None) -> None:
        await self.eps[peer].write({"tag": tag, **(wrap(part) if part else {})})

    async def recv(self, peer: int, tag: str) -> dict[str, Any]:
        msg = await self.eps[peer].read()
        got = msg.pop("tag")
        assert got == tag, (got, tag)
        return msg


async def barrier(t: Transport, tag: str) -> None:
    peers = [p for p in range(t.st.n) if p != t.st.rank]
    await asyncio.gather(*(t.send(p, tag, None) for p in peers),
                         *(t.recv(p, tag) for p in peers))


async def all_to_all(t: Transport, tag: str, shares: list[dict[str, np.ndarray]]) -> list:
    """Send each peer its share, receive every peer's share for us."""
    st = t.st
    peers = [p for p in range(st.n) if p != st.rank]
    results = await asyncio.gather(*(t.send(p, tag, shares[p]) for p in peers),
                                   *(t.recv(p, tag) for p in peers))
    return results[len(peers):]


async def one_way(t: Transport, tag: str, part: dict[str, np.ndarray] | None) -> Any:
    st = t.st
    if st.rank == 0:
        await t.send(1, tag, part)
        if not t.acked:
            await t.recv(1, tag + "-ack")
    elif st.rank == 1:
        got = await t.recv(0, tag)
        if not t.acked:
            await t.send(0, tag + "-ack", None)
        return got
    return None


def resident(session: str, plan: dict[str, Any]) -> dict[str, Any]:
    """The long-lived task on one worker: every pattern over every direct transport.
    Returns this worker's elapsed seconds per (transport, pattern, size) and repetition."""
    from distributed import get_worker
    from distributed.utils import sync

    worker = get_worker()
    st = _state(worker, session)
    dim, n = plan["dim"], st.n
    times: dict[str, list[float]] = {}
    checks: list[str] = []
    step = [0]

    def run(coro_fn: Any, *args: Any) -> Any:
        return sync(worker.loop, coro_fn, *args)

    def timed(t: Transport, key: str, coro_fn: Any, *args: Any) -> Any:
        step[0] += 1
        run(barrier, t, f"b{step[0]}")
        start = time.perf_counter()
        out = run(coro_fn, t, *args)
        times.setdefault(key, []).append(time.perf_counter() - start)
        return out

    async def ping_once(t: Transport) -> None:
        if st.rank == 0:
            await t.ping(1)
        elif st.rank == 1:
            await t.pong(0)

    async def ping_on_loop(t: Transport, count: int) -> list[float]:
        out = []
        for _ in range(count):
            start = time.perf_counter()
            await ping_once(t)
            out.append(time.perf_counter() - start)
        return out

    async def nothing() -> None:
        pass

    # the task thread's hop onto the event loop and back, alone
    if st.rank == 0:
        for how in ("sync", "run_coroutine_threadsafe"):
            for i in range(plan["pings"] + plan["warmup"]):
                start = time.perf_counter()
                if how == "sync":
                    run(nothing)
                else:
                    asyncio.run_coroutine_threadsafe(
                        nothing(), worker.loop.asyncio_loop).result()
                if i >= plan["warmup"]:
                    times.setdefault(f"hop|{how}|0", []).append(time.perf_counter() - start)

    transports: dict[str, Transport] = {"rpc": RpcTransport(st),
                                        "comm": CommTransport(st, st.eps),
                                        "attach": CommTransport(st, st.attached)}
    for name, t in transports.items():
        for _ in range(plan["warmup"]):
            run(barrier, t, f"w{step[0]}")
            step[0] += 1
    # tiny round trips, alternating transports: one sync() per ping, as a trainer per round
    for _block in range(4):
        for name, t in transports.items():
            run(barrier, t, f"p{step[0]}")
            step[0] += 1
            for _ in range(plan["pings"] // 4):
                start = time.perf_counter()
                run(ping_once, t)
                if st.rank == 0:
                    times.setdefault(f"{name}|ping|0", []).append(time.perf_counter() - start)
            # the same, every ping of one coroutine on the loop (no hop from the task thread)
            run(barrier, t, f"q{step[0]}")
            step[0] += 1
            on_loop = run(ping_on_loop, t, plan["pings"] // 4)
            if st.rank == 0:
                times.setdefault(f"{name}|ping-on-loop|0", []).extend(on_loop)

    async def round_trip(t: Transport, tag: str, shares: list) -> None:
        back = await all_to_all(t, tag + "rs", shares)
        del back  # the owners' answers: as many rows back (what an all-gather moves)
        await all_to_all(t, tag + "ag", shares)

    for size in plan["sizes"]:
        reps = plan["reps"][str(size)]
        whole = make_rows(size * MB, dim, start=st.rank * 10_000_000)
        shares = split_rows(whole, n)
        for rep in range(reps + 1):  # the first of each is a warm-up, dropped by the driver
            for name, t in transports.items():  # alternating, so drift hits both alike
                got = timed(t, f"{name}|one-way|{size}", one_way, f"o{step[0]}",
                            whole if st.rank == 0 else None)
                if st.rank == 1 and rep == 0:
                    ok = np.array_equal(got["ids"], whole["ids"] - 10_000_000)
                    st.received_writeable.add(bool(got["rows"].flags.writeable))
                    checks.append(f"{name} one-way {size}: {'ok' if ok else 'WRONG'}")
                got = None
                got = timed(t, f"{name}|all-to-all|{size}", all_to_all, f"a{step[0]}", shares)
                if rep == 0:
                    peers = [p for p in range(n) if p != st.rank]
                    ok = all(np.array_equal(g["ids"] % 10_000_000, shares[st.rank]["ids"]
                                            % 10_000_000) for g in got)
                    ok = ok and all(int(g["ids"][0]) // 10_000_000 == p
                                    for g, p in zip(got, peers))
                    checks.append(f"{name} all-to-all {size}: {'ok' if ok else 'WRONG'}")
                got = None
                timed(t, f"{name}|round|{size}", round_trip, f"r{step[0]}", shares)
        del whole, shares
    return {"rank": st.rank, "times": times, "checks": checks,
            "received_writeable": sorted(st.received_writeable)}


# --------------------------------------------------------------- (d) futures via the scheduler

def _noop(x: int) -> int:
    return x


def _make(nbytes: float, dim: int, start: int, token: str) -> dict[str, np.ndarray]:
    return make_rows(nbytes, dim, start)


def _consume(*parts: dict[str, np.ndarray]) -> int:
    return sum(len(p["ids"]) for p in parts)


def _collect(*parts: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """An owner's answers, one per contributor, as big as what it sent (here: the same rows)."""
    return list(parts)


def futures_baseline(client: Any, addresses: list[str], plan: dict[str, Any]) -> dict[str, Any]:
    from distributed import wait

    n, dim = len(addresses), plan["dim"]
    times: dict[str, list[float]] = {}
    for i in range(plan["warmup"]):
        client.submit(_noop, i, workers=[addresses[1]], pure=False).result()
    for i in range(plan["future_pings"]):
        start = time.perf_counter()
        client.submit(_noop, i, workers=[addresses[1]], pure=False).result()
        times.setdefault("futures|ping|0", []).append(time.perf_counter() - start)
    for size in plan["sizes"]:
        reps = plan["future_reps"][str(size)]
        for rep in range(reps + 1):
            tok = uuid.uuid4().hex
            src = client.submit(_make, size * MB, dim, 0, tok, workers=[addresses[0]], pure=False)
            wait([src])
            start = time.perf_counter()
            client.submit(_consume, src, workers=[addresses[1]], pure=False).result()
            times.setdefault(f"futures|one-way|{size}", []).append(time.perf_counter() - start)
            del src
            # all-to-all: worker i holds one part per owner j, owners consume theirs
            parts = [[client.submit(_make, size * MB / n, dim, 0, f"{tok}-{i}-{j}",
                                    workers=[addresses[i]], pure=False) for j in range(n)]
                     for i in range(n)]
            wait([p for row in parts for p in row])
            start = time.perf_counter()
            got = [client.submit(_consume, *[parts[i][j] for i in range(n) if i != j],
                                 workers=[addresses[j]], pure=False) for j in range(n)]
            client.gather(got)
            times.setdefault(f"futures|all-to-all|{size}", []).append(
                time.perf_counter() - start)
            # round: owners collect their shares (wave 1), and each contributor gets back as
            # much from each owner (a getitem task on the owner, then a task on the contributor);
            # fresh parts, since the owners hold replicas of the ones above now
            del got
            parts = [[client.submit(_make, size * MB / n, dim, 0, f"{tok}-r{i}-{j}",
                                    workers=[addresses[i]], pure=False) for j in range(n)]
                     for i in range(n)]
            wait([p for row in parts for p in row])
            start = time.perf_counter()
            owned = [client.submit(_collect, *[parts[i][j] for i in range(n) if i != j],
                                   workers=[addresses[j]], pure=False) for j in range(n)]
            pieces = [[client.submit(operator.getitem, owned[j], i - (i > j),
                                     workers=[addresses[j]], pure=False)
                       for j in range(n) if j != i] for i in range(n)]
            back = [client.submit(_consume, *pieces[i], workers=[addresses[i]], pure=False)
                    for i in range(n)]
            client.gather(back)
            times.setdefault(f"futures|round|{size}", []).append(time.perf_counter() - start)
            del parts, owned, pieces, back
    return times


# ----------------------------------------------------------------------------------- the driver

def summary(values: list[float], drop_first: bool) -> dict[str, float]:
    vals = values[1:] if drop_first and len(values) > 1 else values
    vals = sorted(vals)
    p90 = vals[min(len(vals) - 1, round(0.9 * (len(vals) - 1)))]
    return {"n": len(vals), "median_ms": statistics.median(vals) * 1e3, "p90_ms": p90 * 1e3}


def run_cluster(n_workers: int, plan: dict[str, Any]) -> dict[str, Any]:
    from dw2v.dask_cluster import local_cluster

    out: dict[str, Any] = {"workers": n_workers}
    with local_cluster(n_workers, dashboard_address=None) as client:
        client.wait_for_workers(n_workers)
        addresses = sorted(client.nthreads())
        session = uuid.uuid4().hex[:8]
        started = time.perf_counter()
        listen = client.run(setup, session, addresses)
        listen_addresses = [listen[a] for a in addresses]
        client.run(connect, session, listen_addresses)
        out["setup_s"] = time.perf_counter() - started
        futures = [client.submit(resident, session, plan, workers=[a], pure=False,
                                 allow_other_workers=False, key=f"resident-{session}-{r}")
                   for r, a in enumerate(addresses)]
        results = client.gather(futures)
        client.run(teardown, session)
        rows: dict[str, dict[str, float]] = {}
        by_rank = {r["rank"]: r["times"] for r in results}
        keys = sorted({k for r in results for k in r["times"]})
        for key in keys:
            transport, pattern, _size = key.split("|")
            if transport == "hop" or pattern in ("ping", "ping-on-loop", "one-way"):
                vals = by_rank[0][key]
            else:  # the slowest worker of each repetition
                vals = [max(v) for v in zip(*(by_rank[r][key] for r in by_rank))]
            rows[key] = summary(vals, drop_first=pattern in ("one-way", "all-to-all", "round"))
        out["checks"] = [c for r in results for c in r["checks"]]
        out["received_writeable"] = sorted({w for r in results for w in r["received_writeable"]})
        base = futures_baseline(client, addresses, plan)
        for key, vals in base.items():
            pattern = key.split("|")[1]
            rows[key] = summary(vals, drop_first=pattern != "ping")
        out["rows"] = rows
    return out


def memcpy_gbps(nbytes: int = 96 * MB) -> float:
    a = np.ones(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        s = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - s)
    return nbytes / best / 1e9


def _tcp_sink(port_queue: Any, total: int) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port_queue.put(server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            buf = bytearray(total)
            view = memoryview(buf)
            while True:
                got = 0
                while got < total:
                    k = conn.recv_into(view[got:])
                    if k == 0:
                        return
                    got += k
                conn.sendall(b"k")


def tcp_ceiling(nbytes: int, reps: int = 7) -> float:
    """Reference, not a candidate: median seconds to push ``nbytes`` over a plain loopback TCP
    socket to another process (``sendall`` / ``recv_into``) and get a 1-byte answer."""
    import multiprocessing as mp
    import socket

    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    proc = ctx.Process(target=_tcp_sink, args=(ports, nbytes), daemon=True)
    proc.start()
    data = np.ones(nbytes, dtype=np.uint8)
    out = []
    with socket.create_connection(("127.0.0.1", ports.get(timeout=30))) as sock:
        for _ in range(reps + 1):
            start = time.perf_counter()
            sock.sendall(memoryview(data))
            sock.recv(1)
            out.append(time.perf_counter() - start)
    proc.join(10)
    return statistics.median(out[1:])


def print_tables(results: list[dict[str, Any]], sizes: list[float]) -> None:
    print("\n| workers | task thread -> loop hop, sync() | run_coroutine_threadsafe | "
          + " | ".join(f"{tr} ping on the loop" for tr in TRANSPORTS_DIRECT) + " |  (medians, ms)")
    print("|---|---|---|" + "---|" * len(TRANSPORTS_DIRECT))
    for res in results:
        r = res["rows"]
        print(f"| {res['workers']} | {r['hop|sync|0']['median_ms']:.3f} | "
              f"{r['hop|run_coroutine_threadsafe|0']['median_ms']:.3f} | "
              + " | ".join(f"{r[f'{tr}|ping-on-loop|0']['median_ms']:.3f}"
                           for tr in TRANSPORTS_DIRECT) + " |")
    print("\n| transport | workers | ping median ms | ping p90 ms | " + " | ".join(
        f"one-way {s:g} MB ms" for s in sizes) + " |")
    print("|---|---|---|---|" + "---|" * len(sizes))
    for res in results:
        for tr in (*TRANSPORTS_DIRECT, "futures"):
            rows = res["rows"]
            ping = rows.get(f"{tr}|ping|0")
            cells = [f"{rows[f'{tr}|one-way|{s}']['median_ms']:.1f}" for s in sizes]
            print(f"| {tr} | {res['workers']} | {ping['median_ms']:.2f} | {ping['p90_ms']:.2f} | "
                  + " | ".join(cells) + " |")
    for pattern in ("all-to-all", "round"):
        print(f"\n{pattern} (MB held per worker; median ms / p90 ms; effective GB/s = bytes "
              f"each worker sends / median)")
        print("| transport | workers | " + " | ".join(f"{s:g} MB" for s in sizes) + " |")
        print("|---|---|" + "---|" * len(sizes))
        for res in results:
            n = res["workers"]
            for tr in (*TRANSPORTS_DIRECT, "futures"):
                cells = []
                for s in sizes:
                    r = res["rows"][f"{tr}|{pattern}|{s}"]
                    sent = s * MB * (n - 1) / n * (2 if pattern == "round" else 1)
                    gbps = sent / (r["median_ms"] / 1e3) / 1e9
                    cells.append(f"{r['median_ms']:.1f} / {r['p90_ms']:.1f} ({gbps:.2f})")
                print(f"| {tr} | {n} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1, 4, 8, 24, 96],
                        help="payload per worker, MB (10^6 bytes)")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--pings", type=int, default=400)
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()

    def reps(size: float, scale: float, most: int) -> int:
        return max(5, min(most, round(scale / size)))

    plan = {"dim": args.dim, "sizes": args.sizes, "warmup": 20, "pings": args.pings,
            "future_pings": 60,
            "reps": {str(s): reps(s, 200, 30) for s in args.sizes},
            "future_reps": {str(s): reps(s, 50, 10) for s in args.sizes}}
    import dask
    import distributed

    begun = time.time()
    print(f"dw2v bench_exchange: distributed {distributed.__version__}, numpy {np.__version__},"
          f" {os.cpu_count()} cores, rows of d={args.dim} ({row_bytes(args.dim)} bytes each),"
          f" compression={dask.config.get('distributed.comm.compression')}")
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S')}")
    try:
        from distributed import Pub  # noqa: F401
        pubsub = "importable (not measured by this script)"
    except ImportError:
        pubsub = f"not available in distributed {distributed.__version__} (removed)"
    print(f"(c) Pub/Sub: {pubsub}")
    frames = frames_check(args.dim)
    for name, info in frames.items():
        print(f"serialization of an 8 MB message, arrays {name}: {info}")
    print(f"memcpy in one process (reference): {memcpy_gbps():.1f} GB/s")
    ceiling = {s: tcp_ceiling(int(s * MB)) for s in args.sizes}
    print("plain loopback TCP socket to another process (reference, not a candidate): " + ", ".join(
        f"{s:g} MB {v * 1e3:.1f} ms ({s * MB / v / 1e9:.2f} GB/s)" for s, v in ceiling.items()))

    results = []
    for n in args.workers:
        t0 = time.perf_counter()
        res = run_cluster(n, plan)
        res["seconds"] = time.perf_counter() - t0
        print(f"{n} workers: {res['seconds']:.1f} s (direct setup {res['setup_s'] * 1e3:.0f} ms);"
              f" checks: {', '.join(sorted({c.split(': ')[1] for c in res['checks']}))}"
              f" ({len(res['checks'])}); received arrays writeable: {res['received_writeable']}")
        results.append(res)
    print_tables(results, args.sizes)
    print(f"\nfinished {time.strftime('%H:%M:%S')}, {time.time() - begun:.0f} s in all")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"plan": plan, "frames": frames, "pubsub": pubsub, "tcp_ceiling_s": ceiling,
                       "results": results},
                      f, indent=1)


if __name__ == "__main__":
    main()
