"""The plain-NumPy specification of negative-sampling word2vec, the yardstick of every kernel.

It follows the layers of "Deep Learning from Scratch 2", chapter 4 — ``Embedding`` (forward
``W[idx]``, backward ``np.add.at`` into the rows read), ``EmbeddingDot``, ``SigmoidWithLoss``,
``UnigramSampler`` and ``NegativeSamplingLoss`` — applied one training example at a time with
word2vec's update order, so that a fast kernel fed the same draws must give the same numbers:

- an example is an input (one context word for skip-gram, the context words for CBOW) and its
  targets: the positive word first, then the negatives; a negative equal to the positive is
  skipped (word2vec's rule), so it never pushes the positive word away;
- for each target in turn: score, sigmoid cross-entropy, the gradient into the input is
  accumulated with the target's vector *before* its update, and the target's output row is
  updated at once (SGD);
- then the input rows are updated with the accumulated gradient. For CBOW the hidden vector is
  the mean of the context vectors, and, as in word2vec (``-cbow 1``) and gensim
  (``cbow_mean=1``), every context row receives the whole accumulated gradient (not 1/C of it).

Skip-gram follows word2vec's orientation: the input vector is a context word's, and the
positive target is the centre word (equivalent in expectation to the book's centre-to-context).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Embedding:
    """Rows of ``W`` by index; backward adds the gradient into the rows read."""

    def __init__(self, W: np.ndarray) -> None:
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.idx: np.ndarray | None = None

    def forward(self, idx: np.ndarray) -> np.ndarray:
        self.idx = np.asarray(idx)
        return self.params[0][self.idx]

    def backward(self, dout: np.ndarray) -> None:
        dW = self.grads[0]
        dW[...] = 0
        np.add.at(dW, self.idx, dout)


class EmbeddingDot:
    """Score of hidden vectors against chosen output rows: ``sum(W[idx] * h, axis=1)``."""

    def __init__(self, W: np.ndarray) -> None:
        self.embed = Embedding(W)
        self.params, self.grads = self.embed.params, self.embed.grads
        self.cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, h: np.ndarray, idx: np.ndarray) -> np.ndarray:
        target_W = self.embed.forward(idx)
        self.cache = (h, target_W)
        return np.sum(target_W * h, axis=1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        h, target_W = self.cache  # type: ignore[misc]
        dout = dout.reshape(-1, 1)
        self.embed.backward(dout * h)
        return dout * target_W


class SigmoidWithLoss:
    """Sigmoid then binary cross-entropy, summed over the batch (one term per score)."""

    def __init__(self) -> None:
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t = np.asarray(t, dtype=np.float64)
        self.y = sigmoid(x.astype(np.float64))
        eps = 1e-300
        return float(-np.sum(self.t * np.log(self.y + eps)
                             + (1 - self.t) * np.log(1 - self.y + eps)))

    def backward(self, dout: float = 1.0) -> np.ndarray:
        return (self.y - self.t) * dout  # type: ignore[operator]


class UnigramSampler:
    """Draw negatives i.i.d. from counts ** power (word2vec's noise distribution)."""

    def __init__(self, counts: np.ndarray, power: float, rng: np.random.Generator) -> None:
        p = np.asarray(counts, dtype=np.float64) ** power
        self.p = p / p.sum()
        self.rng = rng

    def get_negative_sample(self, targets: np.ndarray, k: int) -> np.ndarray:
        """(len(targets), k) draws; a draw equal to its target is skipped later, in the loss."""
        return self.rng.choice(len(self.p), size=(len(targets), k), p=self.p)


class NegativeSamplingLoss:
    """Loss of one example: the positive target, then each negative not equal to it.

    ``step`` applies word2vec's sequential SGD and returns the loss terms' sum and count.
    """

    def __init__(self, W_out: np.ndarray) -> None:
        self.dot = EmbeddingDot(W_out)
        self.loss = SigmoidWithLoss()

    def step(self, h: np.ndarray, targets: np.ndarray, lr: float) -> tuple[np.ndarray, float, int]:
        """Score ``h`` against ``targets`` (positive first); update the output rows one by one.

        Returns the gradient of the summed loss with respect to ``h``, the loss and the number
        of terms.
        """
        W_out = self.dot.params[0]
        dh = np.zeros_like(h)
        total, terms = 0.0, 0
        positive = targets[0]
        for position, target in enumerate(targets):
            if position > 0 and target == positive:
                continue
            label = np.array([1.0 if position == 0 else 0.0])
            score = self.dot.forward(h[None, :], np.array([target]))
            total += self.loss.forward(score, label)
            terms += 1
            dh += self.dot.backward(self.loss.backward()).astype(h.dtype)[0]
            W_out -= (lr * self.dot.grads[0]).astype(W_out.dtype)
        return dh, total, terms


@dataclass
class Counters:
    loss: float = 0.0
    terms: int = 0
    examples: int = 0


def skipgram_step(W_in: np.ndarray, W_out: np.ndarray, word: int, targets: np.ndarray,
                  lr: float, counters: Counters) -> None:
    """One skip-gram example: input row ``word``, targets ``[centre, negatives...]``."""
    embed = Embedding(W_in)
    h = embed.forward(np.array([word]))[0].copy()
    dh, loss, terms = NegativeSamplingLoss(W_out).step(h, targets, lr)
    embed.backward(dh[None, :])
    W_in -= (lr * embed.grads[0]).astype(W_in.dtype)
    counters.loss += loss
    counters.terms += terms
    counters.examples += 1


def cbow_step(W_in: np.ndarray, W_out: np.ndarray, context: np.ndarray, targets: np.ndarray,
              lr: float, counters: Counters) -> None:
    """One CBOW example: the mean of the context rows predicts ``targets[0]``."""
    embed = Embedding(W_in)
    h = embed.forward(np.asarray(context)).mean(axis=0)
    dh, loss, terms = NegativeSamplingLoss(W_out).step(h, targets, lr)
    embed.backward(np.repeat(dh[None, :], len(context), axis=0))  # word2vec: whole dh per row
    W_in -= (lr * embed.grads[0]).astype(W_in.dtype)
    counters.loss += loss
    counters.terms += terms
    counters.examples += 1


def cbow_shared_block(W_in: np.ndarray, W_out: np.ndarray, contexts: list[np.ndarray],
                      targets: np.ndarray, lrs: np.ndarray, counters: Counters) -> None:
    """CBOW examples that share one draw of negatives (``targets[e] = [centre_e, negatives...]``,
    the same negatives for every ``e``): each example's positive takes its step at once
    (:class:`NegativeSamplingLoss` on its centre alone); each of its negatives other than its
    centre is scored against the output row as it stands, and the negatives' changes are summed
    and added after the block's last example (a minibatch for the negatives). Every context
    row receives the example's whole gradient (word2vec's ``-cbow 1``)."""
    change = np.zeros(W_out.shape, dtype=np.float64)
    for context, row, lr in zip(contexts, targets, lrs):
        embed = Embedding(W_in)
        h = embed.forward(np.asarray(context)).mean(axis=0)
        dh, loss, terms = NegativeSamplingLoss(W_out).step(h, row[:1], lr)
        for target in row[1:]:
            if target == row[0]:
                continue
            dot, sigmoid_loss = EmbeddingDot(W_out), SigmoidWithLoss()
            loss += sigmoid_loss.forward(dot.forward(h[None, :], np.array([target])),
                                         np.array([0.0]))
            terms += 1
            dh += dot.backward(sigmoid_loss.backward()).astype(h.dtype)[0]
            change -= lr * dot.grads[0]  # W_out itself moves when the block ends
        embed.backward(np.repeat(dh[None, :], len(context), axis=0))
        W_in -= (lr * embed.grads[0]).astype(W_in.dtype)
        counters.loss += loss
        counters.terms += terms
        counters.examples += 1
    W_out += change.astype(W_out.dtype)


def skipgram_batch_step(W_in: np.ndarray, W_out: np.ndarray, context: np.ndarray,
                        targets: np.ndarray, lr: float, counters: Counters) -> None:
    """HogBatch skip-gram: every context word of one centre against the same targets, as one
    minibatch over the window. Each context word's pair takes word2vec's step through the
    book's layers (:class:`NegativeSamplingLoss`: the targets in order, each output row updated
    at once, so a negative drawn ``m`` times takes ``m`` steps, each against the row the last
    one moved), every pair starting from the parameters before the step; then the pairs'
    changes are added up (the Embedding backward adds every pair's gradient into the input
    rows it read). Summing the ``m`` gradients of a repeated negative at its first score
    instead diverges at large ``negative`` (issue 16)."""
    context = np.asarray(context)
    embed = Embedding(W_in)
    H = embed.forward(context)
    dH = np.zeros_like(H)
    change_out = np.zeros(W_out.shape, dtype=np.float64)
    for c, h in enumerate(H):
        W_pair = W_out.copy()  # this pair's own copy of the output rows before the step
        dH[c], loss, terms = NegativeSamplingLoss(W_pair).step(h.copy(), targets, lr)
        change_out += W_pair.astype(np.float64) - W_out
        counters.loss += loss
        counters.terms += terms
    embed.backward(dH)
    W_out += change_out.astype(W_out.dtype)
    W_in -= (lr * embed.grads[0]).astype(W_in.dtype)
    counters.examples += len(context)


def loss_and_gradients(h: np.ndarray, W_out: np.ndarray,
                       targets: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss of one example at fixed parameters, with its gradients for ``h`` and ``W_out``.

    The batch form of :class:`NegativeSamplingLoss` (no update between targets), used by the
    finite-difference check of the layers' backward passes.
    """
    keep = np.ones(len(targets), dtype=bool)
    keep[1:] = targets[1:] != targets[0]
    idx = targets[keep]
    labels = np.zeros(len(idx))
    labels[0] = 1.0
    dot, loss_layer = EmbeddingDot(W_out), SigmoidWithLoss()
    loss = loss_layer.forward(dot.forward(np.repeat(h[None, :], len(idx), axis=0), idx), labels)
    dh = dot.backward(loss_layer.backward()).sum(axis=0)
    return loss, dh, dot.grads[0].copy()


def touched_average(results: list[tuple[np.ndarray, np.ndarray]],
                    previous: np.ndarray) -> np.ndarray:
    """The averaging rule, spelled plainly: each worker's ``(rows, touches)``; a row's average
    is over the workers that touched it, weighted by their touches; an untouched row keeps
    ``previous``."""
    weight = sum(t.astype(np.float64) for _, t in results)
    total = sum(r.astype(np.float64) * t[:, None] for r, t in results)
    touched = weight > 0
    average = previous.astype(np.float64).copy()
    average[touched] = total[touched] / weight[touched, None]
    return average
