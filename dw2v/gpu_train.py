"""A resident trainer's replica on a GPU (``--device gpu``, or ``auto`` on a worker with one).

Both matrices, the base the peers agree on, the touch counts, the sampling tables and the
worker's token-id shards stay in device memory for the whole run; a round runs the CUDA
kernels of ``dw2v.kernels.gpu`` there, and only the touched rows' changes leave the device (to
the same exchange the CPU workers use, so GPU and CPU workers average with each other); the
average comes back the same way. Arrays are CuPy's on a GPU and NumPy's under Numba's CUDA
simulator (CI), which runs the same kernels on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dw2v.config import TrainConfig
from dw2v.devices import check_settings, simulated
from dw2v.merge import Params, RowUpdate, diverged, split_by_owner
from dw2v.shard_train import SamplingTables, Slice, TrainCounters, train_with
from dw2v.token_shards import TokenShard

logger = logging.getLogger(__name__)

#: Thread blocks per multiprocessor: each trains one sentence at a time.
BLOCKS_PER_SM = 8


def array_module() -> Any:
    """CuPy on a GPU; NumPy under the simulator (its kernels take NumPy arrays)."""
    if simulated():
        return np
    import cupy

    return cupy


class DeviceReplica:
    """:class:`dw2v.shard_train.HostReplica`'s methods, with the parameters on a GPU."""

    device = "gpu"

    def __init__(self, params: Params, peers: int, tables: SamplingTables,
                 config: TrainConfig) -> None:
        from dw2v.kernels import gpu

        check_settings(config.vector_size, config.negative)
        self.xp = xp = array_module()
        self.gpu, self.peers, self.config = gpu, peers, config
        self.W_in, self.W_out = xp.asarray(params.W_in), xp.asarray(params.W_out)
        if xp is np:  # the simulator's arrays are the host's: keep the caller's apart
            self.W_in, self.W_out = self.W_in.copy(), self.W_out.copy()
        self.base = (self.W_in.copy(), self.W_out.copy()) if peers > 1 else None
        vocab = len(params.W_in)
        self.touches = (xp.zeros(vocab, xp.int64), xp.zeros(vocab, xp.int64))
        self.unsynced = ((xp.zeros(vocab, xp.int64), xp.zeros(vocab, xp.int64))
                         if peers > 1 else None)
        self.tables = tuple(xp.array(t) for t in (tables.keep_prob, tables.alias_prob,
                                                     tables.alias_idx))
        self.shards: dict[str, Any] = {}  # token ids on the device, by shard
        self.threads = min(gpu.THREADS, config.vector_size)
        # the CPU's default skip-gram (HogBatch) where the batched kernel's shared memory holds
        # the window; the per-pair kernel beyond it
        self.batched = config.sg and config.shared_negatives
        if not config.sg and config.cbow_block > 1:
            logger.info("GPU: --cbow-block %d is the CPU kernel's; the GPU's CBOW draws its "
                        "negatives per centre word", config.cbow_block)
        if self.batched and not gpu.fits_batch(config.vector_size, config.window):
            self.batched = False
            logger.info("GPU: --dim %d / --window %d exceed the batched skip-gram kernel "
                        "(window <= %d, window x dim <= %d): each pair draws its own "
                        "negatives", config.vector_size, config.window, gpu.MAX_CONTEXT // 2,
                        gpu.BATCH_SHARED_BYTES // 16)
        if simulated():
            self.blocks = 2
        else:
            from numba import cuda

            self.blocks = cuda.get_current_device().MULTIPROCESSOR_COUNT * BLOCKS_PER_SM

    @property
    def vocab_size(self) -> int:
        return int(self.W_in.shape[0])

    def _host(self, array: Any) -> np.ndarray:
        return np.array(array) if self.xp is np else self.xp.asnumpy(array)

    def _kernel(self, part: Slice, ids: np.ndarray, offsets: np.ndarray, lr_start: float,
                lr_end: float, seed: int) -> np.ndarray:
        if part.shard not in self.shards:
            self.shards[part.shard] = self.xp.array(ids)  # a copy: the shard is read-only
        lo, hi = int(offsets[part.s_lo]), int(offsets[part.s_hi])
        config = self.config
        counters, _ = self.gpu.train(
            self.shards[part.shard][lo:hi], offsets[part.s_lo:part.s_hi + 1] - lo, self.W_in,
            self.W_out, *self.tables, sg=config.sg, window=config.window,
            negative=config.negative, lr_start=lr_start, lr_end=lr_end, seed=seed,
            blocks=self.blocks, threads=self.threads, touches=self.touches,
            shared_negatives=self.batched)
        return counters

    def train(self, slices: Sequence[Slice], *, lr_start: float, lr_end: float, seed: int,
              skipped: list[str] | None,
              reader: Callable[[str | Path], TokenShard]) -> TrainCounters:
        for t in self.touches:
            t[:] = 0
        return train_with(slices, self._kernel, self.vocab_size, self.config,
                          lr_start=lr_start, lr_end=lr_end, seed=seed, skipped=skipped,
                          reader=reader)

    def _offer_one(self, matrix: Any, base: Any, pending: Any, touches: Any, select: Any,
                   number: int, name: str) -> list[RowUpdate]:
        xp = self.xp
        pending += touches
        mask = pending > 0
        if select is not None:
            mask &= select
        ids = xp.flatnonzero(mask).astype(xp.int32)
        delta = matrix[ids] - base[ids]
        bad = int((~xp.isfinite(delta)).any(axis=1).sum()) if len(ids) else 0
        if bad:
            raise diverged(bad, name, number)
        weights = pending[ids].astype(xp.float32)
        pending[ids] = 0  # their touches go with them
        update = RowUpdate(self._host(ids), self._host(delta), self._host(weights))
        return split_by_owner(update, self.peers)

    def offer(self, number: int, select: np.ndarray | None) -> list[list[RowUpdate]]:
        assert self.base is not None and self.unsynced is not None
        mask = None if select is None else self.xp.asarray(select)
        return [self._offer_one(m, b, p, t, mask, number, name)
                for m, b, p, t, name in zip((self.W_in, self.W_out), self.base, self.unsynced,
                                            self.touches, ("input ", "output "))]

    def _rows(self, parts: Sequence[RowUpdate]) -> tuple[Any, Any]:
        """The parts' ids and changes, as one pair of device arrays."""
        xp, dim = self.xp, self.W_in.shape[1]
        ids = np.concatenate([p.ids for p in parts]) if parts else np.zeros(0, np.int32)
        delta = (np.concatenate([p.delta for p in parts]) if parts
                 else np.zeros((0, dim), np.float32))
        return xp.asarray(ids), xp.asarray(delta.reshape(-1, dim))

    def settle(self, averaged: Sequence[Sequence[RowUpdate]]) -> None:
        assert self.base is not None
        for matrix, agreed, parts in zip((self.W_in, self.W_out), self.base, averaged):
            ids, delta = self._rows(parts)
            agreed[ids] += delta
            matrix[ids] = agreed[ids]

    def trade(self, own: Sequence[Sequence[RowUpdate]],
              averaged: Sequence[Sequence[RowUpdate]]) -> None:
        assert self.base is not None
        for matrix, agreed, mine, parts in zip((self.W_in, self.W_out), self.base, own,
                                               averaged):
            ids, delta = self._rows(mine)
            matrix[ids] -= delta
            ids, delta = self._rows(parts)
            matrix[ids] += delta
            agreed[ids] += delta

    def check_finite(self, number: int) -> int:
        xp, rows = self.xp, 0
        for name, matrix, touches in (("input ", self.W_in, self.touches[0]),
                                      ("output ", self.W_out, self.touches[1])):
            touched = touches > 0
            rows += int(touched.sum())
            bad = int((~xp.isfinite(matrix[touched])).any(axis=1).sum())
            if bad:
                raise diverged(bad, name, number)
        return rows

    def owned(self, rank: int) -> Params:
        return Params(self._host(self.W_in[rank::self.peers]),
                      self._host(self.W_out[rank::self.peers]))
