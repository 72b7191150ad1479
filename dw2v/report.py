"""``report.html``: a static page about one trained model, with PNG figures beside it.

Sections: the run in figures (words, rounds, exchange, the command line), the vocabulary (from
``vocab_report.json``), the time of each stage, per round the loss, throughput, time outside
training and learning rate, each worker (lines up to 8 workers, a heat map beyond, and a
table), the neighbours of chosen words and benchmark scores when the run was given them, the
vocabulary's rank-frequency curve and a 2-D PCA map, and the settings as a table. Figures are
drawn with matplotlib's Agg backend (no display needed); the page and its figures go to
``MODEL_DIR`` and ``MODEL_DIR/report/``, written to temporary names and renamed.
"""

from __future__ import annotations

import html
import json
import logging
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dw2v.atomic import replaced
from dw2v.embeddings import Embeddings
from dw2v.embeddings import load as load_embeddings

logger = logging.getLogger(__name__)

REPORT = "report.html"
FIGURES = "report"
RANK_FREQUENCY = "rank_frequency.png"
#: Words shown in the PCA map (after skipping the most frequent ones, mostly function words).
MAP_WORDS, MAP_SKIP = 80, 20
#: Ranks drawn on the rank-frequency curve (log-spaced; every rank of a small vocabulary).
RANK_POINTS = 2000
#: Up to this many workers the per-worker figure draws a line each; beyond, a heat map.
WORKER_LINES = 8
#: The ranks whose words stand in for ``--neighbours`` when none are given.
SAMPLE_RANKS = (50, 100, 200, 400, 800)
NEIGHBOURS = 8


@dataclass(frozen=True)
class ReportExtras:
    """What a run computes for its report beyond its own records: the neighbours of chosen
    words (a sample of the vocabulary when none are given) and word-pair and analogy scores
    (gensim's rules, ``restrict_vocab`` most frequent words)."""

    neighbours: tuple[str, ...] = ()
    similarity: tuple[str, ...] = ()
    analogies: tuple[str, ...] = ()
    restrict_vocab: int = 300_000


def sample_words(emb: Embeddings, words: Sequence[str] = ()) -> list[str]:
    """``words``, or the words at :data:`SAMPLE_RANKS` of the vocabulary when none are given."""
    return list(words) or [emb.words[r] for r in SAMPLE_RANKS if r < len(emb)]


def compute_extras(emb: Embeddings, extras: ReportExtras) -> dict[str, Any]:
    """The neighbours and scores that ``model.json`` keeps under ``"extras"`` for the report
    and the console; a word not in the vocabulary gets ``None``."""
    neighbours = {w: ([[n, round(float(s), 4)] for n, s in emb.most_similar(w, topn=NEIGHBOURS)]
                      if w in emb else None) for w in sample_words(emb, extras.neighbours)}
    return {"neighbours": neighbours,
            "similarity": {f: emb.evaluate_similarity(f, extras.restrict_vocab).to_dict()
                           for f in extras.similarity},
            "analogies": {f: emb.evaluate_analogies(f, extras.restrict_vocab).to_dict()
                          for f in extras.analogies},
            "restrict_vocab": extras.restrict_vocab}


class EarlyFigures:
    """The report's figures that need only the vocabulary, drawn on a thread while the workers
    train and the driver only waits: matplotlib's import (0.5-0.9 s, RESULTS §16) and the
    rank-frequency curve (0.3-0.4 s, §22) leave a run's last seconds. A failure is left to
    :func:`write_report`, which then draws the figure itself (and says what failed)."""

    def __init__(self, model_dir: Path, counts: np.ndarray) -> None:
        self._drawn: list[str] = []
        self._thread = threading.Thread(target=self._draw, args=(Path(model_dir), counts),
                                        name="dw2v-report-figures", daemon=True)
        self._thread.start()

    def _draw(self, model_dir: Path, counts: np.ndarray) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            figures = model_dir / FIGURES
            figures.mkdir(exist_ok=True)
            _rank_frequency_figure(counts, figures / RANK_FREQUENCY)
            self._drawn.append(RANK_FREQUENCY)
        except Exception as exc:  # noqa: BLE001 - write_report draws it again and says why
            logger.debug("the report's early figures were not drawn: %s", exc)

    def drawn(self) -> tuple[str, ...]:
        """Wait for the thread; the figures it drew (for :func:`write_report`'s ``drawn``)."""
        self._thread.join()
        return tuple(self._drawn)


def _save(fig: Any, path: Path, *, left: float = 0.8, right: float = 0.2, bottom: float = 0.55,
          top: float = 0.35) -> None:
    """Write ``fig`` as a PNG with fixed margins (inches). Fixed margins draw the figure once:
    ``bbox_inches="tight"`` and ``tight_layout`` each draw it once more to measure its text,
    which doubled the report's time, most of a run's last seconds."""
    import matplotlib.pyplot as plt

    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height)
    with replaced(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _readable(axis: Any, unit: str = "") -> None:
    """The y axis in k and M (500k words/s, not 500000)."""
    from matplotlib.ticker import EngFormatter

    axis.yaxis.set_major_formatter(EngFormatter(unit=unit, sep=""))


def _by_round(*axes: Any) -> None:
    """Whole rounds on the x axis, and a light grid."""
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)


def _rounds_figure(rounds: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    x = [r["round"] + 1 for r in rounds]
    fig, ((a, b), (c, d)) = plt.subplots(2, 2, figsize=(10, 6.4))
    a.plot(x, [r["loss"] for r in rounds], marker=".")
    a.set(xlabel="round", ylabel="mean loss per term", title="Loss")
    b.plot(x, [r["words"] / max(r["seconds"], 1e-9) for r in rounds], marker=".")
    b.set(xlabel="round", ylabel="words/s", title="Throughput (all workers)")
    _readable(b)
    c.plot(x, [1e3 * max(r["seconds"] - r["seconds_training"], 0.0) for r in rounds],
           marker=".")
    c.set(xlabel="round", ylabel="ms", title="Time outside training per round")
    c.set_ylim(bottom=0)
    d.plot(x, [r["lr_start"] * r.get("lr_scale", 1) for r in rounds], marker=".")
    d.set(xlabel="round", ylabel="learning rate at the round's start",
          title="Learning rate (each worker's)")
    d.set_ylim(bottom=0)
    _by_round(a, b, c, d)
    fig.subplots_adjust(wspace=0.25, hspace=0.45)
    _save(fig, path)


def _exchange_figure(rounds: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    x = [r["round"] + 1 for r in rounds]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    a.plot(x, [1e3 * r["seconds_training"] for r in rounds], marker=".", label="training")
    a.plot(x, [1e3 * r.get("seconds_exchange", 0.0) for r in rounds], marker=".",
           label="exchange")
    a.set(xlabel="round", ylabel="ms (slowest worker)", title="Time per round")
    a.legend(fontsize=8)
    b.plot(x, [max(r.get("worker_bytes_sent") or [0]) for r in rounds], marker=".")
    b.set(xlabel="round", ylabel="bytes", title="Bytes a worker sent per round (most)")
    _readable(b, "B")
    _by_round(a, b)
    fig.subplots_adjust(wspace=0.3)
    _save(fig, path)


def worker_table(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each worker's totals over the rounds it trained: words, training and exchange seconds,
    bytes sent, in the order the workers first appear."""
    table: dict[str, dict[str, Any]] = {}
    for r in rounds:
        n = len(r.get("workers", []))
        columns = [r.get(k) or [0] * n for k in ("worker_words", "worker_seconds",
                                                  "worker_exchange_seconds", "worker_bytes_sent")]
        for worker, words, seconds, exchange, sent in zip(r.get("workers", []), *columns):
            row = table.setdefault(worker or "(local)", {"worker": worker or "(local)",
                                                         "rounds": 0, "words": 0,
                                                         "seconds": 0.0, "exchange": 0.0,
                                                         "sent": 0})
            row["rounds"] += 1
            row["words"] += words
            row["seconds"] += seconds
            row["exchange"] += exchange
            row["sent"] += sent
    return list(table.values())


def _workers_figure(rounds: list[dict[str, Any]], path: Path) -> None:
    """Words/s of each worker per round: a line each for a few workers, a heat map (one row a
    worker) for many, so that 64 workers still read."""
    import matplotlib.pyplot as plt

    names = [row["worker"] for row in worker_table(rounds)]
    rate = np.full((len(names), len(rounds)), np.nan)
    for j, r in enumerate(rounds):
        for worker, words, seconds in zip(r.get("workers", []), r.get("worker_words", []),
                                          r.get("worker_seconds", [])):
            rate[names.index(worker or "(local)"), j] = words / max(seconds, 1e-9)
    x = [r["round"] + 1 for r in rounds]
    left, right = 0.8, 0.2  # inches: room for the axis labels (more for the heat map's names)
    if len(names) <= WORKER_LINES:
        fig, axis = plt.subplots(figsize=(10, 3.4))
        for name, row in zip(names, rate):
            axis.plot(x, row, marker=".", label=name)
        axis.set(xlabel="round", ylabel="words/s while training", title="Per-worker throughput")
        _readable(axis)
        _by_round(axis)
        if names:
            axis.legend(fontsize=7, loc="best")
    else:
        from matplotlib.ticker import EngFormatter

        fig, axis = plt.subplots(figsize=(10, min(2 + 0.12 * len(names), 12)))
        image = axis.imshow(rate, aspect="auto", interpolation="nearest", cmap="viridis",
                            extent=(x[0] - 0.5, x[-1] + 0.5, len(names) - 0.5, -0.5))
        step = max(1, len(names) // 16)
        axis.set_yticks(range(0, len(names), step))
        axis.set_yticklabels([names[i] for i in range(0, len(names), step)], fontsize=6)
        axis.set(xlabel="round", title=f"Per-worker throughput, words/s while training "
                                       f"({len(names)} workers)")
        fig.colorbar(image, ax=axis, format=EngFormatter(sep=""), label="words/s")
        _by_round(axis)
        axis.grid(False)
        left, right = 1.3, 0.1
    _save(fig, path, left=left, right=right)


def rank_frequency_points(counts: np.ndarray, points: int = RANK_POINTS
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The rank-frequency curve at up to ``points`` ranks spaced evenly on a log scale (the
    first and the last included; every rank of a smaller vocabulary): on log axes the same
    line as every rank, at a fraction of the drawing time for a million words."""
    ordered = np.sort(np.asarray(counts, np.float64))[::-1]
    if len(ordered) <= points:
        return np.arange(1, len(ordered) + 1), ordered
    ranks = np.unique(np.geomspace(1, len(ordered), points).round().astype(np.int64))
    return ranks, ordered[ranks - 1]


def _rank_frequency_figure(counts: np.ndarray, path: Path) -> None:
    import matplotlib.pyplot as plt

    ranks, at_ranks = rank_frequency_points(counts)
    fig, axis = plt.subplots(figsize=(5, 3.6))
    axis.loglog(ranks, np.maximum(at_ranks, 1))
    axis.set(xlabel="rank", ylabel="count", title=f"Rank-frequency ({len(counts):,} words)")
    axis.grid(alpha=0.3, which="both")
    _save(fig, path)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The rows projected on their first two principal components."""
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def _map_figure(emb: Embeddings, path: Path) -> list[str]:
    import matplotlib.pyplot as plt

    skip = MAP_SKIP if len(emb) > MAP_SKIP + MAP_WORDS else 0
    words = emb.words[skip:skip + MAP_WORDS]
    points = pca_2d(emb.unit[skip:skip + len(words)])
    fig, axis = plt.subplots(figsize=(9, 7))
    axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6)
    for word, (x, y) in zip(words, points):
        axis.annotate(word, (x, y), fontsize=7, alpha=0.85)
    axis.set(title=f"PCA of the unit vectors: words {skip + 1}-{skip + len(words)} by frequency",
             xticks=[], yticks=[])
    _save(fig, path, left=0.2, bottom=0.2)
    return words


def _rate(words: float, seconds: float) -> str:
    """Words/s in k or M: ``512k words/s``."""
    rate = words / max(seconds, 1e-9)
    return (f"{rate / 1e6:.2f}M" if rate >= 1e6 else f"{rate / 1e3:.0f}k" if rate >= 1e3
            else f"{rate:.0f}") + " words/s"


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str] = ()) -> str:
    """An HTML table of escaped cells; ``head``, if given, as its header row."""
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    out = [f"<tr>{cells}</tr>"] if head else []
    for row in rows:
        first, *rest = (html.escape(str(v)) for v in row)
        tag = "td" if head else "th"
        out.append(f"<tr><{tag}>{first}</{tag}>" + "".join(f"<td>{v}</td>" for v in rest)
                   + "</tr>")
    return "<table>" + "\n".join(out) + "</table>"


def _vocabulary_rows(model_dir: Path) -> list[tuple[str, str]]:
    path = model_dir / "vocab_report.json"
    if not path.exists():
        return []
    v = json.loads(path.read_text())
    rows = [("files read", f"{v['files']:,}" + (f" ({len(v['skipped_files'])} skipped)"
                                                if v.get("skipped_files") else "")),
            ("documents", f"{v['documents']:,} ({v['null_documents']:,} null, "
                          f"{v['empty_documents']:,} empty)"),
            ("sentences", f"{v['sentences']:,}"),
            ("tokens", f"{v['tokens']:,}"),
            ("distinct words", f"{v['distinct']:,} seen, {v['kept']:,} kept "
                               f"(min count {v['min_count']:,})"),
            ("tokens of kept words",
             f"{v['kept_tokens']:,} ({v['kept_tokens'] / max(v['tokens'], 1):.1%})"),
            ("expected after subsampling", f"{v['expected_after_subsampling']:,.0f} per epoch")]
    if v.get("budget_pruned_distinct"):
        rows.append(("pruned by the vocabulary budget", f"{v['budget_pruned_distinct']:,} "
                     f"words, {v['budget_pruned_tokens']:,} tokens"))
    if v.get("long_tokens_dropped"):
        rows.append(("over-long tokens dropped", f"{v['long_tokens_dropped']:,}"))
    return rows


def _stage_rows(stages: dict[str, float]) -> list[tuple[str, str, str]]:
    total = sum(stages.values())
    return [(name, f"{s:,.1f} s", f"{s / max(total, 1e-9):.0%}") for name, s in stages.items()] + \
        [("total", f"{total:,.1f} s", "")]


def _settings_rows(settings: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for section, values in settings.items():
        for key, value in (values.items() if isinstance(values, dict) else [("", values)]):
            shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            rows.append((section, key, shown))
    return rows


def _extras_html(extras: dict[str, Any]) -> str:
    parts = []
    neighbours = extras.get("neighbours") or {}
    if neighbours:
        rows = [(w, ", ".join(f"{n} ({s:.2f})" for n, s in ns) if ns is not None
                 else "not in the vocabulary") for w, ns in neighbours.items()]
        parts.append(f"<h2>Nearest neighbours</h2>{_table(rows, ('word', 'neighbours (cosine)'))}")
    scores = [(Path(f).name, "word pairs", f"Spearman {r['spearman']:.4f}, Pearson "
               f"{r['pearson']:.4f}", f"{r['pairs']:,} pairs, {r['oov']:.1%} out of vocabulary")
              for f, r in (extras.get("similarity") or {}).items()]
    scores += [(Path(f).name, "analogies", f"accuracy {r['accuracy']:.4f}",
                f"{r['correct']:,} of {r['total']:,} ({r['skipped']:,} skipped)")
               for f, r in (extras.get("analogies") or {}).items()]
    if scores:
        parts.append(f"<h2>Benchmarks</h2><p>gensim's rules, the {extras['restrict_vocab']:,} "
                     f"most frequent words.</p>{_table(scores, ('file', 'kind', 'score', 'of'))}")
    return "\n".join(parts)


def _figure(file: str, caption: str) -> str:
    return (f'<figure><img src="{FIGURES}/{file}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_report(model_dir: str | Path, name: str | None = None,
                 emb: Embeddings | None = None, drawn: Sequence[str] = ()) -> Path:
    """Write ``report.html`` and its figures for the model in ``model_dir``; return the page.
    ``name``: the model's name on the page (default: the directory's; a run writes the report
    in its staging directory, so it passes the output's); ``emb``: the model, when the caller
    has it loaded already (else it is read from ``model_dir``); ``drawn``: the figures already
    in place for this model (:meth:`EarlyFigures.drawn`)."""
    import matplotlib

    matplotlib.use("Agg")
    model_dir = Path(model_dir)
    name = html.escape(name or model_dir.name)
    emb = emb if emb is not None else load_embeddings(model_dir)
    meta = emb.meta
    rounds = meta.get("rounds", [])
    figures = model_dir / FIGURES
    figures.mkdir(exist_ok=True)
    run_figures = []  # the rounds' figures, before the workers' table; the vocabulary's after
    if rounds:
        _rounds_figure(rounds, figures / "rounds.png")
        _workers_figure(rounds, figures / "workers.png")
        run_figures += [_figure("rounds.png", "Loss, throughput, time outside training and "
                                              "learning rate per round"),
                        _figure("workers.png", "Throughput of each worker per round")]
        if len(rounds[0].get("workers", [])) > 1:
            _exchange_figure(rounds, figures / "exchange.png")
            run_figures.append(_figure("exchange.png", "Training and exchange time, bytes "
                                                       "sent, per round"))
    if RANK_FREQUENCY not in drawn:
        _rank_frequency_figure(emb.counts, figures / RANK_FREQUENCY)
    _map_figure(emb, figures / "map.png")
    vocabulary_figures = [_figure(RANK_FREQUENCY, "The vocabulary's rank-frequency curve"),
                          _figure("map.png", "A 2-D PCA map of frequent words")]
    words = sum(r["words"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    exchanged = sum(r.get("seconds_exchange", 0.0) for r in rounds)
    outside = sum(max(r["seconds"] - r["seconds_training"], 0.0) for r in rounds)
    sent = sum(max(r.get("worker_bytes_sent") or [0]) for r in rounds)
    checkpoints = meta.get("checkpoints", [])
    restarts = meta.get("restarts", [])
    command = meta.get("command")
    facts = [("command", shlex.join(command) if command else "(dw2v.train from Python)"),
             ("vocabulary", f"{len(emb):,} words x {emb.vectors.shape[1]} dimensions"),
             ("rounds", f"{len(rounds)}" + (f" of {meta['sync_every']:,} words per worker"
                                            if meta.get("sync_every") else "")),
             ("words trained", f"{words:,} in {seconds:,.1f} s ({_rate(words, seconds)})"),
             ("outside training", f"{outside / max(seconds, 1e-9):.1%} of the rounds' time"),
             ("exchange", f"{exchanged / max(seconds, 1e-9):.1%} of the rounds' time, "
                          f"{sent / max(len(rounds), 1) / 1e6:,.1f} MB sent per round by the "
                          "busiest worker"),
             ("checkpoints", f"after rounds {', '.join(map(str, checkpoints[-8:]))}"
                             + (" (the last 8)" if len(checkpoints) > 8 else "")),
             ("restarts", "; ".join(f"after round {r['after_round']}, from round "
                                    f"{r['from_checkpoint']} without "
                                    f"{', '.join(r['lost_workers'])} "
                                    f"({r['words_trained_again']:,} words trained again)"
                                    for r in restarts) or "none"),
             ("final loss", f"{rounds[-1]['loss']:.4f}" if rounds else "-"),
             ("dw2v", str(meta.get("dw2v_version", "")))]
    sections = [_table(facts)]
    vocabulary = _vocabulary_rows(model_dir)
    if vocabulary:
        sections.append(f"<h2>Vocabulary</h2>{_table(vocabulary)}")
    if meta.get("stages"):
        sections.append(f"<h2>Time by stage</h2>"
                        f"{_table(_stage_rows(meta['stages']), ('stage', 'seconds', 'share'))}")
    sections.append(_extras_html(meta.get("extras") or {}))
    sections += run_figures
    devices = meta.get("devices") or {}
    workers = worker_table(rounds)
    if workers:
        rows = [(w["worker"], devices.get(w["worker"], "cpu"), f"{w['rounds']:,}",
                 f"{w['words']:,}", _rate(w["words"], w["seconds"]),
                 f"{w['exchange']:,.1f} s", f"{w['sent'] / 1e6:,.1f} MB") for w in workers]
        head = ("worker", "device", "rounds", "words", "while training", "exchange", "sent")
        sections.append(f"<h2>Workers</h2>{_table(rows, head)}")
    sections += vocabulary_figures
    settings = _settings_rows(meta.get("settings", {}))
    sections.append(f"<h2>Settings</h2>{_table(settings, ('table', 'setting', 'value'))}")
    body = "\n".join(s for s in sections if s)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>dw2v model report: {name}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
th{{text-align:left;padding-right:1em}}td{{padding-right:1em}}img{{max-width:100%}}
figure{{margin:1.5em 0}}table{{border-collapse:collapse;margin:0.5em 0}}
tr:nth-child(even){{background:#f6f6f6}}</style></head>
<body><h1>dw2v model: {name}</h1>
{body}
</body></html>
"""
    target = model_dir / REPORT
    with replaced(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    logger.info("report written to %s", target)
    return target
