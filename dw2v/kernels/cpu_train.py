"""Checked entry point to the Numba kernels: validates arrays, splits sentences over threads.

Threads share ``W_in`` and ``W_out`` and update them without locks (Hogwild), each on its own
contiguous range of sentences (balanced by words) with its own random stream. With one thread
a seed gives bit-identical results; with several, results differ run to run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from dw2v.kernels import cpu


@dataclass(frozen=True)
class Trace:
    """Every example a deterministic run trained, in order (for replay through the reference).

    ``words``: (n, W) input words (skip-gram: column 0; CBOW: context padded with -1);
    ``targets``: (n, 1 + negative), positive first; ``lr``: (n,) learning rate used.
    """

    words: np.ndarray
    targets: np.ndarray
    lr: np.ndarray


def _expect(name: str, array: np.ndarray, dtype: type, ndim: int) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype)}, got {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")


def check_arrays(ids: np.ndarray, offsets: np.ndarray, W_in: np.ndarray, W_out: np.ndarray,
                 keep_prob: np.ndarray, alias_prob: np.ndarray, alias_idx: np.ndarray) -> None:
    """Raise a clear TypeError/ValueError for any wrong dtype, shape or id out of range."""
    _expect("ids", ids, np.int32, 1)
    _expect("offsets", offsets, np.int64, 1)
    _expect("W_in", W_in, np.float32, 2)
    _expect("W_out", W_out, np.float32, 2)
    for name, arr, dtype in (("keep_prob", keep_prob, np.float32),
                             ("alias_prob", alias_prob, np.float32),
                             ("alias_idx", alias_idx, np.int32)):
        _expect(name, arr, dtype, 1)
    if W_in.shape != W_out.shape:
        raise ValueError(f"W_in {W_in.shape} and W_out {W_out.shape} must have the same shape")
    if not (W_in.flags.c_contiguous and W_out.flags.c_contiguous):
        raise ValueError("W_in and W_out must be C-contiguous")
    if not (W_in.flags.writeable and W_out.flags.writeable):
        raise ValueError("W_in and W_out must be writeable (they are updated in place)")
    vocab = W_in.shape[0]
    for name, arr in (("keep_prob", keep_prob), ("alias_prob", alias_prob),
                      ("alias_idx", alias_idx)):
        if len(arr) != vocab:
            raise ValueError(f"{name} has {len(arr)} entries, expected {vocab} (rows of W_in)")
    if len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids):
        raise ValueError("offsets must start at 0 and end at len(ids)")
    if len(offsets) > 1 and (np.diff(offsets) < 0).any():
        raise ValueError("offsets must not decrease")
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"ids must be in [0, {vocab}), got [{ids.min()}, {ids.max()}]")


def split_sentences(offsets: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Contiguous sentence ranges with about equal numbers of words (empty ones dropped)."""
    n = len(offsets) - 1
    goals = np.linspace(0, offsets[-1], parts + 1)[1:-1]
    after = np.clip(np.searchsorted(offsets, goals, side="left"), 1, max(n, 1))
    nearer_before = (goals - offsets[after - 1]) < (offsets[np.minimum(after, n)] - goals)
    cuts = np.where(nearer_before, after - 1, after)
    bounds = [0, *sorted(set(int(c) for c in cuts if 0 < c < n)), n]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def train(ids: np.ndarray, offsets: np.ndarray, W_in: np.ndarray, W_out: np.ndarray,
          keep_prob: np.ndarray, alias_prob: np.ndarray, alias_idx: np.ndarray, *, sg: bool,
          window: int, negative: int, lr_start: float, lr_end: float, seed: int,
          threads: int = 1, compute_loss: bool = True, loss_every: int = 1,
          shared_negatives: bool = False, cbow_block: int = 1,
          touches: tuple[np.ndarray, np.ndarray] | None = None,
          trace_capacity: int = 0) -> tuple[np.ndarray, Trace | None]:
    """Train one pass over the sentences; return counters (float64, 5) and the trace if asked.

    Counters: words read, words kept after subsampling, examples, loss sum, loss terms.
    ``loss_every``: with ``compute_loss``, the loss is scored on every ``loss_every``-th
    example only (its terms counted alike, so the mean stays an unbiased estimate).
    ``touches``: two int64 (V) arrays that receive how many updates each input and output row
    got (added to). ``shared_negatives`` (skip-gram only) selects the HogBatch kernel: one set
    of negatives per centre word, shared by its whole window. The trace then has one row per
    centre word. ``cbow_block`` (CBOW): that many consecutive examples share one set, at up
    to :data:`cpu.CBOW_BLOCK_MAX_NEGATIVE` negatives (above, and at 1, a set per example).
    """
    check_arrays(ids, offsets, W_in, W_out, keep_prob, alias_prob, alias_idx)
    if window < 1 or negative < 0 or threads < 1 or loss_every < 1:
        raise ValueError(f"window={window} must be >= 1, negative={negative} >= 0, "
                         f"threads={threads} >= 1, loss_every={loss_every} >= 1")
    if trace_capacity and threads != 1:
        raise ValueError("tracing needs the deterministic single-thread mode (threads=1)")
    if shared_negatives and not sg:
        raise ValueError("shared_negatives applies to skip-gram; CBOW shares by cbow_block")
    if cbow_block < 1:
        raise ValueError(f"cbow_block={cbow_block} must be >= 1")
    blocked = not sg and cbow_block > 1 and negative <= cpu.CBOW_BLOCK_MAX_NEGATIVE
    kernel = (cpu.train_sg_batch if shared_negatives else cpu.train_sg) if sg else cpu.train_cbow
    width = 1 if sg and not shared_negatives else 2 * window
    trace = Trace(words=np.full((trace_capacity, width), -1, np.int64),
                  targets=np.zeros((trace_capacity, negative + 1), np.int64),
                  lr=np.full(trace_capacity, np.nan))
    no_touches = np.zeros(0, dtype=np.int64)
    touches_in, touches_out = touches if touches is not None else (no_touches, no_touches)
    for name, arr in (("touches_in", touches_in), ("touches_out", touches_out)):
        if touches is not None:
            _expect(name, arr, np.int64, 1)
            if len(arr) != W_in.shape[0]:
                raise ValueError(f"{name} has {len(arr)} entries, expected {W_in.shape[0]}")
    # no sentences: one empty call all the same, which compiles the kernel (a warm-up)
    ranges = split_sentences(offsets, threads) or [(0, 0)]
    seeds = np.random.SeedSequence(seed).generate_state(max(len(ranges), 1), dtype=np.uint64)
    counters = np.zeros((max(len(ranges), 1), 5), dtype=np.float64)
    # each thread counts into its own arrays (no lost increments), added up after the join
    own = [(touches_in, touches_out)] + [
        (np.zeros_like(touches_in), np.zeros_like(touches_out)) for _ in ranges[1:]]

    def run(part: int) -> None:
        lo, hi = ranges[part]
        if blocked:  # the blocked CBOW kernel takes the block size besides the others' arguments
            cpu.train_cbow_batch(ids, offsets, lo, hi, W_in, W_out, keep_prob, alias_prob,
                                 alias_idx, window, negative, lr_start, lr_end,
                                 np.uint64(seeds[part]), loss_every if compute_loss else 0,
                                 cbow_block, counters[part], own[part][0], own[part][1],
                                 trace.words, trace.targets, trace.lr)
            return
        kernel(ids, offsets, lo, hi, W_in, W_out, keep_prob, alias_prob, alias_idx, window,
               negative, lr_start, lr_end, np.uint64(seeds[part]),
               loss_every if compute_loss else 0,
               counters[part], own[part][0], own[part][1], trace.words, trace.targets,
               trace.lr)

    if len(ranges) <= 1:
        for part in range(len(ranges)):
            run(part)
    else:
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="dw2v-kernel") as pool:
            list(pool.map(run, range(len(ranges))))
    for extra_in, extra_out in own[1:]:
        touches_in += extra_in
        touches_out += extra_out
    total = counters.sum(axis=0)
    if not trace_capacity:
        return total, None
    n = int(np.count_nonzero(~np.isnan(trace.lr)))
    if n == trace_capacity:
        raise ValueError(f"trace_capacity={trace_capacity} was filled: the trace may be cut")
    return total, Trace(words=trace.words[:n], targets=trace.targets[:n], lr=trace.lr[:n])
