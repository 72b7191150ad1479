"""The Numba kernels against the NumPy reference, plus sampling and learning checks."""

from __future__ import annotations

import numpy as np
import pytest

from dw2v.kernels import cpu, reference
from dw2v.kernels.cpu_train import split_sentences, train


def _problem(vocab: int = 20, dim: int = 8, sentences: int = 6, seed: int = 0,
             sample: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 14, size=sentences)
    ids = rng.integers(0, vocab, size=lengths.sum()).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    counts = np.sort(rng.integers(1, 100, size=vocab))[::-1].astype(np.float64)
    keep = (rng.uniform(0.3, 1.0, size=vocab) if sample else np.ones(vocab)).astype(np.float32)
    alias_prob, alias_idx = cpu.build_alias(counts ** 0.75 / (counts ** 0.75).sum())
    W_in = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    W_out = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)  # nonzero: real test
    return dict(ids=ids, offsets=offsets, W_in=W_in, W_out=W_out, keep_prob=keep,
                alias_prob=alias_prob, alias_idx=alias_idx)


#: The CBOW block the parametrized tests use for their shared-negatives case.
BLOCK = 4


def _sharing(sg: bool, batch: bool) -> dict:
    """``train``'s keywords for a test case's shared negatives: HogBatch for skip-gram, blocks
    of BLOCK examples for CBOW."""
    return {"shared_negatives": batch and sg, "cbow_block": BLOCK if batch and not sg else 1}


def _replay(problem: dict, trace, sg: bool,  # noqa: ANN001
            batch: bool = False, block: int = BLOCK
            ) -> tuple[np.ndarray, np.ndarray, reference.Counters]:
    W_in, W_out = problem["W_in"].copy(), problem["W_out"].copy()
    counters = reference.Counters()
    if batch and not sg:  # CBOW: every ``block`` consecutive examples share their negatives
        for lo in range(0, len(trace.lr), block):
            rows = slice(lo, lo + block)
            reference.cbow_shared_block(W_in, W_out, [w[w >= 0] for w in trace.words[rows]],
                                        trace.targets[rows], trace.lr[rows], counters)
        return W_in, W_out, counters
    for words, targets, lr in zip(trace.words, trace.targets, trace.lr):
        if batch:
            reference.skipgram_batch_step(W_in, W_out, words[words >= 0], targets, lr, counters)
        elif sg:
            reference.skipgram_step(W_in, W_out, int(words[0]), targets, lr, counters)
        else:
            reference.cbow_step(W_in, W_out, words[words >= 0], targets, lr, counters)
    return W_in, W_out, counters


@pytest.mark.parametrize("sg", [True, False], ids=["skipgram", "cbow"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_equals_reference_on_the_same_draws(sg: bool, seed: int) -> None:
    problem = _problem(sentences=12, seed=seed)
    before = {k: v.copy() for k, v in problem.items()}
    W_in, W_out = problem["W_in"], problem["W_out"]
    counters, trace = train(**problem, sg=sg, window=3, negative=4, lr_start=0.5,
                            lr_end=0.05, seed=seed, trace_capacity=10_000)
    assert trace is not None and len(trace.lr) == counters[cpu.EXAMPLES] > 20
    ref_in, ref_out, ref = _replay(before, trace, sg)
    np.testing.assert_allclose(W_in, ref_in, atol=1e-5)
    np.testing.assert_allclose(W_out, ref_out, atol=1e-5)
    assert not np.allclose(W_in, before["W_in"], atol=1e-3)  # it did train
    assert counters[cpu.LOSS_TERMS] == ref.terms
    np.testing.assert_allclose(counters[cpu.LOSS_SUM], ref.loss, rtol=1e-5)
    # the learning rate decays linearly over the words read, from lr_start towards lr_end
    assert trace.lr[0] == pytest.approx(0.5) and np.all(np.diff(trace.lr) <= 0)
    assert trace.lr[-1] > 0.05


@pytest.mark.parametrize("vocab,negative,lr", [(20, 4, 0.5), (6, 12, 0.1), (40, 60, 0.1)],
                         ids=["few-repeats", "many-repeats", "table-of-repeats"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hogbatch_kernel_equals_the_batched_reference(seed: int, vocab: int, negative: int,
                                                      lr: float) -> None:
    # 12 draws from 6 words repeat most words (found pairwise); 61 targets are above
    # PAIRWISE_REPEATS (found with a table): a repeated negative takes word2vec's steps, one
    # after the other, in each pair of the window (issue 16)
    problem = _problem(vocab=vocab, sentences=12, seed=seed)
    before = {k: v.copy() for k, v in problem.items()}
    counters, trace = train(**problem, sg=True, window=3, negative=negative, lr_start=lr,
                            lr_end=lr / 10, seed=seed, shared_negatives=True,
                            trace_capacity=10_000)
    ref_in, ref_out, ref = _replay(before, trace, sg=True, batch=True)
    assert len(trace.lr) > 10 and counters[cpu.EXAMPLES] == ref.examples
    repeated = [len(np.unique(t[1:])) < negative for t in trace.targets]
    assert np.mean(repeated) > (0.9 if negative > 4 else 0.1)
    assert (negative + 1 > cpu.PAIRWISE_REPEATS) == (negative == 60)
    np.testing.assert_allclose(problem["W_in"], ref_in, atol=1e-5)
    np.testing.assert_allclose(problem["W_out"], ref_out, atol=1e-5)
    assert counters[cpu.LOSS_TERMS] == ref.terms
    np.testing.assert_allclose(counters[cpu.LOSS_SUM], ref.loss, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("vocab,negative,lr,block", [(20, 4, 0.5, 4), (6, 12, 0.1, 4),
                                                     (20, 4, 0.5, 3)],
                         ids=["few-repeats", "repeats", "block-3"])
def test_cbow_with_shared_negatives_equals_the_block_reference(seed: int, vocab: int,
                                                               negative: int, lr: float,
                                                               block: int) -> None:
    """Every ``cbow_block`` consecutive examples share one draw of negatives, across
    sentences; the negatives' rows move once per block (and at the call's end, mid-block)."""
    problem = _problem(vocab=vocab, sentences=12, seed=seed)
    before = {k: v.copy() for k, v in problem.items()}
    counters, trace = train(**problem, sg=False, window=3, negative=negative, lr_start=lr,
                            lr_end=lr / 10, seed=seed, cbow_block=block,
                            trace_capacity=10_000)
    n = len(trace.lr)
    assert n == counters[cpu.EXAMPLES] > 20
    for lo in range(0, n, block):  # the block's examples share their negatives
        rows = trace.targets[lo:lo + block, 1:]
        assert (rows == rows[0]).all()
    assert not (trace.targets[0, 1:] == trace.targets[block, 1:]).all()
    ref_in, ref_out, ref = _replay(before, trace, sg=False, batch=True, block=block)
    np.testing.assert_allclose(problem["W_in"], ref_in, atol=1e-5)
    np.testing.assert_allclose(problem["W_out"], ref_out, atol=1e-5)
    assert not np.allclose(problem["W_out"], before["W_out"], atol=1e-3)
    assert counters[cpu.LOSS_TERMS] == ref.terms
    np.testing.assert_allclose(counters[cpu.LOSS_SUM], ref.loss, rtol=1e-5)
    # one draw per block, not per example: the draws differ from the per-example kernel's
    per_example = _problem(vocab=vocab, sentences=12, seed=seed)
    _, other = train(**per_example, sg=False, window=3, negative=negative, lr_start=lr,
                     lr_end=lr / 10, seed=seed, trace_capacity=10_000)
    assert not np.array_equal(other.targets[1:block, 1:], trace.targets[1:block, 1:])


def test_a_cbow_block_ends_mid_way_at_the_call_s_end() -> None:
    """A call whose examples are not a whole number of blocks still moves the last block's
    negatives (the reference does the same, the block cut short)."""
    for seed in range(20):
        problem = _problem(sentences=12, seed=seed)
        before = {k: v.copy() for k, v in problem.items()}
        counters, trace = train(**problem, sg=False, window=3, negative=4, lr_start=0.5,
                                lr_end=0.05, seed=seed, cbow_block=BLOCK, trace_capacity=10_000)
        if len(trace.lr) % BLOCK:
            break
    assert len(trace.lr) % BLOCK
    ref_in, ref_out, _ = _replay(before, trace, sg=False, batch=True)
    np.testing.assert_allclose(problem["W_out"], ref_out, atol=1e-5)


def test_cbow_draws_per_example_above_the_block_limit() -> None:
    """Past CBOW_BLOCK_MAX_NEGATIVE negatives CBOW draws a set per example even when asked
    to share (a block's summed steps on a word drawn many times would overshoot): the same
    vectors as with ``cbow_block=1``."""
    negative = cpu.CBOW_BLOCK_MAX_NEGATIVE + 1
    runs = []
    for block in (BLOCK, 1):
        problem = _problem(vocab=30, sentences=12, seed=3)
        train(**problem, sg=False, window=3, negative=negative, lr_start=0.1, lr_end=0.01,
              seed=3, cbow_block=block)
        runs.append((problem["W_in"], problem["W_out"]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("sg,batch", [(True, False), (True, True), (False, False), (False, True)],
                         ids=["skipgram", "skipgram-hogbatch", "cbow", "cbow-shared"])
@pytest.mark.parametrize("threads", [1, 2])
def test_touch_counters_count_every_update(sg: bool, batch: bool, threads: int) -> None:
    problem = _problem(sentences=30, seed=4)
    vocab = len(problem["keep_prob"])
    touches = (np.zeros(vocab, np.int64), np.zeros(vocab, np.int64))
    counters, _ = train(**problem, sg=sg, window=3, negative=4, lr_start=0.1, lr_end=0.01,
                        seed=2, threads=threads, **_sharing(sg, batch), touches=touches)
    # every loss term updates one output row; every input row update is counted once
    assert touches[1].sum() == counters[cpu.LOSS_TERMS]
    if sg:
        assert touches[0].sum() == counters[cpu.EXAMPLES]  # one input row per pair
    else:
        assert touches[0].sum() >= counters[cpu.EXAMPLES]  # every context row of an example
    assert (touches[0] >= 0).all() and touches[0][problem["ids"]].sum() > 0


@pytest.mark.parametrize("sg,batch", [(True, False), (True, True), (False, False), (False, True)],
                         ids=["skipgram", "skipgram-hogbatch", "cbow", "cbow-shared"])
def test_a_sampled_loss_estimates_the_full_one_and_changes_no_vector(sg: bool,
                                                                      batch: bool) -> None:
    """``loss_every=8`` scores one example in 8: the vectors are the same bit for bit, about
    an eighth of the terms are counted, and their mean is close to the mean of all."""
    runs = {}
    for every in (1, 8):
        problem = _problem(vocab=60, sentences=400, seed=5)
        counters, _ = train(**problem, sg=sg, window=3, negative=4, lr_start=0.1,
                            lr_end=0.01, seed=2, **_sharing(sg, batch), loss_every=every)
        runs[every] = (counters, problem["W_in"], problem["W_out"])
    (full, in_1, out_1), (sampled, in_8, out_8) = runs[1], runs[8]
    np.testing.assert_array_equal(in_1, in_8)
    np.testing.assert_array_equal(out_1, out_8)
    assert sampled[cpu.EXAMPLES] == full[cpu.EXAMPLES] > 1000
    assert sampled[cpu.LOSS_TERMS] == pytest.approx(full[cpu.LOSS_TERMS] / 8, rel=0.05)
    mean_full = full[cpu.LOSS_SUM] / full[cpu.LOSS_TERMS]
    assert sampled[cpu.LOSS_SUM] / sampled[cpu.LOSS_TERMS] == pytest.approx(mean_full, rel=0.03)
    off, _ = train(**_problem(vocab=60, sentences=400, seed=5), sg=sg, window=3, negative=4,
                   lr_start=0.1, lr_end=0.01, seed=2, **_sharing(sg, batch),
                   compute_loss=False)
    assert off[cpu.LOSS_TERMS] == off[cpu.LOSS_SUM] == 0  # no loss: nothing counted


@pytest.mark.parametrize("sg", [True, False], ids=["skipgram", "cbow"])
def test_a_negative_equal_to_its_target_is_skipped(sg: bool) -> None:
    problem = _problem(vocab=2, sentences=4, sample=False)
    problem["alias_prob"], problem["alias_idx"] = cpu.build_alias(np.array([0.5, 0.5]))
    before = {k: v.copy() for k, v in problem.items()}
    counters, trace = train(**problem, sg=sg, window=2, negative=5, lr_start=0.1, lr_end=0.1,
                            seed=3, trace_capacity=10_000)
    equal = (trace.targets[:, 1:] == trace.targets[:, :1]).sum()
    assert equal > 0
    total = trace.targets.size
    assert counters[cpu.LOSS_TERMS] == total - equal  # skipped terms are not counted
    ref_in, ref_out, _ = _replay(before, trace, sg)
    np.testing.assert_allclose(problem["W_out"], ref_out, atol=1e-5)
    np.testing.assert_allclose(problem["W_in"], ref_in, atol=1e-5)


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    results = []
    for seed in (5, 5, 6):
        problem = _problem(seed=1)
        train(**problem, sg=True, window=3, negative=3, lr_start=0.1, lr_end=0.01, seed=seed)
        results.append(problem["W_in"])
    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


def test_finite_difference_gradient_of_the_loss() -> None:
    rng = np.random.default_rng(4)
    h = rng.normal(size=6)
    W_out = rng.normal(size=(7, 6))
    targets = np.array([2, 5, 2, 0, 5])  # a repeated negative and one equal to the positive
    loss, dh, dW = reference.loss_and_gradients(h, W_out, targets)
    eps = 1e-6
    for d in range(6):
        step = np.zeros(6)
        step[d] = eps
        numeric = (reference.loss_and_gradients(h + step, W_out, targets)[0]
                   - reference.loss_and_gradients(h - step, W_out, targets)[0]) / (2 * eps)
        assert dh[d] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    for row in range(7):
        for d in range(6):
            W_plus, W_minus = W_out.copy(), W_out.copy()
            W_plus[row, d] += eps
            W_minus[row, d] -= eps
            numeric = (reference.loss_and_gradients(h, W_plus, targets)[0]
                       - reference.loss_and_gradients(h, W_minus, targets)[0]) / (2 * eps)
            assert dW[row, d] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    assert np.all(dW[[1, 3, 4, 6]] == 0)  # rows not read get no gradient


def test_alias_sampler_matches_the_noise_distribution() -> None:
    counts = np.array([1000, 300, 100, 30, 10, 3, 1], dtype=np.float64)
    p = counts ** 0.75 / (counts ** 0.75).sum()
    prob, idx = cpu.build_alias(p)
    draws = cpu.sample_noise(prob, idx, 400_000, np.uint64(11))
    freq = np.bincount(draws, minlength=len(p)) / len(draws)
    np.testing.assert_allclose(freq, p, atol=0.003)


def test_subsampling_keeps_words_at_their_keep_probability() -> None:
    vocab, n = 4, 200_000
    ids = np.random.default_rng(0).integers(0, vocab, n).astype(np.int32)
    offsets = np.arange(0, n + 1, 100, dtype=np.int64)
    keep = np.array([0.2, 0.5, 0.9, 1.0], np.float32)
    prob, idx = cpu.build_alias(np.full(vocab, 0.25))
    W = np.zeros((vocab, 2), np.float32)
    counters, _ = train(ids, offsets, W, W.copy(), keep, prob, idx, sg=True, window=1,
                        negative=0, lr_start=0.0, lr_end=0.0, seed=1)
    assert counters[cpu.WORDS_READ] == n
    expected = np.bincount(ids, minlength=vocab) @ keep
    assert counters[cpu.WORDS_KEPT] == pytest.approx(expected, rel=0.01)


def test_split_sentences_balances_words() -> None:
    offsets = np.array([0, 10, 20, 30, 100, 110], dtype=np.int64)
    assert split_sentences(offsets, 2) == [(0, 3), (3, 5)]
    assert split_sentences(offsets, 1) == [(0, 5)]
    assert split_sentences(np.array([0], np.int64), 3) == []


def _planted_corpus(groups: int = 40, size: int = 4, sentences: int = 4000,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sentences of three random groups; a group's words always occur together."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(sentences):
        for g in rng.choice(groups, size=3, replace=False):
            parts.append(g * size + rng.permutation(size))
    ids = np.concatenate(parts).astype(np.int32)
    offsets = np.arange(0, len(ids) + 1, 3 * size, dtype=np.int64)
    return ids, offsets


def _planted_accuracy(*, sg: bool, batch: bool, threads: int) -> float:
    """Train 5 epochs on the planted corpus; the share of words whose nearest neighbour (cosine,
    input vectors) is in their own group."""
    groups, size, dim, epochs = 40, 4, 24, 5
    ids, offsets = _planted_corpus(groups, size)
    vocab = groups * size
    rng = np.random.default_rng(1)
    W_in = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    W_out = np.zeros((vocab, dim), np.float32)
    prob, idx = cpu.build_alias(np.full(vocab, 1 / vocab))
    for epoch in range(epochs):
        lr = [0.025 - 0.025 * e / epochs for e in (epoch, epoch + 1)]
        train(ids, offsets, W_in, W_out, np.ones(vocab, np.float32), prob, idx, sg=sg,
              window=3, negative=5, lr_start=lr[0], lr_end=max(lr[1], 1e-4), seed=epoch,
              threads=threads, **_sharing(sg, batch))
    unit = W_in / np.linalg.norm(W_in, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return float(((sims.argmax(axis=1) // size) == (np.arange(vocab) // size)).mean())


@pytest.mark.parametrize("sg,batch", [(True, False), (True, True), (False, False), (False, True)],
                         ids=["skipgram", "skipgram-hogbatch", "cbow", "cbow-shared"])
def test_words_that_occur_together_become_nearest_neighbours(sg: bool, batch: bool) -> None:
    assert _planted_accuracy(sg=sg, batch=batch, threads=1) >= 0.95


def test_hogwild_threads_still_learn_the_planted_groups() -> None:
    """A loose smoke test of the threaded path (results vary run to run with threads)."""
    assert _planted_accuracy(sg=True, batch=True, threads=2) >= 0.8


@pytest.mark.parametrize("change,error,message", [
    (lambda p: p.update(ids=p["ids"].astype(np.int64)), TypeError, "ids must be int32"),
    (lambda p: p.update(W_in=p["W_in"].astype(np.float64)), TypeError, "W_in must be float32"),
    (lambda p: p.update(W_out=p["W_out"][:, :4].copy()), ValueError, "same shape"),
    (lambda p: p.update(W_in=np.asfortranarray(p["W_in"])), ValueError, "C-contiguous"),
    (lambda p: p.update(keep_prob=p["keep_prob"][:5]), ValueError, "keep_prob has 5"),
    (lambda p: p.update(offsets=p["offsets"][:-1]), ValueError, "end at len"),
    (lambda p: p["offsets"].__setitem__(2, 1), ValueError, "must not decrease"),
    (lambda p: p["ids"].__setitem__(0, 99), ValueError, r"ids must be in \[0, 20\)"),
    (lambda p: p.update(W_in=[[0.0]]), TypeError, "numpy array"),
])
def test_wrong_shapes_and_dtypes_are_refused(change, error: type, message: str) -> None:  # noqa: ANN001
    problem = _problem()
    change(problem)
    with pytest.raises(error, match=message):
        train(**problem, sg=True, window=2, negative=2, lr_start=0.1, lr_end=0.1, seed=0)
