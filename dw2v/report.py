"""``report.html``: a static page about one trained model, with SVG figures beside it.

Sections: the run in figures (words, rounds, exchange, the command line), the vocabulary (from
``vocab_report.json``), the time of each stage, per round the loss, throughput, time outside
training and learning rate, each worker (lines up to 8 workers; beyond, the slowest, median
and fastest of each round; and a table), the neighbours of chosen words and benchmark scores
when the run was given them, the vocabulary's rank-frequency curve and a 2-D PCA map, and the
settings as a table. Figures are SVG files drawn by pygal without JavaScript (the page is
static and works offline; the browser draws their text); the page and its figures go to
``MODEL_DIR`` and ``MODEL_DIR/report/``, written to temporary names and renamed.
"""

from __future__ import annotations

import html
import json
import logging
import shlex
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
RANK_FREQUENCY, WORKERS, MAP = "rank_frequency.svg", "workers.svg", "map.svg"
#: Words shown in the PCA map (after skipping the most frequent ones, mostly function words).
MAP_WORDS, MAP_SKIP = 80, 20
#: Ranks drawn on the rank-frequency curve (log-spaced; every rank of a small vocabulary).
RANK_POINTS = 2000
#: Up to this many workers the per-worker figure draws a line each; beyond, three lines
#: (the slowest, the median and the fastest worker of each round).
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


def _style() -> Any:
    """The figures' look: white, a light grid, matplotlib's first colours, a sans-serif font
    (the SVG names it; the browser draws the text)."""
    from pygal.style import Style

    return Style(background="white", plot_background="white", foreground="#333",
                 foreground_strong="#222", foreground_subtle="#999",
                 font_family="DejaVu Sans, Helvetica, Arial, sans-serif",
                 colors=("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                         "#e377c2", "#7f7f7f"),
                 guide_stroke_color="#ddd", major_guide_stroke_color="#ddd",
                 guide_stroke_dasharray="2,2", major_guide_stroke_dasharray="2,2",
                 title_font_size=14, label_font_size=10, major_label_font_size=10,
                 legend_font_size=10, stroke_width=1.5)


def _engineering(value: float, unit: str = "") -> str:
    """A tick's value in k, M and G (500k words/s, not 500000)."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"


def _short(value: float) -> str:
    """A tick's value to 3 significant digits."""
    return f"{value:.3g}"


def _whole(value: float) -> str:
    """A tick's value as a whole number with thousands separators."""
    return f"{value:,.0f}"


def _xy(title: str, x_title: str, y_title: str, *, width: int = 480, height: int = 300,
        legend: bool = False, **config: Any) -> Any:
    """An empty pygal XY chart of the report's style: a fixed size, no JavaScript (the page
    stays static and offline), whole rounds on the x axis by default."""
    import pygal

    config.setdefault("x_value_formatter", lambda v: f"{v:g}")
    return pygal.XY(title=title, x_title=x_title, y_title=y_title, width=width, height=height,
                    explicit_size=True, js=[], style=_style(), show_legend=legend,
                    legend_at_bottom=True, dots_size=2, max_scale=8, **config)


def _save(chart: Any, path: Path) -> None:
    """Write ``chart`` as an SVG file, under a temporary name, then renamed."""
    with replaced(path) as tmp:
        tmp.write_bytes(chart.render())


def _by_round(rounds: list[dict[str, Any]], values: Sequence[float]) -> list[tuple[int, float]]:
    return [(r["round"] + 1, float(v)) for r, v in zip(rounds, values)]


def _rounds_figures(rounds: list[dict[str, Any]], figures: Path) -> list[str]:
    """Per round: the loss, the throughput of all workers, the time outside training and the
    learning rate, a small chart each; returns their file names."""
    charts = {
        "loss.svg": (_xy("Loss", "round", "mean loss per term",
                         value_formatter=_short),
                     [r["loss"] for r in rounds]),
        "throughput.svg": (_xy("Throughput (all workers)", "round", "words/s",
                               value_formatter=_engineering, include_x_axis=False),
                           [r["words"] / max(r["seconds"], 1e-9) for r in rounds]),
        "outside.svg": (_xy("Time outside training per round", "round", "ms",
                            value_formatter=_short, include_x_axis=True),
                        [1e3 * max(r["seconds"] - r["seconds_training"], 0.0) for r in rounds]),
        "learning_rate.svg": (_xy("Learning rate (each worker's)", "round",
                                  "at the round's start", value_formatter=_short,
                                  include_x_axis=True),
                              [r["lr_start"] * r.get("lr_scale", 1) for r in rounds]),
    }
    for name, (chart, values) in charts.items():
        chart.add(name[:-4], _by_round(rounds, values))
        _save(chart, figures / name)
    return list(charts)


def _exchange_figures(rounds: list[dict[str, Any]], figures: Path) -> list[str]:
    """Per round: the slowest worker's training and exchange milliseconds, and the most bytes
    a worker sent."""
    times = _xy("Time per round (slowest worker)", "round", "ms", legend=True,
                value_formatter=_short, include_x_axis=True)
    times.add("training", _by_round(rounds, [1e3 * r["seconds_training"] for r in rounds]))
    times.add("exchange", _by_round(rounds, [1e3 * r.get("seconds_exchange", 0.0)
                                             for r in rounds]))
    _save(times, figures / "exchange_time.svg")
    sent = _xy("Bytes a worker sent per round (most)", "round", "bytes",
               value_formatter=lambda v: _engineering(v, "B"), include_x_axis=True)
    sent.add("sent", _by_round(rounds, [max(r.get("worker_bytes_sent") or [0])
                                        for r in rounds]))
    _save(sent, figures / "exchange_bytes.svg")
    return ["exchange_time.svg", "exchange_bytes.svg"]


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
    """Words/s of each worker per round: a line each for a few workers; for many, the
    slowest, the median and the fastest worker of each round (the table names them all), so
    that 64 workers still read."""
    names = [row["worker"] for row in worker_table(rounds)]
    rate = np.full((len(names), len(rounds)), np.nan)
    for j, r in enumerate(rounds):
        for worker, words, seconds in zip(r.get("workers", []), r.get("worker_words", []),
                                          r.get("worker_seconds", [])):
            rate[names.index(worker or "(local)"), j] = words / max(seconds, 1e-9)
    many = len(names) > WORKER_LINES
    title = ("Per-worker throughput" if not many
             else f"Per-worker throughput: slowest, median, fastest of {len(names)} workers")
    chart = _xy(title, "round", "words/s while training", width=960, height=340,
                legend=bool(names), value_formatter=_engineering, include_x_axis=False)
    if many:
        known = ~np.isnan(rate).all(axis=0)  # a round no worker reported has no point
        rows = {"slowest": np.nanmin, "median": np.nanmedian, "fastest": np.nanmax}
        series = {label: np.full(len(rounds), np.nan) for label in rows}
        for label, reduce in rows.items():
            series[label][known] = reduce(rate[:, known], axis=0)
        lines = list(series.items())
    else:
        lines = list(zip(names, rate))
    for name, row in lines:
        chart.add(name, [(r["round"] + 1, float(v)) for r, v in zip(rounds, row)
                         if not np.isnan(v)])
    _save(chart, path)


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
    """Count against rank on log axes, ticks at the powers of ten."""
    ranks, at_ranks = rank_frequency_points(counts)
    at_ranks = np.maximum(at_ranks, 1)
    top = int(np.ceil(np.log10(max(float(at_ranks.max(initial=1)), 10))))
    right = int(np.ceil(np.log10(max(float(ranks[-1]) if len(ranks) else 1.0, 10))))
    x_ticks = [10 ** k for k in range(right + 1)]
    y_ticks = [10 ** k for k in range(top + 1)]
    chart = _xy(f"Rank-frequency ({len(counts):,} words)", "rank", "count", width=500,
                height=360, logarithmic=True, show_dots=False, x_labels=x_ticks,
                y_labels=y_ticks, x_labels_major=x_ticks, y_labels_major=y_ticks,
                value_formatter=_whole, x_value_formatter=_whole)
    chart.add("count", [(int(r), float(c)) for r, c in zip(ranks, at_ranks)])
    _save(chart, path)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The rows projected on their first two principal components."""
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def _map_figure(emb: Embeddings, path: Path) -> list[str]:
    """The frequent words (after the most frequent, mostly function words) on the first two
    principal components of their unit vectors, each point labelled."""
    skip = MAP_SKIP if len(emb) > MAP_SKIP + MAP_WORDS else 0
    words = emb.words[skip:skip + MAP_WORDS]
    points = pca_2d(emb.unit[skip:skip + len(words)])
    chart = _xy(f"PCA of the unit vectors: words {skip + 1}-{skip + len(words)} by frequency",
                "", "", width=820, height=640, stroke=False, print_labels=True,
                show_x_labels=False, show_y_labels=False, show_x_guides=False,
                show_y_guides=False, include_x_axis=False)
    chart.add("words", [{"value": (float(x), float(y)), "label": word}
                        for word, (x, y) in zip(words, points)])
    _save(chart, path)
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


def _figure(files: Sequence[str], caption: str) -> str:
    """One figure of the page: its charts side by side (wrapping), one caption."""
    images = "".join(f'<img src="{FIGURES}/{file}" alt="{html.escape(caption)}">'
                     for file in files)
    return f"<figure>{images}<figcaption>{html.escape(caption)}</figcaption></figure>"


def write_report(model_dir: str | Path, name: str | None = None,
                 emb: Embeddings | None = None) -> Path:
    """Write ``report.html`` and its figures for the model in ``model_dir``; return the page.
    ``name``: the model's name on the page (default: the directory's; a run writes the report
    in its staging directory, so it passes the output's); ``emb``: the model, when the caller
    has it loaded already (else it is read from ``model_dir``). The figures are SVG files
    drawn with pygal (RESULTS.md §24: a tenth of matplotlib's time, which was most of a
    short run's last second)."""
    model_dir = Path(model_dir)
    name = html.escape(name or model_dir.name)
    emb = emb if emb is not None else load_embeddings(model_dir)
    meta = emb.meta
    rounds = meta.get("rounds", [])
    figures = model_dir / FIGURES
    figures.mkdir(exist_ok=True)
    run_figures = []  # the rounds' figures, before the workers' table; the vocabulary's after
    if rounds:
        run_figures.append(_figure(_rounds_figures(rounds, figures),
                                   "Loss, throughput, time outside training and learning "
                                   "rate per round"))
        _workers_figure(rounds, figures / WORKERS)
        run_figures.append(_figure([WORKERS], "Throughput of each worker per round"))
        if len(rounds[0].get("workers", [])) > 1:
            run_figures.append(_figure(_exchange_figures(rounds, figures),
                                       "Training and exchange time, bytes sent, per round"))
    _rank_frequency_figure(emb.counts, figures / RANK_FREQUENCY)
    _map_figure(emb, figures / MAP)
    vocabulary_figures = [_figure([RANK_FREQUENCY], "The vocabulary's rank-frequency curve"),
                          _figure([MAP], "A 2-D PCA map of frequent words")]
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
figure{{margin:1.5em 0}}figure img{{margin:0 0.5em 0.5em 0}}
table{{border-collapse:collapse;margin:0.5em 0}}
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
