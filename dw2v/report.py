"""``report.html``: a static page about one trained model, with PNG figures beside it.

Figures (matplotlib, the Agg backend, so no display is needed): loss and words/s per round,
each worker's training throughput, the vocabulary's rank-frequency curve, and a labelled 2-D
PCA projection of the most frequent words. The page and its figures go to ``MODEL_DIR`` and
``MODEL_DIR/report/``, written to temporary names and renamed; the page opens from disk.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dw2v.atomic import replaced
from dw2v.embeddings import Embeddings
from dw2v.embeddings import load as load_embeddings

logger = logging.getLogger(__name__)

REPORT = "report.html"
FIGURES = "report"
#: Words shown in the PCA map (after skipping the most frequent ones, mostly function words).
MAP_WORDS, MAP_SKIP = 80, 20


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with replaced(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _rounds_figure(rounds: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    x = [r["round"] + 1 for r in rounds]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    a.plot(x, [r["loss"] for r in rounds], marker=".")
    a.set(xlabel="round", ylabel="mean loss per term", title="Loss")
    b.plot(x, [r["words"] / max(r["seconds"], 1e-9) for r in rounds], marker=".")
    b.set(xlabel="round", ylabel="words/s", title="Throughput (all workers)")
    for axis in (a, b):
        axis.grid(alpha=0.3)
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
    b.plot(x, [max(r.get("worker_bytes_sent") or [0]) / 1e6 for r in rounds], marker=".")
    b.set(xlabel="round", ylabel="MB", title="Bytes a worker sent per round (most)")
    for axis in (a, b):
        axis.grid(alpha=0.3)
    _save(fig, path)


def _workers_figure(rounds: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    for r in rounds:
        for worker, words, seconds in zip(r.get("workers", []), r.get("worker_words", []),
                                          r.get("worker_seconds", [])):
            series.setdefault(worker or "(local)", []).append(
                (r["round"] + 1, words / max(seconds, 1e-9)))
    fig, axis = plt.subplots(figsize=(10, 3.4))
    for worker, points in sorted(series.items()):
        axis.plot(*zip(*points), marker=".", label=worker)
    axis.set(xlabel="round", ylabel="words/s while training", title="Per-worker throughput")
    axis.grid(alpha=0.3)
    if series:
        axis.legend(fontsize=7, loc="best")
    _save(fig, path)


def _rank_frequency_figure(emb: Embeddings, path: Path) -> None:
    import matplotlib.pyplot as plt

    counts = np.sort(np.asarray(emb.counts, np.float64))[::-1]
    fig, axis = plt.subplots(figsize=(5, 3.6))
    axis.loglog(np.arange(1, len(counts) + 1), np.maximum(counts, 1))
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
    _save(fig, path)
    return words


def write_report(model_dir: str | Path) -> Path:
    """Write ``report.html`` and its figures for the model in ``model_dir``; return the page."""
    import matplotlib

    matplotlib.use("Agg")
    model_dir = Path(model_dir)
    emb = load_embeddings(model_dir)
    rounds = emb.meta.get("rounds", [])
    figures = model_dir / FIGURES
    figures.mkdir(exist_ok=True)
    images = []
    if rounds:
        _rounds_figure(rounds, figures / "rounds.png")
        _workers_figure(rounds, figures / "workers.png")
        images += [("rounds.png", "Loss and throughput per round"),
                   ("workers.png", "Throughput of each worker per round")]
        if len(rounds[0].get("workers", [])) > 1:
            _exchange_figure(rounds, figures / "exchange.png")
            images.append(("exchange.png", "Training and exchange time, bytes sent, per round"))
    _rank_frequency_figure(emb, figures / "rank_frequency.png")
    _map_figure(emb, figures / "map.png")
    images += [("rank_frequency.png", "The vocabulary's rank-frequency curve"),
               ("map.png", "A 2-D PCA map of frequent words")]
    words = sum(r["words"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    settings = emb.meta.get("settings", {})
    exchanged = sum(r.get("seconds_exchange", 0.0) for r in rounds)
    sent = sum(max(r.get("worker_bytes_sent") or [0]) for r in rounds)
    checkpoints = emb.meta.get("checkpoints", [])
    restarts = emb.meta.get("restarts", [])
    facts = [("vocabulary", f"{len(emb):,} words x {emb.vectors.shape[1]} dimensions"),
             ("rounds", f"{len(rounds)}" + (f" of {emb.meta['sync_every']:,} words per worker"
                                            if emb.meta.get("sync_every") else "")),
             ("words trained", f"{words:,} in {seconds:,.1f} s "
                               f"({words / max(seconds, 1e-9):,.0f} words/s)"),
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
             ("dw2v", str(emb.meta.get("dw2v_version", "")))]
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                     for k, v in facts)
    figs = "\n".join(f'<figure><img src="{FIGURES}/{name}" alt="{html.escape(caption)}">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                     for name, caption in images)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>dw2v model report: {html.escape(model_dir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
th{{text-align:left;padding-right:1em}}img{{max-width:100%}}figure{{margin:1.5em 0}}
pre{{background:#f4f4f4;padding:1em;overflow:auto;font-size:12px}}</style></head>
<body><h1>dw2v model: {html.escape(model_dir.name)}</h1>
<table>{rows}</table>
{figs}
<h2>Settings</h2><pre>{html.escape(json.dumps(settings, indent=1))}</pre>
</body></html>
"""
    target = model_dir / REPORT
    with replaced(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    logger.info("report written to %s", target)
    return target
