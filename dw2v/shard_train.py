"""What one worker does: train over its token-id shards from given parameters.

A pure function of (parameters, shards, learning-rate range, seed): the input parameters are
not modified, so a task Dask recomputes after losing a worker gives the same result (exactly
with one kernel thread; up to Hogwild's ordering with several).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dw2v.config import TrainConfig
from dw2v.errors import InputError
from dw2v.kernels import cpu
from dw2v.kernels.cpu_train import train as train_kernel
from dw2v.token_shards import read_token_shard
from dw2v.vocab import Vocabulary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Params:
    """Input and output vectors, float32 (V, dim) each."""

    W_in: np.ndarray
    W_out: np.ndarray

    def copy(self) -> "Params":
        return Params(self.W_in.copy(), self.W_out.copy())


@dataclass(frozen=True)
class SamplingTables:
    """What the kernels need from the vocabulary: keep-probabilities and the noise alias table."""

    keep_prob: np.ndarray
    alias_prob: np.ndarray
    alias_idx: np.ndarray

    @classmethod
    def from_vocab(cls, vocab: Vocabulary) -> "SamplingTables":
        alias_prob, alias_idx = cpu.build_alias(vocab.noise_distribution)
        return cls(vocab.keep_probabilities.astype(np.float32), alias_prob, alias_idx)


@dataclass(frozen=True)
class TrainCounters:
    """Counters of one training call (summed over shards and epochs)."""

    words_read: int
    words_kept: int
    examples: int
    loss_sum: float
    loss_terms: int
    seconds: float
    #: Token-id shards skipped as unreadable (``skip_bad_shards``).
    skipped: tuple[str, ...] = ()

    @property
    def loss(self) -> float:
        """Mean sigmoid cross-entropy per term (positive and negative)."""
        return self.loss_sum / self.loss_terms if self.loss_terms else float("nan")

    @property
    def words_per_second(self) -> float:
        return self.words_read / self.seconds if self.seconds else 0.0


#: Input vectors start uniform in +-INIT_SCALE/dim. word2vec C uses 0.5, gensim 4 uses 1.0;
#: on the development corpus 1.0 gave +0.004 analogy accuracy and +0.006 WordSim-353 Spearman
#: over 0.5 for skip-gram (mean of seeds 1-4, benchmarks/RESULTS.md), so dw2v follows gensim.
INIT_SCALE = 1.0


def init_params(vocab_size: int, dim: int, seed: int) -> Params:
    """Input vectors uniform in +-INIT_SCALE/dim, output vectors zero."""
    rng = np.random.default_rng(seed)
    W_in = (rng.random((vocab_size, dim), dtype=np.float32) - np.float32(0.5)) * np.float32(
        2.0 * INIT_SCALE / dim)
    return Params(W_in.astype(np.float32, copy=False),
                  np.zeros((vocab_size, dim), dtype=np.float32))


@dataclass(frozen=True)
class Slice:
    """Sentences ``[s_lo, s_hi)`` of one token-id shard, in one epoch (``words`` ids in all)."""

    shard: str
    index: int
    epoch: int
    s_lo: int
    s_hi: int
    words: int


@dataclass(frozen=True)
class WorkerResult:
    """What one worker returns for a round: parameters, how often it touched each row (the
    weights of averaging), counters, and which worker it ran on."""

    params: Params
    touches_in: np.ndarray
    touches_out: np.ndarray
    counters: TrainCounters
    worker: str = ""


def stream_slices(shards: Sequence[str | Path], epochs: int, lo: int, hi: int,
                  sizes: Sequence[int] | None = None,
                  skipped: list[str] | None = None) -> list[Slice]:
    """The sentences of positions ``[lo, hi)`` of a worker's stream (its shards in order, epoch
    after epoch). A sentence belongs to the range its first word falls in, so consecutive
    ranges cover every sentence exactly once. With ``sizes`` (the planned tokens per shard)
    and a ``skipped`` list, an unreadable shard is skipped (its positions stay reserved) and
    named in ``skipped``; otherwise it raises ``InputError``."""
    slices = []
    position = 0
    for epoch in range(epochs):
        for index, path in enumerate(shards):
            try:
                offsets = read_token_shard(path).offsets
            except InputError as exc:
                if sizes is None or skipped is None:
                    raise
                if str(path) not in skipped:
                    logger.warning("skipping %s", exc)
                    skipped.append(str(path))
                position += sizes[index]
                if position >= hi:
                    return slices
                continue
            size = int(offsets[-1])
            if position + size > lo and position < hi and size:
                a = int(np.searchsorted(offsets[:-1], lo - position, side="left"))
                b = int(np.searchsorted(offsets[:-1], hi - position, side="left"))
                if b > a:
                    slices.append(Slice(str(path), index, epoch, a, b,
                                        int(offsets[b] - offsets[a])))
            position += size
            if position >= hi:
                return slices
    return slices


def train_slices(slices: Sequence[Slice], params: Params, tables: SamplingTables,
                 config: TrainConfig, *, lr_start: float, lr_end: float, seed: int,
                 count_touches: bool = True, worker: str = "",
                 skipped: list[str] | None = None) -> WorkerResult:
    """Train over ``slices`` in order from a copy of ``params``, the learning rate going
    linearly from ``lr_start`` to ``lr_end`` over their words. A shard that cannot be read (or
    holds ids outside the vocabulary) raises ``InputError`` naming it, or, with
    ``config.skip_bad_shards``, is skipped with a warning and named in ``skipped``."""
    skipped = [] if skipped is None else skipped
    bad: set[str] = set(skipped)
    started = time.perf_counter()
    out = params.copy()
    vocab = out.W_in.shape[0]
    touches = (np.zeros(vocab, np.int64), np.zeros(vocab, np.int64)) if count_touches else None
    total = max(sum(s.words for s in slices), 1)
    done = 0
    counters = np.zeros(5)
    opened: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for part in slices:
        if part.shard in bad:
            continue
        try:
            if part.shard not in opened:
                shard = read_token_shard(part.shard)
                opened[part.shard] = (np.asarray(shard.ids), np.asarray(shard.offsets))
            ids, offsets = opened[part.shard]
            lo, hi = int(offsets[part.s_lo]), int(offsets[part.s_hi])
            top = int(ids[lo:hi].max()) if hi > lo else -1  # only the words this part trains
            if top >= vocab:
                raise InputError(part.shard, f"token-id shard holds id {top}, outside the "
                                             f"vocabulary of {vocab} words")
        except InputError as exc:
            if not config.skip_bad_shards:
                raise
            logger.warning("skipping %s", exc)
            bad.add(part.shard)
            skipped.append(part.shard)
            continue
        a = lr_start + (lr_end - lr_start) * done / total
        done += part.words
        b = lr_start + (lr_end - lr_start) * done / total
        part_seed = int(np.random.SeedSequence(
            [seed, part.epoch, part.index, part.s_lo]).generate_state(1)[0])
        counts, _ = train_kernel(
            ids[lo:hi], offsets[part.s_lo:part.s_hi + 1] - lo, out.W_in, out.W_out,
            tables.keep_prob, tables.alias_prob, tables.alias_idx, sg=config.sg,
            window=config.window, negative=config.negative, lr_start=a, lr_end=b,
            seed=part_seed, threads=config.threads, compute_loss=config.compute_loss,
            shared_negatives=config.shared_negatives and config.sg, touches=touches)
        counters += counts
    result = TrainCounters(words_read=int(counters[cpu.WORDS_READ]),
                           words_kept=int(counters[cpu.WORDS_KEPT]),
                           examples=int(counters[cpu.EXAMPLES]), loss_sum=float(counters[3]),
                           loss_terms=int(counters[cpu.LOSS_TERMS]),
                           seconds=time.perf_counter() - started,
                           skipped=tuple(dict.fromkeys(skipped)))
    logger.info("trained %d words (%d kept) in %.1f s: %.0f words/s, loss %.4f",
                result.words_read, result.words_kept, result.seconds, result.words_per_second,
                result.loss)
    empty = np.zeros(0, np.int64)
    return WorkerResult(out, touches[0] if touches else empty, touches[1] if touches else empty,
                        result, worker)


def train_shards(shards: Sequence[str | Path], params: Params, tables: SamplingTables,
                 config: TrainConfig, *, lr_start: float, lr_end: float, seed: int,
                 epochs: int = 1) -> tuple[Params, TrainCounters]:
    """Train ``epochs`` passes over ``shards`` with the learning rate going linearly from
    ``lr_start`` to ``lr_end`` over all their words; return new parameters and counters."""
    slices = stream_slices(shards, epochs, 0, np.iinfo(np.int64).max)
    result = train_slices(slices, params, tables, config, lr_start=lr_start, lr_end=lr_end,
                          seed=seed, count_touches=False)
    return result.params, result.counters
