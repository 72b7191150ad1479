"""Standard intrinsic evaluations, with gensim's rules so the figures compare with its own.

- Word similarity (WordSim-353 and the like): tab-separated ``word word score`` lines, ``#``
  comments; Spearman and Pearson correlation of the cosine similarities with the scores over
  the pairs whose words are both among the ``restrict_vocab`` most frequent, and the share of
  pairs that are not (out of vocabulary).
- Analogies (Google's ``questions-words.txt``): ``: section`` lines, then ``a b c d`` questions;
  3CosAdd over the ``restrict_vocab`` most frequent words, the question words excluded;
  questions with a word outside them are skipped, as gensim does.

Both compare words case-insensitively (upper-cased, the most frequent spelling wins), as gensim
does by default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from dw2v.errors import InputError

#: Questions scored per matrix product.
_BATCH = 1024


@dataclass(frozen=True)
class SimilarityResult:
    """Correlations with human scores; ``oov`` is the share of pairs left out (0 to 1)."""

    path: str
    spearman: float
    pearson: float
    oov: float
    pairs: int
    pairs_used: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Section:
    name: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class AnalogyResult:
    """Accuracy over the questions whose four words are in the vocabulary (``total``)."""

    path: str
    correct: int
    total: int
    skipped: int
    sections: list[Section] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "accuracy": self.accuracy, "correct": self.correct,
                "total": self.total, "skipped": self.skipped,
                "sections": [{"name": s.name, "accuracy": s.accuracy, "correct": s.correct,
                              "total": s.total} for s in self.sections]}


def _lookup(words: list[str], restrict_vocab: int | None) -> dict[str, int]:
    """Upper-cased word -> row, over the ``restrict_vocab`` first (most frequent) words; where
    two words differ only in case, the more frequent wins."""
    n = len(words) if restrict_vocab is None else min(restrict_vocab, len(words))
    return {words[i].upper(): i for i in range(n - 1, -1, -1)}


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


def _read_lines(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(str(path), f"cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text ({exc.reason})") from None


def similarity(words: list[str], vectors: np.ndarray, path: str | Path, *,
               restrict_vocab: int | None = 300_000, unit: np.ndarray | None = None
               ) -> SimilarityResult:
    """Spearman and Pearson correlation of cosine similarity with the file's scores."""
    lookup = _lookup(words, restrict_vocab)
    unit = _unit(vectors) if unit is None else unit
    gold, model = [], []
    oov = pairs = 0
    for line in _read_lines(path):
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            a, b, score = parts
            value = float(score)
        except ValueError:
            continue  # gensim skips lines it cannot parse
        pairs += 1
        ia, ib = lookup.get(a.upper()), lookup.get(b.upper())
        if ia is None or ib is None:
            oov += 1
            continue
        gold.append(value)
        model.append(float(np.dot(unit[ia], unit[ib])))
    if len(gold) < 2:
        raise InputError(str(path), f"fewer than two word pairs in the vocabulary "
                                    f"({pairs} pairs read, {oov} out of vocabulary)")
    return SimilarityResult(str(path), float(stats.spearmanr(gold, model)[0]),
                            float(stats.pearsonr(gold, model)[0]), oov / pairs, pairs,
                            len(gold))


def analogies(words: list[str], vectors: np.ndarray, path: str | Path, *,
              restrict_vocab: int | None = 300_000, unit: np.ndarray | None = None
              ) -> AnalogyResult:
    """3CosAdd accuracy, overall and per section."""
    lookup = _lookup(words, restrict_vocab)
    n = len(words) if restrict_vocab is None else min(restrict_vocab, len(words))
    unit = (_unit(vectors) if unit is None else unit)[:n]
    names: list[str] = []
    questions: list[tuple[int, int, int, int, int]] = []  # a, b, c, expected, section
    skipped = 0
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            names.append(line[1:].strip())
            continue
        parts = line.split()
        if len(parts) != 4:
            raise InputError(str(path), f"line {number}: expected four words, found "
                                        f"{len(parts)}")
        if not names:
            raise InputError(str(path), f"line {number}: a question before any ': section' line")
        ids = [lookup.get(w.upper()) for w in parts]
        if any(i is None for i in ids):
            skipped += 1
            continue
        questions.append((*ids, len(names) - 1))  # type: ignore[arg-type]
    q = np.array(questions, dtype=np.int64).reshape(-1, 5)
    hits = np.zeros(len(q), bool)
    for lo in range(0, len(q), _BATCH):
        a, b, c, d = (q[lo:lo + _BATCH, k] for k in range(4))
        query = _unit((unit[b] + unit[c] - unit[a]) / np.float32(3))
        scores = query @ unit.T
        rows = np.arange(len(a))
        for excluded in (a, b, c):
            scores[rows, excluded] = -np.inf
        hits[lo:lo + _BATCH] = scores.argmax(axis=1) == d
    sections = [Section(name, int(hits[q[:, 4] == i].sum()), int((q[:, 4] == i).sum()))
                for i, name in enumerate(names)]
    return AnalogyResult(str(path), int(hits.sum()), len(q), skipped,
                         [s for s in sections if s.total])
