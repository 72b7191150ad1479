"""CUDA kernels (numba.cuda) for negative-sampling skip-gram with the CPU kernels' semantics.

One thread block trains one sentence at a time (blocks take sentences in turn, grid-stride),
its threads across the vector's dimensions; the block's thread 0 makes the random choices
(subsampling, redrawn per call; the shrunk window; the negatives, a negative equal to the
target skipped) from the sentence's own seed, so a result does not depend on how blocks are
scheduled, and writes them to shared memory; every thread then updates its dimensions. The
learning rate falls linearly over the words read, sentence by sentence, as on the CPU. Blocks
update the shared matrices without locks (Hogwild, as word2vec's own GPU ports do); touch
counts use atomics.

The kernels run on device arrays (CuPy's, through ``__cuda_array_interface__``) on a GPU, and
on NumPy arrays under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), where CI executes every
line (slowly: tiny problems only). Arrays in, arrays out; nothing here knows about Dask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from dw2v.kernels.cpu import EXAMPLES, LOSS_SUM, LOSS_TERMS, MAX_SCORE, WORDS_KEPT, WORDS_READ

#: Threads per block (across the dimensions); a block's shared memory holds MAX_DIM floats
#: of the context row's gradient and MAX_TARGETS targets.
THREADS = 32
MAX_DIM = 1024
MAX_TARGETS = 65


@cuda.jit(device=True, inline=True)
def _next(state):  # type: ignore[no-untyped-def]
    """xorshift64* (the CPU kernels' generator): the new state; its 64 random bits are
    ``state * 0x2545F4914F6CDD1D``."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state


@cuda.jit(device=True, inline=True)
def _bits(state):  # type: ignore[no-untyped-def]
    return state * np.uint64(0x2545F4914F6CDD1D)


@cuda.jit
def sg_kernel(ids, offsets, s_lo, s_hi, W_in, W_out, keep_prob, alias_prob, alias_idx,  # noqa
              window, negative, lr_start, lr_end, seeds, scratch, counters, touches_in,
              touches_out, trace_words, trace_targets, trace_lr, trace_n):
    """Skip-gram over sentences ``[s_lo, s_hi)``; ``seeds`` one per sentence, ``scratch`` one
    row per block (the longest sentence), ``counters`` (blocks, 5) float64, touch arrays and
    trace arrays of length 0 when off."""
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    block = cuda.blockIdx.x
    partial = cuda.shared.array(THREADS, np.float32)
    neu1e = cuda.shared.array(MAX_DIM, np.float32)
    targets = cuda.shared.array(MAX_TARGETS, np.int64)
    info = cuda.shared.array(4, np.int64)
    step = cuda.shared.array(1, np.float32)
    dim = W_in.shape[1]
    counting = touches_in.shape[0] > 0
    tracing = trace_lr.shape[0] > 0
    total = max(offsets[s_hi] - offsets[s_lo], 1)
    state = np.uint64(1)
    for s in range(s_lo + block, s_hi, cuda.gridDim.x):
        sentence = scratch[block]
        lr = lr_start + (lr_end - lr_start) * ((offsets[s] - offsets[s_lo]) / total)
        if t == 0:
            state = np.uint64(seeds[s - s_lo]) | np.uint64(1)
            n = 0
            for p in range(offsets[s], offsets[s + 1]):
                word = ids[p]
                state = _next(state)
                u = float(_bits(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
                if keep_prob[word] >= 1.0 or u < keep_prob[word]:
                    sentence[n] = word
                    n += 1
            info[0] = n
            counters[block, WORDS_READ] += offsets[s + 1] - offsets[s]
            counters[block, WORDS_KEPT] += n
        cuda.syncthreads()
        n = info[0]
        for i in range(n):
            if t == 0:
                state = _next(state)
                b = np.int64(_bits(state) % np.uint64(window))
                info[1] = max(0, i - window + b)
                info[2] = min(n, i + window + 1 - b)
            cuda.syncthreads()
            centre = sentence[i]
            for j in range(info[1], info[2]):
                if j == i:
                    continue
                word = sentence[j]
                if t == 0:
                    targets[0] = centre
                    for k in range(1, negative + 1):
                        state = _next(state)
                        bits = _bits(state)
                        column = np.int64(((bits >> np.uint64(32))
                                           * np.uint64(alias_prob.shape[0])) >> np.uint64(32))
                        coin = float(bits & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
                        targets[k] = column if coin < alias_prob[column] else alias_idx[column]
                for d in range(t, dim, nt):
                    neu1e[d] = 0.0
                cuda.syncthreads()
                for k in range(negative + 1):
                    target = targets[k]
                    if k > 0 and target == centre:
                        continue  # the same for every thread: targets are shared
                    acc = np.float32(0.0)
                    for d in range(t, dim, nt):
                        acc += W_in[word, d] * W_out[target, d]
                    partial[t] = acc
                    cuda.syncthreads()
                    if t == 0:
                        f = np.float32(0.0)
                        for q in range(nt):
                            f += partial[q]
                        f = min(max(f, -MAX_SCORE), MAX_SCORE)
                        label = 1.0 if k == 0 else 0.0
                        step[0] = (label - 1.0 / (1.0 + math.exp(-f))) * lr
                        x = -f if k == 0 else f  # the loss term: softplus(x), stable
                        loss = x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))
                        counters[block, LOSS_SUM] += loss
                        counters[block, LOSS_TERMS] += 1
                        if counting:
                            cuda.atomic.add(touches_out, target, 1)
                    cuda.syncthreads()
                    g = step[0]
                    for d in range(t, dim, nt):
                        neu1e[d] += g * W_out[target, d]
                        W_out[target, d] += g * W_in[word, d]
                    cuda.syncthreads()
                for d in range(t, dim, nt):
                    W_in[word, d] += neu1e[d]
                if t == 0:
                    counters[block, EXAMPLES] += 1
                    if counting:
                        cuda.atomic.add(touches_in, word, 1)
                    if tracing:
                        e = cuda.atomic.add(trace_n, 0, 1)
                        if e < trace_lr.shape[0]:
                            trace_words[e] = word
                            for k in range(negative + 1):
                                trace_targets[e, k] = targets[k]
                            trace_lr[e] = lr
                cuda.syncthreads()


def sentence_seeds(seed: int, first: int, count: int) -> np.ndarray:
    """One seed per sentence, from where it is (the call's ``seed`` and its index)."""
    return np.random.SeedSequence([seed, first]).generate_state(max(count, 1), np.uint64)[:count]


def train_sg(ids: Any, offsets: np.ndarray, W_in: Any, W_out: Any, keep_prob: Any,
             alias_prob: Any, alias_idx: Any, *, window: int, negative: int, lr_start: float,
             lr_end: float, seed: int, blocks: int = 64, threads: int = THREADS,
             touches: tuple[Any, Any] | None = None, trace_capacity: int = 0
             ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Train skip-gram over every sentence of ``offsets`` on the device (``W_in``, ``W_out``
    updated in place); return the counters (float64, 5: words read, kept, examples, loss sum,
    loss terms) and, with ``trace_capacity``, the examples in the order trained (one block
    trains them in sentence order)."""
    if W_in.shape[1] > MAX_DIM or negative + 1 > MAX_TARGETS or threads > THREADS:
        raise ValueError(f"the GPU kernel takes dim <= {MAX_DIM}, negative <= "
                         f"{MAX_TARGETS - 1}, threads <= {THREADS}")
    offsets = np.asarray(offsets, np.int64)
    sentences = len(offsets) - 1
    blocks = max(1, min(blocks, sentences))
    longest = int(np.diff(offsets).max()) if sentences else 1
    scratch = cuda.device_array((blocks, max(longest, 1)), np.int64)
    counters = cuda.to_device(np.zeros((blocks, 5), np.float64))
    none = cuda.to_device(np.zeros(0, np.int64))
    t_in, t_out = touches if touches is not None else (none, none)
    trace = (cuda.to_device(np.full(trace_capacity, -1, np.int64)),
             cuda.to_device(np.full((trace_capacity, negative + 1), -1, np.int64)),
             cuda.to_device(np.full(trace_capacity, np.nan)), cuda.to_device(np.zeros(1, np.int64)))
    seeds = cuda.to_device(sentence_seeds(seed, 0, sentences))
    sg_kernel[blocks, threads](ids, cuda.to_device(offsets), 0, sentences, W_in, W_out,
                               keep_prob, alias_prob, alias_idx, window, negative,
                               np.float32(lr_start), np.float32(lr_end), seeds, scratch,
                               counters, t_in, t_out, *trace)
    summed = counters.copy_to_host().sum(axis=0)
    if not trace_capacity:
        return summed, None
    n = min(int(trace[3].copy_to_host()[0]), trace_capacity)
    return summed, {"words": trace[0].copy_to_host()[:n], "targets": trace[1].copy_to_host()[:n],
                    "lr": trace[2].copy_to_host()[:n]}
