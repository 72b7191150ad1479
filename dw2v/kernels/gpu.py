"""CUDA kernels (numba.cuda) for negative-sampling skip-gram and CBOW with the CPU kernels'
semantics.

One thread block trains one sentence at a time (blocks take sentences in turn, grid-stride),
its threads across the vector's dimensions. The block's thread 0 makes the sentence's random
choices (subsampling, redrawn per call; the shrunk windows) from the sentence's own seed, so
a result does not depend on how blocks are scheduled. Three kernels:

- :func:`sg_batch_kernel`, skip-gram as the CPU's default (HogBatch, after FULL-W2V, Randall
  et al. 2021): a centre's window shares one set of negatives and is one minibatch; the
  window's context rows and their gradients sit in shared memory, each target's output row is
  read once per window;
- :func:`cbow_kernel`: the mean of the window predicts the centre (negatives drawn per centre
  word: the CPU's ``cbow_block`` is not ported here);
- :func:`sg_kernel`, skip-gram with negatives per pair (``shared_negatives=False``), thread 0
  drawing them.

The first two take their negatives drawn in bulk beforehand by :func:`draw_kernel`
(counter-based bits, every thread of the grid drawing its own). The learning rate falls
linearly over the words read, sentence by sentence, as on the CPU. Blocks update the shared
matrices without locks (Hogwild, as word2vec's own GPU ports do), each change added with
``atomicAdd`` so that no block's update is lost where two touch one row; touch counts use
atomics too.

The kernels run on device arrays (CuPy's, through ``__cuda_array_interface__``) on a GPU, and
on NumPy arrays under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), where CI executes every
line (slowly: tiny problems only). Arrays in, arrays out; nothing here knows about Dask.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
from numba import config as numba_config
from numba import cuda, types

from dw2v.kernels.cpu import EXAMPLES, LOSS_SUM, LOSS_TERMS, MAX_SCORE, WORDS_KEPT, WORDS_READ

#: Under the simulator, every thread's device-function call scans this module's globals
#: (``numba.cuda.simulator.kernelapi.swapped_cuda_module``), and the first NumPy overflow
#: warning of the uint64 generator adds ``__warningregistry__`` to them: a thread then fails
#: with "dictionary changed size during iteration" (seen once in CI). The registry exists
#: from the start, so a warning changes only its contents.
__warningregistry__: dict[Any, Any] = {}

#: Threads per block (across the dimensions); a block's shared memory holds MAX_DIM floats
#: of the context row's gradient and MAX_TARGETS targets.
THREADS = 32
MAX_DIM = 1024
MAX_TARGETS = 65
#: The batched skip-gram kernel keeps a window's context rows and their gradients in dynamic
#: shared memory, sized at launch to the window and the dimension (2 x 2 window x dim floats,
#: 8 KiB at window 5 and d = 100, so more blocks fit on a multiprocessor), at most
#: BATCH_SHARED_BYTES of the 48 KiB a block may hold without opting in; windows up to
#: MAX_CONTEXT / 2.
MAX_CONTEXT = 16
BATCH_SHARED_BYTES = 40 * 1024
#: Negatives drawn in bulk for one launch at most (int32: 64 MiB); longer calls are launched
#: in runs of whole sentences.
DRAWS_PER_LAUNCH = 1 << 24


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


@cuda.jit(device=True, inline=True)
def _uniform(state):  # type: ignore[no-untyped-def]
    return float(_bits(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@cuda.jit(device=True, inline=True)
def _subsample(ids, lo, hi, keep_prob, sentence, state):  # type: ignore[no-untyped-def]
    """Thread 0: the sentence's words after subsampling into ``sentence``; (state, kept)."""
    n = 0
    for p in range(lo, hi):
        word = ids[p]
        state = _next(state)
        if keep_prob[word] >= 1.0 or _uniform(state) < keep_prob[word]:
            sentence[n] = word
            n += 1
    return state, n


@cuda.jit(device=True, inline=True)
def _begin(ids, offsets, s, s_lo, s_hi, seeds, keep_prob, sentence, lr_start, lr_end,
           counters, block, info):  # type: ignore[no-untyped-def]
    """Sentence ``s`` of ``[s_lo, s_hi)``: thread 0 subsamples it into ``sentence`` (from the
    sentence's own seed) and counts its words; every thread gets (state, the words kept, the
    learning rate), and has read them before thread 0 writes again."""
    state = np.uint64(seeds[s - s_lo]) | np.uint64(1)
    if cuda.threadIdx.x == 0:
        state, info[0] = _subsample(ids, offsets[s], offsets[s + 1], keep_prob, sentence,
                                    state)
        counters[block, WORDS_READ] += offsets[s + 1] - offsets[s]
        counters[block, WORDS_KEPT] += info[0]
    cuda.syncthreads()
    n = info[0]
    cuda.syncthreads()
    return state, n, _rate(lr_start, lr_end, offsets, s, s_lo,
                           max(offsets[s_hi] - offsets[s_lo], 1))


@cuda.jit(device=True, inline=True)
def _window(state, i, n, window, info):  # type: ignore[no-untyped-def]
    """word2vec's shrunk window around position ``i`` (thread 0 draws b in [0, window)):
    every thread gets ``[max(0, i - window + b), min(n, i + window + 1 - b))``."""
    if cuda.threadIdx.x == 0:
        state = _next(state)
        b = np.int64(_bits(state) % np.uint64(window))
        info[1] = max(0, i - window + b)
        info[2] = min(n, i + window + 1 - b)
    cuda.syncthreads()
    j_lo, j_hi = info[1], info[2]
    cuda.syncthreads()
    return state, j_lo, j_hi


@cuda.jit(device=True, inline=True)
def _alias(bits, alias_prob, alias_idx):  # type: ignore[no-untyped-def]
    """One draw from the alias table: the high 32 bits pick a column, the low 32 the coin."""
    column = np.int64(((bits >> np.uint64(32)) * np.uint64(alias_prob.shape[0]))
                      >> np.uint64(32))
    coin = float(bits & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
    return column if coin < alias_prob[column] else alias_idx[column]


@cuda.jit(device=True, inline=True)
def _draw_targets(state, centre, targets, negative, alias_prob, alias_idx):  # type: ignore
    """Thread 0: ``targets[0] = centre``, then ``negative`` draws from the alias table."""
    targets[0] = centre
    for k in range(1, negative + 1):
        state = _next(state)
        targets[k] = _alias(_bits(state), alias_prob, alias_idx)
    return state


@cuda.jit(device=True, inline=True)
def _mix(x):  # type: ignore[no-untyped-def]
    """SplitMix64's output function: 64 well-mixed bits from a counter, so every draw of a
    bulk array is computed on its own, by any thread, in any order."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@cuda.jit
def draw_kernel(seed, alias_prob, alias_idx, out):  # type: ignore[no-untyped-def]
    """Negatives in bulk: ``out[p, k]`` (int32), the k-th noise word of position ``p``, drawn
    from the alias table with counter-based bits (``seed``, ``p * out.shape[1] + k``); every
    thread of the grid fills its own entries."""
    width = out.shape[1]
    for e in range(cuda.grid(1), out.shape[0] * width, cuda.gridsize(1)):
        bits = _mix(seed + np.uint64(e + 1) * np.uint64(0x9E3779B97F4A7C15))
        out[e // width, e % width] = _alias(bits, alias_prob, alias_idx)


@cuda.jit(device=True, inline=True)
def _bulk_targets(negatives, row, centre, targets, negative):  # type: ignore
    """Every thread: its share of ``targets`` (the centre, then row ``row`` of the bulk
    negatives); the caller synchronises before reading them."""
    for k in range(cuda.threadIdx.x, negative + 1, cuda.blockDim.x):
        targets[k] = centre if k == 0 else negatives[row, k - 1]


@cuda.jit(device=True, inline=True)
def _dot(h, W_out, target, partial):  # type: ignore[no-untyped-def]
    """The block's dot product of ``h`` and ``W_out[target]`` (every thread gets it)."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    acc = np.float32(0.0)
    for d in range(t, W_out.shape[1], nt):  # h may be a longer shared array
        acc += h[d] * W_out[target, d]
    partial[t] = acc
    cuda.syncthreads()
    f = np.float32(0.0)
    for q in range(nt):
        f += partial[q]
    cuda.syncthreads()  # everyone has read the partial sums before they are written again
    return f


@cuda.jit(device=True, inline=True)
def _dot_warp(h, W_out, target):  # type: ignore[no-untyped-def]
    """:func:`_dot` for a block of exactly one warp (32 threads): a butterfly of warp
    shuffles instead of shared memory and two barriers. The simulator has no shuffles, so
    this variant runs on a GPU only (``train(warp=...)``), tested there against
    :func:`_dot`."""
    acc = np.float32(0.0)
    for d in range(cuda.threadIdx.x, W_out.shape[1], 32):
        acc += h[d] * W_out[target, d]
    acc += cuda.shfl_xor_sync(0xFFFFFFFF, acc, 16)
    acc += cuda.shfl_xor_sync(0xFFFFFFFF, acc, 8)
    acc += cuda.shfl_xor_sync(0xFFFFFFFF, acc, 4)
    acc += cuda.shfl_xor_sync(0xFFFFFFFF, acc, 2)
    acc += cuda.shfl_xor_sync(0xFFFFFFFF, acc, 1)
    return acc


@cuda.jit(device=True, inline=True)
def _score(h, W_out, target, partial, warp):  # type: ignore[no-untyped-def]
    return _dot_warp(h, W_out, target) if warp else _dot(h, W_out, target, partial)


@cuda.jit(device=True, inline=True)
def _softplus(x):  # type: ignore[no-untyped-def]
    """``log(1 + exp(x))``, stable at both ends."""
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


@cuda.jit(device=True, inline=True)
def _step(f, k, lr, counters, block):  # type: ignore[no-untyped-def]
    """The update's size for target ``k`` (0: the centre) at score ``f``; thread 0 adds the
    loss term (softplus, stable) to the block's counters."""
    f = min(max(f, -MAX_SCORE), MAX_SCORE)
    label = 1.0 if k == 0 else 0.0
    if cuda.threadIdx.x == 0:
        counters[block, LOSS_SUM] += _softplus(-f if k == 0 else f)
        counters[block, LOSS_TERMS] += 1
    return np.float32((label - 1.0 / (1.0 + math.exp(-f))) * lr)


@cuda.jit(device=True, inline=True)
def _rate(lr_start, lr_end, offsets, s, s_lo, total):  # type: ignore[no-untyped-def]
    """The learning rate of sentence ``s``: linear over the words read before it."""
    return lr_start + (lr_end - lr_start) * ((offsets[s] - offsets[s_lo]) / total)


@cuda.jit(device=True, inline=True)
def _predict(h, W_out, targets, negative, centre, lr, neu1e, partial, warp, counters, block,
             touches_out, counting):  # type: ignore[no-untyped-def]
    """One example's steps: ``h`` against the centre and its negatives (a negative equal to
    the centre skipped), each output row updated at once, the input's gradient summed in
    ``neu1e``; the same for skip-gram (``h`` a context row) and CBOW (``h`` their mean)."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    for k in range(negative + 1):
        target = targets[k]
        if k > 0 and target == centre:
            continue  # the same for every thread: targets are shared
        g = _step(_score(h, W_out, target, partial, warp), k, lr, counters, block)
        for d in range(t, W_out.shape[1], nt):
            neu1e[d] += g * W_out[target, d]
            cuda.atomic.add(W_out, (target, d), g * h[d])
        if counting and t == 0:
            cuda.atomic.add(touches_out, target, 1)
        cuda.syncthreads()


@cuda.jit
def sg_kernel(ids, offsets, s_lo, s_hi, W_in, W_out, keep_prob, alias_prob, alias_idx,
              window, negative, lr_start, lr_end, seeds, scratch, counters, touches_in,
              touches_out, trace_words, trace_targets, trace_lr, trace_n, warp):
    """Skip-gram over sentences ``[s_lo, s_hi)``: each context word's input row predicts the
    centre word against ``negative`` noise words. ``seeds`` one per sentence, ``scratch`` one
    row per block (the longest sentence), ``counters`` (blocks, 5) float64; touch and trace
    arrays of length 0 when off (``trace_words`` (capacity, 1)); ``warp``: dot products by
    warp shuffles (:func:`_dot_warp`; a block of 32 threads on a GPU)."""
    t, nt, block = cuda.threadIdx.x, cuda.blockDim.x, cuda.blockIdx.x
    partial = cuda.shared.array(THREADS, np.float32)
    neu1e = cuda.shared.array(MAX_DIM, np.float32)
    targets = cuda.shared.array(MAX_TARGETS, np.int64)
    info = cuda.shared.array(4, np.int64)
    dim = W_in.shape[1]
    counting = touches_in.shape[0] > 0
    for s in range(s_lo + block, s_hi, cuda.gridDim.x):
        sentence = scratch[block]
        state, n, lr = _begin(ids, offsets, s, s_lo, s_hi, seeds, keep_prob, sentence,
                              lr_start, lr_end, counters, block, info)
        for i in range(n):
            state, j_lo, j_hi = _window(state, i, n, window, info)
            centre = sentence[i]
            for j in range(j_lo, j_hi):
                if j == i:
                    continue
                word = sentence[j]
                if t == 0:
                    state = _draw_targets(state, centre, targets, negative, alias_prob,
                                          alias_idx)
                for d in range(t, dim, nt):
                    neu1e[d] = 0.0
                cuda.syncthreads()
                h = W_in[word]
                _predict(h, W_out, targets, negative, centre, lr, neu1e, partial, warp,
                         counters, block, touches_out, counting)
                for d in range(t, dim, nt):
                    cuda.atomic.add(W_in, (word, d), neu1e[d])
                if t == 0:
                    counters[block, EXAMPLES] += 1
                    if counting:
                        cuda.atomic.add(touches_in, word, 1)
                    _trace(trace_words, trace_targets, trace_lr, trace_n, sentence, j, j + 1,
                           -1, targets, negative, lr)
                cuda.syncthreads()


@cuda.jit
def cbow_kernel(ids, offsets, s_lo, s_hi, W_in, W_out, keep_prob, negatives, window,
                negative, lr_start, lr_end, seeds, scratch, counters, touches_in,
                touches_out, trace_words, trace_targets, trace_lr, trace_n, warp):
    """CBOW over sentences ``[s_lo, s_hi)``: the mean of the context rows predicts the centre
    word; every context row then receives the whole gradient (word2vec's ``-cbow 1``). The
    negatives come drawn in bulk (:func:`draw_kernel`; row ``offsets[s] - offsets[s_lo] + i``
    for the sentence's i-th kept word); rows are written with ``atomicAdd``. Other arguments
    as :func:`sg_kernel`'s; ``trace_words`` (capacity, 2 * window)."""
    t, nt, block = cuda.threadIdx.x, cuda.blockDim.x, cuda.blockIdx.x
    partial = cuda.shared.array(THREADS, np.float32)
    neu1e = cuda.shared.array(MAX_DIM, np.float32)
    h = cuda.shared.array(MAX_DIM, np.float32)
    targets = cuda.shared.array(MAX_TARGETS, np.int64)
    info = cuda.shared.array(4, np.int64)
    dim = W_in.shape[1]
    counting = touches_in.shape[0] > 0
    for s in range(s_lo + block, s_hi, cuda.gridDim.x):
        sentence = scratch[block]
        state, n, lr = _begin(ids, offsets, s, s_lo, s_hi, seeds, keep_prob, sentence,
                              lr_start, lr_end, counters, block, info)
        for i in range(n):
            state, j_lo, j_hi = _window(state, i, n, window, info)
            if j_hi - j_lo <= 1:
                continue  # no context: the same for every thread
            centre = sentence[i]
            inv = np.float32(1.0 / (j_hi - j_lo - 1))
            for d in range(t, dim, nt):
                acc = np.float32(0.0)
                for j in range(j_lo, j_hi):
                    if j != i:
                        acc += W_in[sentence[j], d]
                h[d] = acc * inv
                neu1e[d] = 0.0
            _bulk_targets(negatives, offsets[s] - offsets[s_lo] + i, centre, targets, negative)
            cuda.syncthreads()
            _predict(h, W_out, targets, negative, centre, lr, neu1e, partial, warp, counters,
                     block, touches_out, counting)
            for j in range(j_lo, j_hi):
                if j != i:
                    for d in range(t, dim, nt):
                        cuda.atomic.add(W_in, (sentence[j], d), neu1e[d])
                    if counting and t == 0:
                        cuda.atomic.add(touches_in, sentence[j], 1)
            if t == 0:
                counters[block, EXAMPLES] += 1
                _trace(trace_words, trace_targets, trace_lr, trace_n, sentence, j_lo, j_hi, i,
                       targets, negative, lr)
            cuda.syncthreads()


@cuda.jit(device=True, inline=True)
def _times(targets, k, centre, negative):  # type: ignore[no-untyped-def]
    """How many times target ``k``'s word was drawn, counted at its first slot (0 at later
    slots and at a negative equal to the centre; 1 for the centre, slot 0): the CPU's
    ``_count_repeats``, one slot per thread."""
    if k == 0:
        return 1
    word = targets[k]
    if word == centre:
        return 0
    m = 0
    for q in range(1, negative + 1):
        if targets[q] == word:
            if q < k:
                return 0
            m += 1
    return m


@cuda.jit(device=True, inline=True)
def _repeated(f, m, hh, lr):  # type: ignore[no-untyped-def]
    """word2vec's ``m`` steps of one pair on a negative drawn ``m`` times, the input row
    fixed (the CPU's ``_repeated_negative``): ``(G, A, loss)``, the input's gradient being
    ``G * out + A * h``."""
    G = np.float32(0.0)
    A = np.float32(0.0)
    loss = 0.0
    for _ in range(m):
        f_r = min(max(f + G * hh, -MAX_SCORE), MAX_SCORE)
        g_r = np.float32(-lr / (1.0 + math.exp(-f_r)))
        A += g_r * G
        G += g_r
        loss += _softplus(f_r)
    return G, A, loss


@cuda.jit(device=True, inline=True)
def _row_sums(partial, n, out):  # type: ignore[no-untyped-def]
    """``out[c] = sum(partial[c, :blockDim])`` for ``c < n``, a context per thread."""
    for c in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        acc = np.float32(0.0)
        for q in range(cuda.blockDim.x):
            acc += partial[c, q]
        out[c] = acc


@cuda.jit
def sg_batch_kernel(ids, offsets, s_lo, s_hi, W_in, W_out, keep_prob, negatives, window,
                    negative, lr_start, lr_end, seeds, scratch, counters, touches_in,
                    touches_out, trace_words, trace_targets, trace_lr, trace_n):
    """Skip-gram, HogBatch style (the CPU's ``train_sg_batch``, after FULL-W2V): a centre
    word's context words share its negatives (drawn in bulk, :func:`draw_kernel`) and the
    window is one minibatch, every pair scored from the parameters before the step. The
    window's context rows and their gradients sit in shared memory; each target's output row
    is read once per window, its change summed over the contexts and added with
    ``atomicAdd``, as are the context rows' changes at the end. A target drawn ``m`` times
    takes word2vec's ``m`` steps (:func:`_repeated`). Counters count pairs as examples; the
    trace records one row per centre (``trace_words`` (capacity, 2 * window))."""
    t, nt, block = cuda.threadIdx.x, cuda.blockDim.x, cuda.blockIdx.x
    dim = W_in.shape[1]
    partial = cuda.shared.array((MAX_CONTEXT, THREADS), np.float32)
    dynamic = cuda.shared.array(0, types.float32)  # 2 * (2 window) * dim, given at launch
    rows = dynamic[:2 * window * dim]  # context c's row at [c * dim, (c + 1) * dim)
    grads = dynamic[2 * window * dim:4 * window * dim]
    words = cuda.shared.array(MAX_CONTEXT, np.int64)
    hh = cuda.shared.array(MAX_CONTEXT, np.float32)  # |row|^2, for repeated targets
    along = cuda.shared.array(MAX_CONTEXT, np.float32)  # their gradient along the row
    scores = cuda.shared.array(MAX_CONTEXT, np.float32)  # a target's f, then its g
    targets = cuda.shared.array(MAX_TARGETS, np.int64)
    times = cuda.shared.array(MAX_TARGETS, np.int64)
    info = cuda.shared.array(4, np.int64)
    counting = touches_in.shape[0] > 0
    loss = 0.0  # this thread's share, added to the block's counters at the end
    terms = 0.0
    for s in range(s_lo + block, s_hi, cuda.gridDim.x):
        sentence = scratch[block]
        state, n, lr = _begin(ids, offsets, s, s_lo, s_hi, seeds, keep_prob, sentence,
                              lr_start, lr_end, counters, block, info)
        for i in range(n):
            state, j_lo, j_hi = _window(state, i, n, window, info)
            contexts = j_hi - j_lo - 1
            if contexts <= 0:
                continue  # the same for every thread
            centre = sentence[i]
            _bulk_targets(negatives, offsets[s] - offsets[s_lo] + i, centre, targets, negative)
            for c in range(t, contexts, nt):
                words[c] = sentence[j_lo + c + (1 if j_lo + c >= i else 0)]
            cuda.syncthreads()
            for k in range(t, negative + 1, nt):
                times[k] = _times(targets, k, centre, negative)
            for c in range(contexts):
                acc = np.float32(0.0)
                for d in range(t, dim, nt):
                    v = W_in[words[c], d]
                    rows[c * dim + d] = v
                    grads[c * dim + d] = 0.0
                    acc += v * v
                partial[c, t] = acc
            cuda.syncthreads()
            _row_sums(partial, contexts, hh)
            for c in range(t, contexts, nt):
                along[c] = 0.0
            cuda.syncthreads()
            for k in range(negative + 1):
                m = times[k]
                if m == 0:
                    continue  # shared: the same for every thread
                target = targets[k]
                for c in range(contexts):
                    acc = np.float32(0.0)
                    for d in range(t, dim, nt):
                        acc += rows[c * dim + d] * W_out[target, d]
                    partial[c, t] = acc
                cuda.syncthreads()
                _row_sums(partial, contexts, scores)
                for c in range(t, contexts, nt):
                    f = scores[c]
                    if m == 1:
                        f = min(max(f, -MAX_SCORE), MAX_SCORE)
                        label = 1.0 if k == 0 else 0.0
                        scores[c] = np.float32((label - 1.0 / (1.0 + math.exp(-f))) * lr)
                        loss += _softplus(-f if k == 0 else f)
                    else:
                        g, a, lost = _repeated(f, m, hh[c], lr)
                        scores[c] = g
                        along[c] += a
                        loss += lost
                    terms += m
                cuda.syncthreads()
                for d in range(t, dim, nt):
                    out = W_out[target, d]
                    acc = np.float32(0.0)
                    for c in range(contexts):
                        grads[c * dim + d] += scores[c] * out
                        acc += scores[c] * rows[c * dim + d]
                    cuda.atomic.add(W_out, (target, d), acc)
                if counting and t == 0:
                    cuda.atomic.add(touches_out, target, contexts * m)
                cuda.syncthreads()  # scores and partial are written again for the next target
            for c in range(contexts):
                for d in range(t, dim, nt):
                    cuda.atomic.add(W_in, (words[c], d),
                                    grads[c * dim + d] + along[c] * rows[c * dim + d])
            if t == 0:
                counters[block, EXAMPLES] += contexts
                if counting:
                    for c in range(contexts):
                        cuda.atomic.add(touches_in, words[c], 1)
                _trace(trace_words, trace_targets, trace_lr, trace_n, sentence, j_lo, j_hi, i,
                       targets, negative, lr)
            cuda.syncthreads()
    cuda.atomic.add(counters, (block, LOSS_SUM), loss)
    cuda.atomic.add(counters, (block, LOSS_TERMS), terms)


@cuda.jit(device=True, inline=True)
def _trace(trace_words, trace_targets, trace_lr, trace_n, sentence, j_lo, j_hi, skip,
           targets, negative, lr):  # type: ignore[no-untyped-def]
    """Thread 0: append one example (its input words ``sentence[j_lo:j_hi]`` but ``skip``,
    padded with -1; its targets; its learning rate) unless tracing is off or full."""
    if trace_lr.shape[0] == 0:
        return
    e = cuda.atomic.add(trace_n, 0, 1)
    if e >= trace_lr.shape[0]:
        return
    c = 0
    for j in range(j_lo, j_hi):
        if j != skip:
            trace_words[e, c] = sentence[j]
            c += 1
    for k in range(negative + 1):
        trace_targets[e, k] = targets[k]
    trace_lr[e] = lr


@contextmanager
def _simulator_pace() -> Iterator[None]:
    """Under the simulator, a block's threads are Python threads that meet at every
    ``syncthreads``; at Python's default 5 ms GIL switch interval each meeting costs
    milliseconds, and 0.1 ms ran a small kernel 12x faster. A GPU is left alone."""
    if not numba_config.ENABLE_CUDASIM:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def sentence_seeds(seed: int, first: int, count: int) -> np.ndarray:
    """One seed per sentence, from where it is (the call's ``seed`` and its index)."""
    return np.random.SeedSequence([seed, first]).generate_state(max(count, 1), np.uint64)[:count]


def _draw_seed(seed: int, first: int) -> np.uint64:
    """The bulk negatives' seed for the run of sentences from ``first`` (apart from the
    sentences' own seeds)."""
    return np.random.SeedSequence([seed, first, 0xD8A5]).generate_state(1, np.uint64)[0]


def batch_shared_bytes(dim: int, window: int) -> int:
    """The batched skip-gram kernel's dynamic shared memory: the window's context rows and
    their gradients."""
    return 2 * (2 * window) * dim * 4


def fits_batch(dim: int, window: int) -> bool:
    """Whether the batched skip-gram kernel's shared memory holds this window and dimension."""
    return 2 * window <= MAX_CONTEXT and batch_shared_bytes(dim, window) <= BATCH_SHARED_BYTES


def _runs(offsets: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Runs of whole sentences ``[a, b)`` of at most ``limit`` words each (a longer sentence
    is a run of its own)."""
    runs, a = [], 0
    sentences = len(offsets) - 1
    while a < sentences:
        b = int(np.searchsorted(offsets, offsets[a] + limit, side="right")) - 1
        b = min(max(b, a + 1), sentences)
        runs.append((a, b))
        a = b
    return runs


def train(ids: Any, offsets: np.ndarray, W_in: Any, W_out: Any, keep_prob: Any,
          alias_prob: Any, alias_idx: Any, *, sg: bool, window: int, negative: int,
          lr_start: float, lr_end: float, seed: int, blocks: int = 64, threads: int = THREADS,
          touches: tuple[Any, Any] | None = None, trace_capacity: int = 0,
          warp: bool | None = None, shared_negatives: bool = False
          ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Train skip-gram (``sg``) or CBOW over every sentence of ``offsets`` on the device
    (``W_in``, ``W_out`` updated in place; device arrays, or NumPy ones in the simulator);
    return the counters (float64, 5: words read, kept, examples, loss sum, loss terms) and,
    with ``trace_capacity``, the examples in the order trained (one block trains them in
    sentence order): ``words`` (padded with -1), ``targets``, ``lr``. ``warp`` (default: on a
    GPU with 32 threads) takes the per-pair kernels' dot products by warp shuffles.
    ``shared_negatives`` (skip-gram): the batched HogBatch kernel, as the CPU's default.
    CBOW and batched skip-gram draw their negatives in bulk, in runs of whole sentences of at
    most :data:`DRAWS_PER_LAUNCH` draws; the learning rate still falls linearly over the
    whole call."""
    dim = W_in.shape[1]
    if dim > MAX_DIM or negative + 1 > MAX_TARGETS or not 1 <= threads <= THREADS:
        raise ValueError(f"the GPU kernel takes dim <= {MAX_DIM}, negative <= "
                         f"{MAX_TARGETS - 1}, 1 <= threads <= {THREADS}")
    batched = sg and shared_negatives
    if batched and not fits_batch(dim, window):
        raise ValueError(f"the batched GPU kernel takes window <= {MAX_CONTEXT // 2} and "
                         f"window x dim <= {BATCH_SHARED_BYTES // 16} (shared memory)")
    if warp is None:
        warp = threads == 32 and not numba_config.ENABLE_CUDASIM
    if warp and (threads != 32 or numba_config.ENABLE_CUDASIM):
        raise ValueError("warp shuffles need a GPU and blocks of 32 threads")
    offsets = np.asarray(offsets, np.int64)
    sentences = len(offsets) - 1
    blocks = max(1, min(blocks, sentences))
    longest = int(np.diff(offsets).max()) if sentences else 1
    scratch = cuda.device_array((blocks, max(longest, 1)), np.int64)
    counters = cuda.to_device(np.zeros((blocks, 5), np.float64))
    none = cuda.to_device(np.zeros(0, np.int64))
    t_in, t_out = touches if touches is not None else (none, none)
    width = 2 * window if batched or not sg else 1
    trace = (cuda.to_device(np.full((trace_capacity, width), -1, np.int64)),
             cuda.to_device(np.full((trace_capacity, negative + 1), -1, np.int64)),
             cuda.to_device(np.full(trace_capacity, np.nan)), cuda.to_device(np.zeros(1, np.int64)))
    seeds = cuda.to_device(sentence_seeds(seed, 0, sentences))
    device_offsets = cuda.to_device(offsets)
    words = max(int(offsets[-1]), 1)
    with _simulator_pace():
        if sg and not batched:  # thread 0 draws each pair's negatives
            sg_kernel[blocks, threads](ids, device_offsets, 0, sentences, W_in, W_out, keep_prob,
                                       alias_prob, alias_idx, window, negative,
                                       np.float32(lr_start), np.float32(lr_end), seeds, scratch,
                                       counters, t_in, t_out, *trace, bool(warp))
            runs = []
        else:  # negatives drawn in bulk, one row per word (an upper bound on the kept words)
            runs = _runs(offsets, DRAWS_PER_LAUNCH // negative)
        for a, b in runs:
            lr_a = lr_start + (lr_end - lr_start) * offsets[a] / words
            lr_b = lr_start + (lr_end - lr_start) * offsets[b] / words
            negatives = cuda.device_array((offsets[b] - offsets[a], negative), np.int32)
            draw_kernel[blocks, threads](_draw_seed(seed, a), alias_prob, alias_idx, negatives)
            run = (ids, device_offsets, a, b, W_in, W_out, keep_prob, negatives, window,
                   negative, np.float32(lr_a), np.float32(lr_b), seeds[a:b], scratch, counters,
                   t_in, t_out, *trace)
            if batched:
                sg_batch_kernel[blocks, threads, 0, batch_shared_bytes(dim, window)](*run)
            else:
                cbow_kernel[blocks, threads](*run, bool(warp))
    summed = counters.copy_to_host().sum(axis=0)
    if not trace_capacity:
        return summed, None
    n = min(int(trace[3].copy_to_host()[0]), trace_capacity)
    return summed, {"words": trace[0].copy_to_host()[:n], "targets": trace[1].copy_to_host()[:n],
                    "lr": trace[2].copy_to_host()[:n]}
