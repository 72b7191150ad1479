"""Numba kernels for negative-sampling skip-gram and CBOW with word2vec's semantics.

One call trains over a range of sentences (token ids plus offsets) with a learning rate that
decays linearly across the words it reads. Frequent words are subsampled with a fresh draw each
call (each epoch), the window is shrunk at random per centre word, and negatives come from an
alias table (O(1) per draw, V entries). Each example's negatives are drawn one example ahead
and the rows the next example will read are prefetched (RESULTS §19: CBOW 1.54x, HogBatch
skip-gram 1.18x words/s at one thread, from waiting less for rows scattered over memory).
Rows are indexed in the 2-D matrices, never taken as views (a view's reference count is
atomic); HogBatch scores its pairs in 2x2 tiles and CBOW its targets two at a time (RESULTS
§21: 1.35-1.39x and 1.06-1.25x). :func:`train_cbow_batch` shares one draw of negatives among
a block of consecutive CBOW examples (``--cbow-block``, RESULTS §24).
Several Python threads may run these ``nogil`` kernels on disjoint sentence ranges over shared
matrices (Hogwild); one thread is deterministic for a seed. An optional trace records every
example so tests can replay it through the reference.

Arrays: ``W_in``, ``W_out``: float32 (V, dim), C order, updated in place. ``ids``: int32.
``offsets``: int64 (S + 1). ``keep_prob``: float32 (V). ``alias_prob``: float32 (V),
``alias_idx``: int32 (V). ``counters`` (float64, 5): words read, words kept, examples, loss sum,
loss terms (added to, so callers can accumulate). ``touches_in``, ``touches_out``: int64 (V) or
length 0 (off): how many updates each row received, the weights of parameter averaging.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Every fast-math flag except "no NaN / no inf": the dot products vectorize, and an overflow
# still behaves as IEEE says.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
MAX_SCORE = 30.0  # sigmoid(30) == 1 to float32 precision; clipping keeps exp() finite

WORDS_READ, WORDS_KEPT, EXAMPLES, LOSS_SUM, LOSS_TERMS = range(5)


@intrinsic
def _prefetch(typingctx, array, row, col):  # type: ignore[no-untyped-def]
    """A hint to load the cache line of ``array[row, col]`` (2-D) for writing (LLVM's
    ``llvm.prefetch``): no effect on results, it only starts the load early."""
    if not isinstance(array, types.Array) or array.ndim != 2:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        kind = signature.args[0]
        view = context.make_array(kind)(context, builder, args[0])
        item = cgutils.get_item_pointer(context, builder, kind, view, [args[1], args[2]],
                                        wraparound=False)
        i32 = ir.IntType(32)
        byte_ptr = ir.IntType(8).as_pointer()
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
            "llvm.prefetch.p0")
        # write, high temporal locality, data cache
        builder.call(hint, [builder.bitcast(item, byte_ptr), ir.Constant(i32, 1),
                            ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, types.intp, types.intp), codegen


@njit(inline="always")
def _prefetch_row(matrix: np.ndarray, row: np.int64) -> None:
    """Start loading every cache line (16 float32) of one row. Rows are indexed in the 2-D
    matrices throughout, never taken as views: a view costs an atomic reference count, and
    dropping them was most of RESULTS §21's skip-gram gain."""
    for d in range(0, matrix.shape[1], 16):
        _prefetch(matrix, row, d)


@njit(cache=True)
def build_alias(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias table for a distribution (float64, sums to 1): (prob float32, idx int32)."""
    n = len(probabilities)
    scaled = probabilities * n
    prob = np.ones(n, dtype=np.float32)
    alias = np.arange(n).astype(np.int32)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    n_small = n_large = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[n_small] = i
            n_small += 1
        else:
            large[n_large] = i
            n_large += 1
    while n_small > 0 and n_large > 0:
        n_small -= 1
        s = small[n_small]
        n_large -= 1
        g = large[n_large]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            small[n_small] = g
            n_small += 1
        else:
            large[n_large] = g
            n_large += 1
    return prob, alias


@njit(inline="always")
def _next(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """xorshift64*: (new state, 64 random bits)."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state, state * np.uint64(0x2545F4914F6CDD1D)


@njit(inline="always")
def _uniform(bits: np.uint64) -> float:
    return float(bits >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always")
def _draw(state: np.uint64, alias_prob: np.ndarray, alias_idx: np.ndarray
          ) -> tuple[np.uint64, np.int64]:
    """One noise word from the alias table (one 64-bit draw: 32 bits column, 32 bits coin)."""
    state, bits = _next(state)
    column = np.int64(((bits >> np.uint64(32)) * np.uint64(len(alias_prob))) >> np.uint64(32))
    coin = float(bits & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
    if coin < alias_prob[column]:
        return state, column
    return state, np.int64(alias_idx[column])


@njit(inline="always")
def _softplus(x: float) -> float:
    """log(1 + exp(x)), stable for any x."""
    if x > 0:
        return x + np.log1p(np.exp(-x))
    return np.log1p(np.exp(x))


@njit(inline="always")
def _sigmoid_loss(f: float, positive: bool, compute_loss: bool) -> tuple[float, float]:
    """``(sigmoid(f), loss)`` for a score clipped to ``[-MAX_SCORE, MAX_SCORE]``, from one
    ``exp``: with ``e = exp(-f)``, the positive's loss ``softplus(-f)`` is ``log1p(e)`` and a
    negative's ``softplus(f)`` is ``f + log1p(e)`` (0 when ``compute_loss`` is off)."""
    e = np.exp(-f)
    sig = 1.0 / (1.0 + e)
    if not compute_loss:
        return sig, 0.0
    tail = np.log1p(e)  # float32, as the score (float32's log1p is the cheaper one)
    return sig, np.float64(tail if positive else f + tail)


@njit(inline="always")
def _pair_gradient(f: float, positive: bool, lr: float, compute_loss: bool
                   ) -> tuple[float, float]:
    """One (context, target) pair's ``g = (label - sigmoid(f)) * lr`` and its loss."""
    f = min(max(f, -MAX_SCORE), MAX_SCORE)
    sig, loss = _sigmoid_loss(f, positive, compute_loss)
    return np.float32(((1.0 if positive else 0.0) - sig) * lr), loss


@njit(inline="always")
def _scored(loss_every: int, seen: int) -> tuple[bool, int]:
    """Whether this example's loss is scored (every ``loss_every``-th example; never for 0),
    and the examples seen, this one included."""
    return loss_every > 0 and seen % loss_every == 0, seen + 1


@njit(inline="always")
def _score_update(H: np.ndarray, r: np.int64, W_out: np.ndarray, t: np.int64,
                  neu1e: np.ndarray, positive: bool, lr: float, compute_loss: bool) -> float:
    """One target, ``h = H[r]``, ``out = W_out[t]``: g = (label - sigmoid(h.out)) * lr;
    neu1e += g*out; out += g*h. Returns loss."""
    f = np.float32(0.0)
    for d in range(H.shape[1]):
        f += H[r, d] * W_out[t, d]
    g, loss = _pair_gradient(f, positive, lr, compute_loss)
    for d in range(H.shape[1]):
        neu1e[d] += g * W_out[t, d]
        W_out[t, d] += g * H[r, d]
    return loss


@njit(inline="always")
def _live_targets(targets: np.ndarray, centre: np.int64, live: np.ndarray) -> int:
    """The slots of an example's targets to score (``live``): the centre, then every negative
    but those equal to the centre. Returns how many."""
    n_live = 0
    for k in range(targets.shape[0]):
        if k == 0 or targets[k] != centre:
            live[n_live] = k
            n_live += 1
    return n_live


@njit(inline="always")
def _score_targets(H: np.ndarray, r: np.int64, W_out: np.ndarray, targets: np.ndarray,
                   live: np.ndarray, n_live: int, neu1e: np.ndarray, lr: float,
                   compute_loss: bool) -> float:
    """:func:`_score_update` for each live target in turn (``targets[live[q]]``, the first one
    the positive when ``live[0] == 0``), two at a time where the two rows differ: scoring both
    before updating either is then the same as one after the other (each update moves only its
    own row and ``neu1e``), and ``h`` and ``neu1e`` are read once per two targets. A negative
    drawn twice in a row is scored after the first one's update, as word2vec does. Returns
    the loss sum."""
    loss = 0.0
    q = 0
    while q < n_live:
        k0 = live[q]
        t0 = targets[k0]
        if q + 1 == n_live or targets[live[q + 1]] == t0:
            loss += _score_update(H, r, W_out, t0, neu1e, k0 == 0, lr, compute_loss)
            q += 1
            continue
        t1 = targets[live[q + 1]]
        f0 = np.float32(0.0)
        f1 = np.float32(0.0)
        for d in range(H.shape[1]):
            h = H[r, d]
            f0 += h * W_out[t0, d]
            f1 += h * W_out[t1, d]
        g0, loss0 = _pair_gradient(f0, k0 == 0, lr, compute_loss)
        g1, loss1 = _pair_gradient(f1, False, lr, compute_loss)  # only slot 0 is the positive
        for d in range(H.shape[1]):
            h = H[r, d]
            x = W_out[t0, d]
            y = W_out[t1, d]
            neu1e[d] += g0 * x + g1 * y
            W_out[t0, d] = x + g0 * h
            W_out[t1, d] = y + g1 * h
        loss += loss0 + loss1
        q += 2
    return loss


@njit(inline="always")
def _subsample(ids: np.ndarray, lo: np.int64, hi: np.int64, keep_prob: np.ndarray,
               sentence: np.ndarray, state: np.uint64) -> tuple[np.uint64, np.int64]:
    n = 0
    for p in range(lo, hi):
        word = ids[p]
        state, bits = _next(state)
        if keep_prob[word] >= 1.0 or _uniform(bits) < keep_prob[word]:
            sentence[n] = word
            n += 1
    return state, n


@njit(inline="always")
def _sentence_buffer(offsets: np.ndarray, s_lo: int, s_hi: int) -> np.ndarray:
    """Room for the longest sentence of the range."""
    longest = 1
    for s in range(s_lo, s_hi):
        longest = max(longest, offsets[s + 1] - offsets[s])
    return np.empty(longest, dtype=np.int64)


@njit(inline="always")
def _start_sentence(ids: np.ndarray, offsets: np.ndarray, s: int, s_lo: int, s_hi: int,
                    keep_prob: np.ndarray, sentence: np.ndarray, state: np.uint64,
                    lr_start: float, lr_end: float) -> tuple[np.uint64, np.int64, float]:
    """The learning rate of sentence ``s`` (linear in the words read before it) and its words
    after subsampling, copied to ``sentence`` (``n`` of them)."""
    total = max(offsets[s_hi] - offsets[s_lo], 1)
    lr = lr_start + (lr_end - lr_start) * ((offsets[s] - offsets[s_lo]) / total)
    state, n = _subsample(ids, offsets[s], offsets[s + 1], keep_prob, sentence, state)
    return state, n, lr


@njit(inline="always")
def _add_counts(counters: np.ndarray, offsets: np.ndarray, s_lo: int, s_hi: int, kept: int,
                examples: int, loss_sum: float, terms: int) -> None:
    """Add a call's counts to ``counters`` once, at its end. Counted in locals meanwhile: a
    store per example into ``counters`` (a row of a small array whose neighbouring rows, the
    other threads', share its cache line) would bounce that line between the cores."""
    counters[WORDS_READ] += offsets[s_hi] - offsets[s_lo]
    counters[WORDS_KEPT] += kept
    counters[EXAMPLES] += examples
    counters[LOSS_SUM] += loss_sum
    counters[LOSS_TERMS] += terms


@njit(inline="always")
def _window(state: np.uint64, i: int, n: np.int64, window: int
            ) -> tuple[np.uint64, np.int64, np.int64]:
    """word2vec's shrunk window around position ``i``: b uniform in [0, window), positions
    ``[max(0, i - window + b), min(n, i + window + 1 - b))`` (``i`` itself included)."""
    state, bits = _next(state)
    b = np.int64(bits % np.uint64(window))
    return state, max(0, i - window + b), min(n, i + window + 1 - b)


@njit(inline="always")
def _draw_pending(state: np.uint64, pending: np.ndarray, alias_prob: np.ndarray,
                  alias_idx: np.ndarray, W_out: np.ndarray) -> np.uint64:
    """Draw the next example's noise words into ``pending`` and start loading their output
    rows, so that the example does not wait for rows scattered over memory."""
    for k in range(pending.shape[0]):
        state, word = _draw(state, alias_prob, alias_idx)
        pending[k] = word
        _prefetch_row(W_out, word)
    return state


@njit(inline="always")
def _take_targets(state: np.uint64, centre: np.int64, targets: np.ndarray,
                  pending: np.ndarray, alias_prob: np.ndarray, alias_idx: np.ndarray,
                  W_out: np.ndarray) -> np.uint64:
    """``targets[0] = centre``, then the noise words drawn one example ahead (``pending``),
    which are replaced by the next example's (:func:`_draw_pending`). One draw per slot from
    the same stream as without the look-ahead; only their order against the window draws
    differs."""
    targets[0] = centre
    for k in range(1, targets.shape[0]):
        targets[k] = pending[k - 1]
    return _draw_pending(state, pending, alias_prob, alias_idx, W_out)


@njit(inline="always")
def _prefetch_next(W_in: np.ndarray, W_out: np.ndarray, sentence: np.ndarray, i: int,
                   n: np.int64, window: int) -> None:
    """Start loading the rows the next centre word adds: its own output row and the input
    row of the word entering the window."""
    if i + 1 < n:
        _prefetch_row(W_out, sentence[i + 1])
    if i + window + 1 < n:
        _prefetch_row(W_in, sentence[i + window + 1])


@njit(inline="always")
def _record(trace_words: np.ndarray, trace_targets: np.ndarray, trace_lr: np.ndarray,
            n_trace: int, sentence: np.ndarray, j_lo: int, j_hi: int, skip: int,
            targets: np.ndarray, lr: float) -> int:
    """Append one example to the trace (its input words ``sentence[j_lo:j_hi]`` except
    position ``skip``, padded with -1) unless the trace is off or full."""
    if n_trace >= trace_lr.shape[0]:
        return n_trace
    c = 0
    for j in range(j_lo, j_hi):
        if j != skip:
            trace_words[n_trace, c] = sentence[j]
            c += 1
    for c2 in range(c, trace_words.shape[1]):
        trace_words[n_trace, c2] = -1
    trace_targets[n_trace, :] = targets
    trace_lr[n_trace] = lr
    return n_trace + 1


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def train_sg(ids: np.ndarray, offsets: np.ndarray, s_lo: int, s_hi: int, W_in: np.ndarray,
             W_out: np.ndarray, keep_prob: np.ndarray, alias_prob: np.ndarray,
             alias_idx: np.ndarray, window: int, negative: int, lr_start: float, lr_end: float,
             seed: np.uint64, loss_every: int, counters: np.ndarray,
             touches_in: np.ndarray, touches_out: np.ndarray,
             trace_words: np.ndarray, trace_targets: np.ndarray, trace_lr: np.ndarray) -> None:
    """Skip-gram over sentences ``[s_lo, s_hi)``: each context word's input vector predicts the
    centre word against ``negative`` noise words. Trace arrays of length 0 turn tracing off."""
    dim = W_in.shape[1]
    state = np.uint64(seed) | np.uint64(1)
    sentence = _sentence_buffer(offsets, s_lo, s_hi)
    counting = touches_in.shape[0] > 0
    neu1e = np.empty(dim, dtype=np.float32)
    targets = np.empty(negative + 1, dtype=np.int64)
    live = np.empty(negative + 1, dtype=np.int64)  # the slots scored (not equal to the centre)
    pending = np.empty(negative, dtype=np.int64)  # the next example's noise words
    state = _draw_pending(state, pending, alias_prob, alias_idx, W_out)
    n_trace = 0
    loss_sum = 0.0  # float64, added to counters at the end (not a store per target)
    terms = 0
    seen = 0  # examples so far: the loss is scored on every loss_every-th
    kept = examples = 0  # words kept, examples: added to counters at the end
    for s in range(s_lo, s_hi):
        state, n, lr = _start_sentence(ids, offsets, s, s_lo, s_hi, keep_prob, sentence, state,
                                       lr_start, lr_end)
        kept += n
        for i in range(n):
            state, j_lo, j_hi = _window(state, i, n, window)
            centre = sentence[i]
            for j in range(j_lo, j_hi):
                if j == i:
                    continue
                word = sentence[j]
                state = _take_targets(state, centre, targets, pending, alias_prob, alias_idx, W_out)
                for d in range(dim):
                    neu1e[d] = 0.0
                score, seen = _scored(loss_every, seen)
                n_live = _live_targets(targets, centre, live)
                loss_sum += _score_targets(W_in, word, W_out, targets, live, n_live, neu1e, lr,
                                           score)
                terms += score * n_live
                if counting:
                    for q in range(n_live):
                        touches_out[targets[live[q]]] += 1
                for d in range(dim):
                    W_in[word, d] += neu1e[d]
                if counting:
                    touches_in[word] += 1
                examples += 1
                n_trace = _record(trace_words, trace_targets, trace_lr, n_trace, sentence, j,
                                  j + 1, -1, targets, lr)
    _add_counts(counters, offsets, s_lo, s_hi, kept, examples, loss_sum, terms)


@njit(inline="always")
def _context_mean(W_in: np.ndarray, sentence: np.ndarray, i: int, j_lo: int, j_hi: int,
                  h: np.ndarray) -> None:
    """``h``: the mean of the input rows of ``sentence[j_lo:j_hi]`` but position ``i``."""
    for d in range(h.shape[0]):
        h[d] = 0.0
    for j in range(j_lo, j_hi):
        if j != i:
            r = sentence[j]
            for d in range(h.shape[0]):
                h[d] += W_in[r, d]
    inv = np.float32(1.0 / (j_hi - j_lo - 1))
    for d in range(h.shape[0]):
        h[d] *= inv


@njit(inline="always")
def _add_to_context(W_in: np.ndarray, sentence: np.ndarray, i: int, j_lo: int, j_hi: int,
                    neu1e: np.ndarray, touches_in: np.ndarray, counting: bool) -> None:
    """Every context row of a CBOW example receives its whole gradient ``neu1e`` (word2vec's
    ``-cbow 1``), counted in ``touches_in`` when ``counting``."""
    for j in range(j_lo, j_hi):
        if j != i:
            r = sentence[j]
            for d in range(neu1e.shape[0]):
                W_in[r, d] += neu1e[d]
            if counting:
                touches_in[r] += 1


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def train_cbow(ids: np.ndarray, offsets: np.ndarray, s_lo: int, s_hi: int, W_in: np.ndarray,
               W_out: np.ndarray, keep_prob: np.ndarray, alias_prob: np.ndarray,
               alias_idx: np.ndarray, window: int, negative: int, lr_start: float,
               lr_end: float, seed: np.uint64, loss_every: int, counters: np.ndarray,
               touches_in: np.ndarray, touches_out: np.ndarray,
               trace_words: np.ndarray, trace_targets: np.ndarray, trace_lr: np.ndarray) -> None:
    """CBOW over sentences ``[s_lo, s_hi)``: the mean of the context vectors predicts the centre
    word; every context row then receives the whole gradient (word2vec's ``-cbow 1``). The trace
    records each example's context words in ``trace_words`` (padded with -1)."""
    dim = W_in.shape[1]
    state = np.uint64(seed) | np.uint64(1)
    sentence = _sentence_buffer(offsets, s_lo, s_hi)
    counting = touches_in.shape[0] > 0
    neu1e = np.empty(dim, dtype=np.float32)
    H = np.empty((1, dim), dtype=np.float32)  # the context mean, as a 1-row matrix
    h = H[0]  # the same row (one view, made once)
    targets = np.empty(negative + 1, dtype=np.int64)
    live = np.empty(negative + 1, dtype=np.int64)  # the slots scored (not equal to the centre)
    pending = np.empty(negative, dtype=np.int64)  # the next example's noise words
    state = _draw_pending(state, pending, alias_prob, alias_idx, W_out)
    n_trace = 0
    loss_sum = 0.0  # float64, added to counters at the end (not a store per target)
    terms = 0
    seen = 0  # examples so far: the loss is scored on every loss_every-th
    kept = examples = 0  # words kept, examples: added to counters at the end
    for s in range(s_lo, s_hi):
        state, n, lr = _start_sentence(ids, offsets, s, s_lo, s_hi, keep_prob, sentence, state,
                                       lr_start, lr_end)
        kept += n
        for i in range(n):
            state, j_lo, j_hi = _window(state, i, n, window)
            _prefetch_next(W_in, W_out, sentence, i, n, window)
            if j_hi - j_lo <= 1:
                continue
            _context_mean(W_in, sentence, i, j_lo, j_hi, h)
            for d in range(dim):
                neu1e[d] = 0.0
            centre = sentence[i]
            state = _take_targets(state, centre, targets, pending, alias_prob, alias_idx, W_out)
            score, seen = _scored(loss_every, seen)
            n_live = _live_targets(targets, centre, live)
            loss_sum += _score_targets(H, 0, W_out, targets, live, n_live, neu1e, lr, score)
            terms += score * n_live
            if counting:
                for q in range(n_live):
                    touches_out[targets[live[q]]] += 1
            _add_to_context(W_in, sentence, i, j_lo, j_hi, neu1e, touches_in, counting)
            examples += 1
            n_trace = _record(trace_words, trace_targets, trace_lr, n_trace, sentence, j_lo,
                              j_hi, i, targets, lr)
    _add_counts(counters, offsets, s_lo, s_hi, kept, examples, loss_sum, terms)


#: Above this many negatives CBOW draws them per example even when asked to share: a block's
#: summed steps on a frequent word drawn many times would overshoot (issue 16's lesson).
CBOW_BLOCK_MAX_NEGATIVE = 16


@njit(inline="always")
def _score_shared(h: np.ndarray, W_out: np.ndarray, negs: np.ndarray, live: np.ndarray,
                  n_live: int, neu1e: np.ndarray, grad: np.ndarray, lr: float,
                  compute_loss: bool) -> float:
    """The live shared negatives (``negs[live[q]]``) against ``h``, two at a time:
    ``neu1e += g * out`` from each row as it stands, and ``g * h`` added to the negative's
    slot of ``grad`` (its row moves when the block ends). Returns the loss sum."""
    loss = 0.0
    q = 0
    while q < n_live:
        ka = live[q]
        ta = negs[ka]
        if q + 1 == n_live:
            f = np.float32(0.0)
            for d in range(h.shape[0]):
                f += h[d] * W_out[ta, d]
            g, la = _pair_gradient(f, False, lr, compute_loss)
            for d in range(h.shape[0]):
                neu1e[d] += g * W_out[ta, d]
                grad[ka, d] += g * h[d]
            return loss + la
        kb = live[q + 1]
        tb = negs[kb]
        fa = np.float32(0.0)
        fb = np.float32(0.0)
        for d in range(h.shape[0]):
            hd = h[d]
            fa += hd * W_out[ta, d]
            fb += hd * W_out[tb, d]
        ga, la = _pair_gradient(fa, False, lr, compute_loss)
        gb, lb = _pair_gradient(fb, False, lr, compute_loss)
        for d in range(h.shape[0]):
            hd = h[d]
            neu1e[d] += ga * W_out[ta, d] + gb * W_out[tb, d]
            grad[ka, d] += ga * hd
            grad[kb, d] += gb * hd
        loss += la + lb
        q += 2
    return loss


@njit(inline="always")
def _apply_shared(W_out: np.ndarray, negs: np.ndarray, grad: np.ndarray) -> None:
    """The block's end: each shared negative's row moves by its summed change."""
    for k in range(negs.shape[0]):
        t = negs[k]
        for d in range(W_out.shape[1]):
            W_out[t, d] += grad[k, d]
            grad[k, d] = 0.0


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def train_cbow_batch(ids: np.ndarray, offsets: np.ndarray, s_lo: int, s_hi: int,
                     W_in: np.ndarray, W_out: np.ndarray, keep_prob: np.ndarray,
                     alias_prob: np.ndarray, alias_idx: np.ndarray, window: int, negative: int,
                     lr_start: float, lr_end: float, seed: np.uint64, loss_every: int,
                     block: int, counters: np.ndarray, touches_in: np.ndarray,
                     touches_out: np.ndarray, trace_words: np.ndarray,
                     trace_targets: np.ndarray, trace_lr: np.ndarray) -> None:
    """CBOW with negatives shared by ``block`` consecutive examples (counted across
    sentences, within the call): the block's first example draws them, each example scores
    its centre word (its output row updated at once, as :func:`train_cbow`) and the shared
    negatives other than its centre against their rows as they stand, and the negatives' rows
    move by their summed changes after the block's last example (and at the call's end): a
    minibatch for the negatives, as HogBatch's for skip-gram's window. The negatives' rows are
    then read from cache and written once per block, not once per example: at ``block=4``
    1.12-1.15x words/s, at lower analogy accuracy (RESULTS.md §24). The trace records each
    example as :func:`train_cbow` does, its targets the centre and the block's negatives;
    example ``k`` is in block ``k // block``."""
    dim = W_in.shape[1]
    state = np.uint64(seed) | np.uint64(1)
    sentence = _sentence_buffer(offsets, s_lo, s_hi)
    counting = touches_in.shape[0] > 0
    neu1e = np.empty(dim, dtype=np.float32)
    h = np.empty(dim, dtype=np.float32)  # the context mean
    negs = np.empty(negative, dtype=np.int64)  # the block's negatives
    targets = np.empty(negative + 1, dtype=np.int64)  # the trace's: the centre, then negs
    live = np.empty(max(negative, 1), dtype=np.int64)  # the negatives scored (not the centre)
    pending = np.empty(negative, dtype=np.int64)  # the next block's noise words
    grad = np.zeros((negative, dim), dtype=np.float32)  # the block's change of each negative
    state = _draw_pending(state, pending, alias_prob, alias_idx, W_out)
    in_block = 0
    n_trace = 0
    loss_sum = 0.0  # float64, added to counters at the end (not a store per target)
    terms = 0
    seen = 0  # examples so far: the loss is scored on every loss_every-th
    kept = examples = 0  # words kept, examples: added to counters at the end
    for s in range(s_lo, s_hi):
        state, n, lr = _start_sentence(ids, offsets, s, s_lo, s_hi, keep_prob, sentence, state,
                                       lr_start, lr_end)
        kept += n
        for i in range(n):
            state, j_lo, j_hi = _window(state, i, n, window)
            _prefetch_next(W_in, W_out, sentence, i, n, window)
            if j_hi - j_lo <= 1:
                continue
            if in_block == 0:  # the block's negatives, drawn one block ahead
                for k in range(negative):
                    negs[k] = pending[k]
                state = _draw_pending(state, pending, alias_prob, alias_idx, W_out)
            _context_mean(W_in, sentence, i, j_lo, j_hi, h)
            for d in range(dim):
                neu1e[d] = 0.0
            centre = sentence[i]
            score, seen = _scored(loss_every, seen)
            f = np.float32(0.0)
            for d in range(dim):
                f += h[d] * W_out[centre, d]
            g, loss = _pair_gradient(f, True, lr, score)
            loss_sum += loss
            for d in range(dim):
                neu1e[d] += g * W_out[centre, d]
                W_out[centre, d] += g * h[d]
            n_live = 0
            for k in range(negative):
                if negs[k] != centre:
                    live[n_live] = k
                    n_live += 1
            loss_sum += _score_shared(h, W_out, negs, live, n_live, neu1e, grad, lr, score)
            terms += score * (1 + n_live)
            if counting:
                touches_out[centre] += 1
                for q in range(n_live):
                    touches_out[negs[live[q]]] += 1
            _add_to_context(W_in, sentence, i, j_lo, j_hi, neu1e, touches_in, counting)
            examples += 1
            if n_trace < trace_lr.shape[0]:
                targets[0] = centre
                targets[1:] = negs
                n_trace = _record(trace_words, trace_targets, trace_lr, n_trace, sentence, j_lo,
                                  j_hi, i, targets, lr)
            in_block += 1
            if in_block == block:
                _apply_shared(W_out, negs, grad)
                in_block = 0
    if in_block:
        _apply_shared(W_out, negs, grad)
    _add_counts(counters, offsets, s_lo, s_hi, kept, examples, loss_sum, terms)


@njit(nogil=True, cache=True)
def sample_noise(alias_prob: np.ndarray, alias_idx: np.ndarray, n: int,
                 seed: np.uint64) -> np.ndarray:
    """``n`` draws from an alias table with the kernels' generator (for tests and checks)."""
    state = np.uint64(seed) | np.uint64(1)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        state, out[i] = _draw(state, alias_prob, alias_idx)
    return out


#: Up to this many targets per centre, repeated draws are found by comparing the targets
#: pairwise; above it, with a table over the vocabulary (the same result in O(negative) steps).
PAIRWISE_REPEATS = 16


@njit(inline="always")
def _count_repeats(targets: np.ndarray, centre: np.int64, slot: np.ndarray,
                   times: np.ndarray) -> bool:
    """``times[k]``: how many times ``targets[k]`` was drawn for this centre, at its first slot;
    0 at its later slots and at negatives equal to the centre (skipped); ``times[0] = 1`` (the
    centre). ``slot``: length 0 (compare pairwise), or one entry per row, all -1 on entry and
    again on return (the first slot of each row while counting). Returns whether any target was
    drawn more than once."""
    repeats = False
    times[0] = 1
    table = slot.shape[0] > 0
    for k in range(1, targets.shape[0]):
        t = targets[k]
        times[k] = 0
        if t == centre:
            continue
        first = k
        if table:
            if slot[t] >= 0:
                first = slot[t]
            else:
                slot[t] = k
        else:
            for j in range(1, k):
                if times[j] > 0 and targets[j] == t:
                    first = j
                    break
        times[first] += 1
        repeats = repeats or first != k
    if table:
        for k in range(1, targets.shape[0]):
            slot[targets[k]] = -1
    return repeats


@njit(cache=True, fastmath=FASTMATH)
def _repeated_negative(f: float, m: np.int64, hh: float, lr: float, compute_loss: bool
                       ) -> tuple[float, float, float]:
    """Word2vec's ``m`` steps of one pair on a negative drawn ``m`` times (label 0), ``h``
    fixed: the r-th scores the row the earlier ones moved, ``f + G_r |h|^2`` (``G_r``: the sum
    of the earlier ``g``). Its input gradient ``g_r (out + G_r h)`` sums to ``G out + A h``.
    Returns ``(G, A, loss)``, ``f`` the score before the first step."""
    G = np.float32(0.0)
    A = np.float32(0.0)
    loss = 0.0
    for _ in range(m):
        f_r = min(max(f + G * hh, -MAX_SCORE), MAX_SCORE)
        g_r = np.float32(-lr / (1.0 + np.exp(-f_r)))
        A += g_r * G
        G += g_r
        if compute_loss:
            loss += _softplus(f_r)
    return G, A, loss


@njit(cache=True, fastmath=FASTMATH)
def _repeated_targets(W_in: np.ndarray, W_out: np.ndarray, context: np.ndarray, n_ctx: int,
                      targets: np.ndarray, times: np.ndarray, lr: float, compute_loss: bool,
                      grad_in: np.ndarray, grad_out: np.ndarray) -> tuple[float, np.int64]:
    """Add to a centre's minibatch gradients the pairs with the targets drawn ``m > 1`` times
    (``times``): for every context word, word2vec's ``m`` steps (:func:`_repeated_negative`),
    from the parameters before the minibatch like every other pair. Returns their loss sum and
    loss terms (0 unless ``compute_loss``), for the caller's locals."""
    dim = W_in.shape[1]
    loss_sum = 0.0
    terms = np.int64(0)
    for c in range(n_ctx):
        r = context[c]
        hh = np.float32(0.0)
        for d in range(dim):
            hh += W_in[r, d] * W_in[r, d]
        along_h = np.float32(0.0)
        for k in range(1, targets.shape[0]):
            m = times[k]
            if m < 2:
                continue
            t = targets[k]
            f = np.float32(0.0)
            for d in range(dim):
                f += W_in[r, d] * W_out[t, d]
            g, along, loss = _repeated_negative(f, m, hh, lr, compute_loss)
            along_h += along
            if compute_loss:
                loss_sum += loss
                terms += m
            for d in range(dim):
                grad_in[c, d] += g * W_out[t, d]
                grad_out[k, d] += g * W_in[r, d]
        for d in range(dim):
            grad_in[c, d] += along_h * W_in[r, d]
    return loss_sum, terms


@njit(inline="always")
def _gather(sentence: np.ndarray, i: int, j_lo: int, j_hi: int, times: np.ndarray,
            context: np.ndarray, singles: np.ndarray) -> tuple[int, int]:
    """A centre's context words (``context``, the centre left out) and the slots of the
    targets drawn once (``singles``); returns how many of each."""
    n_ctx = 0
    for j in range(j_lo, j_hi):
        if j != i:
            context[n_ctx] = sentence[j]
            n_ctx += 1
    n_single = 0
    for k in range(times.shape[0]):
        if times[k] == 1:
            singles[n_single] = k
            n_single += 1
    return n_ctx, n_single


@njit(inline="always")
def _pair_block(W_in: np.ndarray, W_out: np.ndarray, context: np.ndarray, targets: np.ndarray,
                singles: np.ndarray, c0: int, p: int, n_ctx: int, n_single: int, lr: float,
                compute_loss: bool, grad_in: np.ndarray, grad_out: np.ndarray
                ) -> tuple[float, int]:
    """Two context rows against two targets drawn once: the four scores in one pass over the
    four rows, then the four gradients in another, so each row is read twice per block instead
    of twice per pair, and each gradient row is loaded and stored once per two pairs
    (HogBatch's small GEMM, Ji et al. 2016, as a 2x2 register tile). A block past the last
    context row or target (an odd count) goes pair by pair. Returns its loss sum and terms."""
    if c0 + 1 >= n_ctx or p + 1 >= n_single:
        return _pairs_one_by_one(W_in, W_out, context, targets, singles, c0, p, n_ctx,
                                 n_single, lr, compute_loss, grad_in, grad_out)
    dim = W_in.shape[1]
    r0 = context[c0]
    r1 = context[c0 + 1]
    k0 = singles[p]
    k1 = singles[p + 1]
    t0 = targets[k0]
    t1 = targets[k1]
    f00 = np.float32(0.0)
    f01 = np.float32(0.0)
    f10 = np.float32(0.0)
    f11 = np.float32(0.0)
    for d in range(dim):
        a = W_in[r0, d]
        b = W_in[r1, d]
        x = W_out[t0, d]
        y = W_out[t1, d]
        f00 += a * x
        f01 += a * y
        f10 += b * x
        f11 += b * y
    g00, loss00 = _pair_gradient(f00, k0 == 0, lr, compute_loss)
    g01, loss01 = _pair_gradient(f01, k1 == 0, lr, compute_loss)
    g10, loss10 = _pair_gradient(f10, k0 == 0, lr, compute_loss)
    g11, loss11 = _pair_gradient(f11, k1 == 0, lr, compute_loss)
    for d in range(dim):
        a = W_in[r0, d]
        b = W_in[r1, d]
        x = W_out[t0, d]
        y = W_out[t1, d]
        grad_in[c0, d] += g00 * x + g01 * y
        grad_in[c0 + 1, d] += g10 * x + g11 * y
        grad_out[k0, d] += g00 * a + g10 * b
        grad_out[k1, d] += g01 * a + g11 * b
    return loss00 + loss01 + loss10 + loss11, 4 if compute_loss else 0


@njit(inline="always")
def _pairs_one_by_one(W_in: np.ndarray, W_out: np.ndarray, context: np.ndarray,
                      targets: np.ndarray, singles: np.ndarray, c0: int, p: int, n_ctx: int,
                      n_single: int, lr: float, compute_loss: bool, grad_in: np.ndarray,
                      grad_out: np.ndarray) -> tuple[float, int]:
    """The pairs of a block that has one context row or one target (:func:`_pair_block`)."""
    dim = W_in.shape[1]
    loss = 0.0
    terms = 0
    for c in range(c0, min(c0 + 2, n_ctx)):
        r = context[c]
        for q in range(p, min(p + 2, n_single)):
            k = singles[q]
            t = targets[k]
            f = np.float32(0.0)
            for d in range(dim):
                f += W_in[r, d] * W_out[t, d]
            g, pair_loss = _pair_gradient(f, k == 0, lr, compute_loss)
            for d in range(dim):
                grad_in[c, d] += g * W_out[t, d]
                grad_out[k, d] += g * W_in[r, d]
            loss += pair_loss
            terms += compute_loss
    return loss, terms


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def train_sg_batch(ids: np.ndarray, offsets: np.ndarray, s_lo: int, s_hi: int,
                   W_in: np.ndarray, W_out: np.ndarray, keep_prob: np.ndarray,
                   alias_prob: np.ndarray, alias_idx: np.ndarray, window: int, negative: int,
                   lr_start: float, lr_end: float, seed: np.uint64, loss_every: int,
                   counters: np.ndarray, touches_in: np.ndarray, touches_out: np.ndarray,
                   trace_words: np.ndarray, trace_targets: np.ndarray,
                   trace_lr: np.ndarray) -> None:
    """Skip-gram, HogBatch style (Ji et al. 2016): per centre word, its context words share one
    set of negatives, and the window is one minibatch: every (context, target) pair is scored
    from the parameters before the step, then every row is updated with its summed gradient.
    Output rows are read once per centre instead of once per pair. Counters count pairs as
    examples; the trace records one row per centre (context words padded with -1).

    A target drawn ``m`` times for one centre (frequent words, at large ``negative``: "the" is
    about 30 of 1,000 draws) takes word2vec's ``m`` steps within each pair: word2vec updates a
    target's output row at once, so the next draw of it scores against the moved row
    (``h`` fixed: ``f_r = f + G_r |h|^2``, ``G_r`` the sum of the earlier steps' ``g``), and the
    steps shrink as its sigmoid saturates. Summing ``m`` gradients all taken at the first score
    (this kernel before issue 16) moved the row ``m`` times as far with no such feedback; times
    up to ``2 * window`` contexts, that step overshot and ``negative=1000`` diverged to NaN
    where the per-pair kernel trains. The ``m`` steps are a scalar recurrence
    (:func:`_repeated_negative`), the row is still read and written once, and a centre with no
    repeated draw (most of them at small ``negative``) takes exactly the minibatch step, as
    before. The minibatch across the window's context words is kept: it is HogBatch (word2vec's
    sequential pairs with shared negatives measured 0.02 lower WordSim-353 Spearman at
    ``negative=5``), but it leaves this kernel more sensitive than the per-pair one to a large
    learning rate at large ``negative`` (at 1,000: ``alpha`` 0.025 trains, 0.05 diverges; the
    per-pair kernel diverges at 0.1)."""
    dim = W_in.shape[1]
    state = np.uint64(seed) | np.uint64(1)
    sentence = _sentence_buffer(offsets, s_lo, s_hi)
    counting = touches_in.shape[0] > 0
    targets = np.empty(negative + 1, dtype=np.int64)
    pending = np.empty(negative, dtype=np.int64)  # the next example's noise words
    state = _draw_pending(state, pending, alias_prob, alias_idx, W_out)
    slot = np.full(W_out.shape[0] if negative + 1 > PAIRWISE_REPEATS else 0, -1, dtype=np.int32)
    times = np.empty(negative + 1, dtype=np.int64)
    context = np.empty(2 * window, dtype=np.int64)  # the window's words, the centre left out
    singles = np.empty(negative + 1, dtype=np.int64)  # the slots of targets drawn once
    grad_in = np.empty((2 * window, dim), dtype=np.float32)
    grad_out = np.empty((negative + 1, dim), dtype=np.float32)
    n_trace = 0
    loss_sum = 0.0  # float64, added to counters at the end (not a store per target)
    terms = 0
    seen = 0  # examples so far: the loss is scored on every loss_every-th
    kept = examples = 0  # words kept, examples: added to counters at the end
    for s in range(s_lo, s_hi):
        state, n, lr = _start_sentence(ids, offsets, s, s_lo, s_hi, keep_prob, sentence, state,
                                       lr_start, lr_end)
        kept += n
        for i in range(n):
            state, j_lo, j_hi = _window(state, i, n, window)
            _prefetch_next(W_in, W_out, sentence, i, n, window)
            if j_hi - j_lo <= 1:
                continue
            centre = sentence[i]
            state = _take_targets(state, centre, targets, pending, alias_prob, alias_idx, W_out)
            repeats = _count_repeats(targets, centre, slot, times)
            score, seen = _scored(loss_every, seen)
            n_ctx, n_single = _gather(sentence, i, j_lo, j_hi, times, context, singles)
            for c in range(n_ctx):
                for d in range(dim):
                    grad_in[c, d] = 0.0
            grad_out[:, :] = 0.0
            for c0 in range(0, n_ctx, 2):
                for p in range(0, n_single, 2):
                    pair_loss, pair_terms = _pair_block(W_in, W_out, context, targets, singles,
                                                        c0, p, n_ctx, n_single, lr, score,
                                                        grad_in, grad_out)
                    loss_sum += pair_loss
                    terms += pair_terms
            if repeats:  # the targets drawn m > 1 times: word2vec's m steps (issue 16)
                more_loss, more_terms = _repeated_targets(W_in, W_out, context, n_ctx, targets,
                                                          times, lr, score, grad_in, grad_out)
                loss_sum += more_loss
                terms += more_terms
            for c in range(n_ctx):
                r = context[c]
                for d in range(dim):
                    W_in[r, d] += grad_in[c, d]
                if counting:
                    touches_in[r] += 1
            for k in range(negative + 1):
                if times[k] > 0:
                    t = targets[k]
                    for d in range(dim):
                        W_out[t, d] += grad_out[k, d]
                    if counting:
                        touches_out[targets[k]] += n_ctx * times[k]
            examples += n_ctx
            n_trace = _record(trace_words, trace_targets, trace_lr, n_trace, sentence, j_lo,
                              j_hi, i, targets, lr)
    _add_counts(counters, offsets, s_lo, s_hi, kept, examples, loss_sum, terms)
