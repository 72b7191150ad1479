"""Engine v2's sparse exchange: resident tasks on the workers average their touched rows with
each other directly, nothing through the scheduler or the client (issue 17).

A :class:`Group` is one job's set of resident tasks, one per worker. Each pair of workers holds
one ``distributed.comm`` connection for the run: the lower rank connects to the higher one's
own worker address and calls a per-job handler that keeps the connection (``attach``;
benchmarks/RESULTS.md §9 measured it as fast as a listener of its own, without a second port).
A round's exchange (:meth:`Group.average`) is a reduce-scatter to the rows' owners (rows
interleaved by id, ``merge.owner_of``), each owner's touched-row weighted average
(``merge.average_updates``), and an all-gather of the owners' results; each worker then settles
its replica on them. The driver registers the handler on every worker once per job
(:func:`register`, through ``client.run``) before it launches the tasks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from dw2v.errors import ExchangeError
from dw2v.merge import RowUpdate, average_updates, split_by_owner

#: Seconds a worker waits for its peers to connect, or for a message, before it gives up.
TIMEOUT = 60.0


def _op(job: str) -> str:
    return f"dw2v_attach_{job}"


@dataclass
class _Inbound:
    """The connections peers opened to this worker for one job (held by its handler)."""

    comms: dict[int, Any] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _jobs(worker: Any) -> dict[str, _Inbound]:
    if not hasattr(worker, "_dw2v_exchange"):
        worker._dw2v_exchange = {}
    return worker._dw2v_exchange


async def register(job: str, dask_worker: Any) -> str:
    """On every worker, before the job's tasks start (``client.run(register, job)``): the
    handler a peer's connection calls first; it keeps the connection until the job ends."""
    inbound = _jobs(dask_worker).setdefault(job, _Inbound())

    async def attach(comm: Any, src: int) -> None:
        inbound.comms[src] = comm
        inbound.arrived.set()
        await inbound.done.wait()  # the worker's server leaves the comm to us until then

    dask_worker.handlers[_op(job)] = attach
    return dask_worker.address


async def unregister(job: str, dask_worker: Any) -> bool:
    """Remove the job's handler and release the connections it holds (``client.run``, at the
    end of a job whose tasks did not all close their groups); whether there was one."""
    inbound = _jobs(dask_worker).pop(job, None)
    if inbound is not None:
        inbound.done.set()
    return dask_worker.handlers.pop(_op(job), None) is not None


def _wrap(update: RowUpdate) -> dict[str, Any]:
    from distributed.protocol import to_serialize

    return {"ids": to_serialize(update.ids), "delta": to_serialize(update.delta),
            "touches": to_serialize(update.touches)}


def _unwrap(message: dict[str, Any]) -> RowUpdate:
    return RowUpdate(np.asarray(message["ids"]), np.asarray(message["delta"]),
                     np.asarray(message["touches"]))


class Group:
    """This worker's side of one job's exchange (made in the job's resident task)."""

    def __init__(self, worker: Any, job: str, addresses: Sequence[str],
                 timeout: float = TIMEOUT) -> None:
        self.worker, self.job, self.timeout = worker, job, timeout
        self.addresses = list(addresses)
        self.rank = self.addresses.index(worker.address)
        self.size = len(self.addresses)
        self.comms: dict[int, Any] = {}
        self.bytes_sent = 0
        self.bytes_received = 0
        self.controls: dict[int, dict[str, Any]] = {}
        self._control: dict[str, Any] = {}
        #: Seconds this worker spent in each step of its exchanges so far (observability).
        self.seconds = {"split": 0.0, "transfer": 0.0, "average": 0.0}

    @classmethod
    def join(cls, job: str, addresses: Sequence[str], timeout: float = TIMEOUT) -> Group:
        """Connect this worker (the calling task's) with every peer of the job."""
        from distributed import get_worker

        group = cls(get_worker(), job, addresses, timeout)
        group._run(group._connect())
        return group

    def _run(self, coroutine: Any) -> Any:
        """Run a coroutine on the worker's event loop from the task's thread."""
        from distributed.utils import sync

        return sync(self.worker.loop, lambda: coroutine)

    async def _connect(self) -> None:
        import distributed.comm

        args = self.worker.security.get_connection_args("worker")
        for peer in range(self.rank + 1, self.size):
            try:
                comm = await distributed.comm.connect(self.addresses[peer],
                                                      timeout=self.timeout, **args)
            except OSError as exc:
                raise ExchangeError(f"exchange: could not connect to worker "
                                    f"{self.addresses[peer]} ({exc})",
                                    peer=self.addresses[peer]) from None
            await comm.write({"op": _op(self.job), "src": self.rank, "reply": False})
            self.comms[peer] = comm
        inbound = _jobs(self.worker)[self.job]
        lower = set(range(self.rank))

        async def arrived() -> None:
            while not lower <= set(inbound.comms):
                inbound.arrived.clear()
                await inbound.arrived.wait()

        try:
            await asyncio.wait_for(arrived(), self.timeout)
        except asyncio.TimeoutError:
            missing = sorted(lower - set(inbound.comms))
            raise ExchangeError(f"exchange: workers {[self.addresses[p] for p in missing]} "
                                f"did not connect within {self.timeout:g} s",
                                peer=self.addresses[missing[0]]) from None
        self.comms.update({peer: inbound.comms[peer] for peer in lower})

    def average(self, updates: Sequence[RowUpdate | Sequence[RowUpdate]], rows: Sequence[int],
                round_index: int = 0, control: dict[str, Any] | None = None
                ) -> list[list[RowUpdate]]:
        """Exchange this worker's touched rows of each matrix (``updates[m]`` of a matrix of
        ``rows[m]`` rows: a RowUpdate, or its parts by owner as ``merge.offer`` makes them)
        with the group; return, per matrix, every owner's averaged rows (disjoint parts), to
        settle the replica on (``merge.settle``). Every worker of the group calls this with
        the same matrices, in the same order. ``control``: a small dict every peer receives
        with the first wave (``self.controls[rank]`` after the call, one per worker, this
        one's too). The arithmetic runs in the calling thread; the worker's event loop only
        moves the messages."""
        clock = time.perf_counter()
        shares = [split_by_owner(u, self.size) if isinstance(u, RowUpdate) else list(u)
                  for u in updates]
        clock = self._tick("split", clock)
        # reduce-scatter: each peer gets its share of every matrix; we keep ours
        self._control = control or {}
        received = self._run(self._all_to_all({p: [s[p] for s in shares] for p in self._peers}))
        self._control = {}
        self.controls[self.rank] = control or {}
        clock = self._tick("transfer", clock)
        mine = [average_updates([s[self.rank]] + [r[m] for r in received.values()], rows[m],
                                round_index) for m, s in enumerate(shares)]
        clock = self._tick("average", clock)
        # all-gather: every worker gets every owner's averaged rows
        theirs = self._run(self._all_to_all({p: mine for p in self._peers}))
        self._tick("transfer", clock)
        return [[mine[m], *(t[m] for t in theirs.values())] for m in range(len(updates))]

    def _tick(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[step] += now - since
        return now

    @property
    def _peers(self) -> list[int]:
        return [p for p in range(self.size) if p != self.rank]

    async def _all_to_all(self, outgoing: dict[int, list[RowUpdate]]
                          ) -> dict[int, list[RowUpdate]]:
        """Send each peer its parts and receive one message from each, all at once."""
        peers = list(outgoing)
        got = await asyncio.gather(*(self._send(p, outgoing[p]) for p in peers),
                                   *(self._recv(p) for p in peers))
        return dict(zip(peers, got[len(peers):]))

    async def _send(self, peer: int, parts: list[RowUpdate]) -> None:
        self.bytes_sent += sum(p.nbytes for p in parts)
        await self._io(peer, "send to", self.comms[peer].write(
            {"parts": [_wrap(p) for p in parts], "control": self._control}))

    async def _recv(self, peer: int) -> list[RowUpdate]:
        message = await self._io(peer, "hear from", self.comms[peer].read())
        parts = [_unwrap(p) for p in message["parts"]]
        self.bytes_received += sum(p.nbytes for p in parts)
        if message.get("control"):
            self.controls[peer] = message["control"]
        return parts

    async def _io(self, peer: int, what: str, step: Any) -> Any:
        """``step`` within the timeout; a lost or silent peer is an ExchangeError naming it."""
        from distributed.comm.core import CommClosedError

        try:
            return await asyncio.wait_for(step, self.timeout)
        except asyncio.TimeoutError:
            raise ExchangeError(f"exchange: could not {what} worker {self.addresses[peer]} "
                                f"within {self.timeout:g} s (hung or lost)",
                                peer=self.addresses[peer]) from None
        except (CommClosedError, OSError) as exc:
            raise ExchangeError(f"exchange: the connection to worker {self.addresses[peer]} "
                                f"closed ({exc}); the worker is probably lost",
                                peer=self.addresses[peer]) from None

    def close(self) -> None:
        """Close the job's connections and remove its handler on this worker."""
        async def close() -> None:
            for comm in self.comms.values():
                comm.abort()
            await unregister(self.job, self.worker)

        self._run(close())
