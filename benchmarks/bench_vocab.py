"""Benchmark: building the vocabulary with dw2v (Dask, 1 and 2 workers) against gensim.

For each corpus (a directory of Parquet files with a ``text`` column) this runs, in order:

* gensim, in a subprocess of its own so that its peak RSS is its own: the ``text`` column read
  in record batches, ``gensim.utils.simple_preprocess`` per document (nulls skipped), and
  ``Word2Vec(min_count=5).build_vocab(corpus)`` on a re-iterable that streams the Parquet files.
  Timed: preprocessing + ``build_vocab`` (which includes gensim's weight initialisation; the time
  without it is reported too).
* dw2v through its Python API, ``dw2v.prepare.build_vocab``, on a ``LocalCluster`` of 1 and then
  2 single-threaded worker processes, started and warmed before timing. Timed:
  ``VocabReport.seconds_vocab`` (reading, tokenizing, counting, tree merge, finalize; encoding
  to token ids is excluded and shown separately). Peak RSS is the peak of the summed RSS of this
  process (client and scheduler) and its children (the workers), sampled every 0.1 s.
* the ``dw2v vocab`` command, cold, with ``--workers 1`` and ``2``: wall time of the whole
  process, cluster start-up and encoding included. Its wall time with one worker against the
  gensim process's whole wall time is the ratio issue 20 sets a target for (5x).

tokens/s uses each tool's own token count: the tokenizers differ (gensim drops one-letter and
over-15-letter tokens and digits; dw2v keeps them), so the counts differ a little on real text
and agree on the synthetic corpus of ``make_corpus.py``.

Timings are only as good as the machine is quiet: before each run the script waits (up to
``--idle-wait`` seconds) for other processes to go idle, and every row shows ``other load``, the
CPU cores other processes used during the run.

    python benchmarks/bench_vocab.py [--corpus DIR ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import psutil
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "devcorpus"
MIN_COUNT = 5
TARGET_VS_GENSIM = 5.0
TARGET_SCALING = 1.8
MIB = 2 ** 20


# --------------------------------------------------------------------------- measurements


@dataclass
class Run:
    """One measured run. ``seconds`` is the figure tokens/s is computed from."""

    name: str
    workers: int
    tokens: int
    seconds: float
    wall_seconds: float
    peak_rss: int
    idle_rss: int
    #: CPU other processes used during the run, in cores (noise; 0 on an idle machine)
    other_cores: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class RssSampler:
    """Samples the RSS and CPU time of a process and all its descendants in a background thread.

    ``peak_total`` is the peak of the summed RSS (shared pages count once per process);
    ``peak_by_pid`` the peak of each process. Short spikes between samples can be missed.
    ``other_cores`` is the CPU that processes outside the tree used meanwhile, in cores
    (system busy time minus the tree's CPU time, over the wall time): other load on the
    machine, which makes the timings noisy.
    """

    def __init__(self, root_pid: int, interval: float = 0.1) -> None:
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.peak_total = 0
        self.peak_by_pid: dict[int, int] = {}
        self.other_cores = 0.0
        self._cpu_by_pid: dict[int, float] = {}
        self._cpu_start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def sample(self) -> int:
        """Take one sample now; return the summed RSS."""
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for proc in procs:
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    cpu = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            self.peak_by_pid[proc.pid] = max(self.peak_by_pid.get(proc.pid, 0), rss)
            self._cpu_by_pid[proc.pid] = cpu.user + cpu.system
        self.peak_total = max(self.peak_total, total)
        return total

    def _tree_cpu(self) -> float:
        return sum(v - self._cpu_start.get(pid, 0.0) for pid, v in self._cpu_by_pid.items())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "RssSampler":
        self.sample()
        self._cpu_start = dict(self._cpu_by_pid)
        self._system_start = _busy_cpu_seconds()
        self._wall_start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        wall = time.perf_counter() - self._wall_start
        other = _busy_cpu_seconds() - self._system_start - self._tree_cpu()
        self.other_cores = max(other, 0.0) / wall if wall > 0 else 0.0


def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def wait_for_idle(limit: float, threshold: float = 0.3) -> float:
    """Wait up to ``limit`` seconds for the machine to use under ``threshold`` cores over 2 s
    (our idle cluster included); return the load seen last, in cores."""
    if limit <= 0:
        return 0.0
    deadline = time.perf_counter() + limit
    while True:
        start, t0 = _busy_cpu_seconds(), time.perf_counter()
        time.sleep(2.0)
        load = (_busy_cpu_seconds() - start) / (time.perf_counter() - t0)
        if load < threshold or time.perf_counter() >= deadline:
            return load


def tree_rss(pid: int) -> int:
    """Summed RSS of a process and its descendants, now."""
    return RssSampler(pid).sample()


# --------------------------------------------------------------------------- corpus


def parquet_files(corpus: Path) -> list[Path]:
    """The Parquet files of a corpus directory, sorted (what dw2v's directory input finds)."""
    files = sorted(corpus.rglob("*.parquet"))
    if not files:
        raise SystemExit(f"bench_vocab: {corpus}: no Parquet files")
    return files


def describe_corpus(corpus: Path) -> dict[str, Any]:
    """Files, rows and bytes on disk, from the Parquet footers; reads every file once so that
    all runs find it in the page cache."""
    files = parquet_files(corpus)
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass
    return {
        "path": str(corpus),
        "files": len(files),
        "rows": sum(pq.ParquetFile(p).metadata.num_rows for p in files),
        "disk_bytes": sum(p.stat().st_size for p in files),
    }


class ParquetSentences:
    """Re-iterable corpus for gensim: ``simple_preprocess`` of every non-null ``text`` row."""

    def __init__(self, files: Sequence[Path], column: str = "text",
                 batch_size: int = 65_536) -> None:
        self.files = list(files)
        self.column = column
        self.batch_size = batch_size
        self.tokens = 0
        self.documents = 0

    def __iter__(self) -> Iterator[list[str]]:
        from gensim.utils import simple_preprocess

        self.tokens = self.documents = 0
        for path in self.files:
            batches = pq.ParquetFile(path).iter_batches(batch_size=self.batch_size,
                                                        columns=[self.column])
            for batch in batches:
                for doc in batch.column(0).to_pylist():
                    if doc is None:
                        continue
                    words = simple_preprocess(doc)
                    self.tokens += len(words)
                    self.documents += 1
                    yield words


# --------------------------------------------------------------------------- gensim


def _timed_method(obj: Any, name: str, timings: dict[str, float],
                  before: Any = None) -> None:
    """Wrap ``obj.name`` so that its run time lands in ``timings[name]``."""
    method = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before()
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            timings[name] = time.perf_counter() - start

    setattr(obj, name, wrapper)


def gensim_vocab(corpus: Path) -> dict[str, Any]:
    """Run gensim's vocabulary step here and return its figures (run in a subprocess)."""
    import logging

    from gensim.models import Word2Vec

    logging.getLogger("gensim").setLevel(logging.WARNING)
    sentences = ParquetSentences(parquet_files(corpus))
    model = Word2Vec(min_count=MIN_COUNT)
    timings: dict[str, float] = {}
    seen: dict[str, int] = {}
    for name in ("scan_vocab", "prepare_weights"):
        _timed_method(model, name, timings)
    _timed_method(model, "prepare_vocab", timings,
                  before=lambda: seen.setdefault("distinct", len(model.raw_vocab)))
    idle_rss = psutil.Process().memory_info().rss
    start = time.perf_counter()
    model.build_vocab(sentences)
    seconds = time.perf_counter() - start
    return {
        "tokens": sentences.tokens, "documents": sentences.documents,
        "distinct": seen.get("distinct", 0), "kept": len(model.wv),
        "seconds": seconds, "phases": timings,
        "seconds_without_weights": seconds - timings.get("prepare_weights", 0.0),
        "idle_rss": idle_rss,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
    }


def run_process(command: Sequence[str]) -> tuple[subprocess.CompletedProcess[str], float,
                                                 RssSampler]:
    """Run a command, sampling its process tree; return the result, wall seconds, sampler."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with RssSampler(proc.pid) as rss:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr), wall, rss


def run_gensim(corpus: Path) -> Run:
    """Run :func:`gensim_vocab` in a fresh interpreter so that its memory is measured alone."""
    command = [sys.executable, str(Path(__file__).resolve()), "--_gensim", str(corpus)]
    done, wall, rss = run_process(command)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(name="gensim", workers=1, tokens=figures["tokens"], seconds=figures["seconds"],
               wall_seconds=wall, peak_rss=figures["peak_rss"], idle_rss=figures["idle_rss"],
               other_cores=rss.other_cores,
               extra={k: v for k, v in figures.items()
                      if k not in ("tokens", "seconds", "peak_rss", "idle_rss")})


# --------------------------------------------------------------------------- dw2v


def _warm(client: Any) -> dict[str, int]:
    """Import dw2v on every worker; return worker address -> pid."""
    client.run(lambda: __import__("dw2v.vocab"))
    client.run(lambda: __import__("dw2v.prepare"))
    return client.run(os.getpid)


def run_dw2v_api(corpus: Path, workers: int, repeats: int, tmp_root: Path,
                 idle_wait: float) -> list[Run]:
    """``build_vocab`` on a warmed LocalCluster of ``workers`` processes, ``repeats`` times."""
    from distributed import Client, LocalCluster

    from dw2v.prepare import build_vocab

    runs: list[Run] = []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = _warm(client)
        for _ in range(repeats):
            scratch = Path(tempfile.mkdtemp(prefix="bench-vocab-", dir=tmp_root))
            try:
                wait_for_idle(idle_wait)
                idle = tree_rss(os.getpid())
                with RssSampler(os.getpid()) as rss:
                    start = time.perf_counter()
                    report = build_vocab([str(corpus)], scratch / "out", client=client,
                                         overwrite=True, progress=False)
                    wall = time.perf_counter() - start
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            per_worker = {addr: rss.peak_by_pid.get(pid, 0) for addr, pid in pids.items()}
            runs.append(Run(
                name="dw2v", workers=workers, tokens=report.tokens,
                seconds=report.seconds_vocab, wall_seconds=wall, peak_rss=rss.peak_total,
                idle_rss=idle, other_cores=rss.other_cores,
                extra={"documents": report.documents, "distinct": report.distinct,
                       "kept": report.kept, "seconds_encode": report.seconds_encode,
                       "seconds_total": report.seconds_total,
                       "peak_rss_client": rss.peak_by_pid.get(os.getpid(), 0),
                       "peak_rss_workers": per_worker}))
    return runs


def dw2v_command() -> list[str]:
    """The ``dw2v`` executable of this interpreter's environment (or ``python -m dw2v.cli``)."""
    script = Path(sys.executable).parent / "dw2v"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dw2v.cli"]


def run_dw2v_cli(corpus: Path, workers: int, tmp_root: Path) -> Run:
    """``dw2v vocab`` as a fresh process: cold start, cluster start-up and encoding included."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-vocab-cli-", dir=tmp_root))
    out = scratch / "out"
    command = [*dw2v_command(), "vocab", str(corpus), "-o", str(out), "--overwrite",
               "--workers", str(workers)]
    try:
        done, wall, rss = run_process(command)
        report = json.loads((out / "vocab_report.json").read_text())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Run(name="dw2v CLI (cold)", workers=workers, tokens=report["tokens"],
               seconds=report["seconds_vocab"], wall_seconds=wall, peak_rss=rss.peak_total,
               idle_rss=0, other_cores=rss.other_cores,
               extra={"command": " ".join(command), "seconds_encode": report["seconds_encode"],
                      "seconds_total": report["seconds_total"],
                      "stderr": done.stderr.strip()[-2000:]})


# --------------------------------------------------------------------------- reporting


def best(runs: Sequence[Run]) -> Run:
    """The fastest of repeated runs (least disturbed by other load)."""
    return max(runs, key=lambda r: r.tokens_per_second)


def ratios(chosen: dict[str, Run]) -> dict[str, float]:
    """dw2v(1 worker) / gensim and dw2v(2) / dw2v(1), in tokens/s."""
    gensim, one, two = chosen["gensim"], chosen["dw2v-1"], chosen["dw2v-2"]
    return {
        # the whole processes: `dw2v vocab --workers 1` (cluster start, counting, encoding)
        # against gensim's (imports, reading, simple_preprocess, build_vocab)
        "cli1_whole_vs_gensim_whole": gensim.wall_seconds / chosen["cli-1"].wall_seconds,
        "dw2v1_vs_gensim": one.tokens_per_second / gensim.tokens_per_second,
        "dw2v1_vs_gensim_without_weights": one.tokens_per_second * gensim.extra[
            "seconds_without_weights"] / gensim.tokens,
        "dw2v2_vs_dw2v1": two.tokens_per_second / one.tokens_per_second,
    }


ROW_HEAD = ("run", "workers", "tokens", "vocab s", "tokens/s", "end-to-end s",
            "peak RSS MiB", "idle RSS MiB", "other load")


def table_rows(chosen: dict[str, Run]) -> list[tuple[str, ...]]:
    """One row per run, as strings, in ROW_HEAD order."""
    rows = []
    for run in chosen.values():
        rows.append((run.name, str(run.workers), f"{run.tokens:,}", f"{run.seconds:.2f}",
                     f"{run.tokens_per_second:,.0f}", f"{run.wall_seconds:.2f}",
                     f"{run.peak_rss / MIB:,.0f}",
                     f"{run.idle_rss / MIB:,.0f}" if run.idle_rss else "-",
                     f"{run.other_cores:.2f}"))
    return rows


def _verdict(value: float, target: float) -> str:
    return f"{value:.2f}x (target >= {target}x: {'PASS' if value >= target else 'MISS'})"


def print_corpus(info: dict[str, Any], chosen: dict[str, Run], ratio: dict[str, float]) -> None:
    """A plain-text table for one corpus, with the ratios against the targets."""
    print(f"\n== {info['path']}: {info['files']} files, {info['rows']:,} rows, "
          f"{info['disk_bytes'] / MIB:,.1f} MiB on disk")
    rows = [ROW_HEAD, *table_rows(chosen)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(ROW_HEAD))]
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    gensim = chosen["gensim"]
    print(f"gensim without weight initialisation (scan + prepare_vocab): "
          f"{gensim.extra['seconds_without_weights']:.2f} s; phases "
          + ", ".join(f"{k} {v:.2f} s" for k, v in gensim.extra["phases"].items()))
    for key in ("dw2v-1", "dw2v-2"):
        run = chosen[key]
        workers = ", ".join(f"{v / MIB:,.0f}" for v in run.extra["peak_rss_workers"].values())
        print(f"{run.name} {run.workers} worker(s): encoding {run.extra['seconds_encode']:.2f} s "
              f"(not in vocab s); peak RSS client {run.extra['peak_rss_client'] / MIB:,.0f} "
              f"MiB, workers {workers} MiB; distinct {run.extra['distinct']:,}, "
              f"kept {run.extra['kept']:,} (gensim: {gensim.extra['distinct']:,}, "
              f"{gensim.extra['kept']:,})")
    vs_gensim = _verdict(ratio["dw2v1_vs_gensim"], TARGET_VS_GENSIM)
    scaling = _verdict(ratio["dw2v2_vs_dw2v1"], TARGET_SCALING)
    print(f"dw2v 1 worker / gensim, tokens/s:   {vs_gensim}; against gensim without weight "
          f"init {ratio['dw2v1_vs_gensim_without_weights']:.2f}x")
    print(f"dw2v 2 workers / dw2v 1 worker:     {scaling}")
    whole = _verdict(ratio["cli1_whole_vs_gensim_whole"], TARGET_VS_GENSIM)
    print(f"whole `dw2v vocab --workers 1` / whole gensim process, wall time: {whole}")
    print("(tokens/s uses each tool's own token count; the tokenizers differ slightly. "
          "other load: CPU cores used by other processes during the run; above ~0.2 the "
          "timings are disturbed)")


def markdown(results: list[dict[str, Any]]) -> str:
    """All corpora as one markdown table, for benchmarks/RESULTS.md."""
    head = ("corpus", *ROW_HEAD)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        name = Path(result["corpus"]["path"]).name
        chosen = {k: Run(**v) for k, v in result["best"].items()}
        for row in table_rows(chosen):
            lines.append("| " + " | ".join((name, *row)) + " |")
    lines.append("")
    for result in results:
        r = result["ratios"]
        lines.append(f"- {Path(result['corpus']['path']).name}: dw2v 1 worker / gensim "
                     f"**{r['dw2v1_vs_gensim']:.2f}x** (target {TARGET_VS_GENSIM}x), "
                     f"dw2v 2 / 1 workers **{r['dw2v2_vs_dw2v1']:.2f}x** "
                     f"(target {TARGET_SCALING}x), the whole `dw2v vocab --workers 1` "
                     f"against the whole gensim process "
                     f"**{r['cli1_whole_vs_gensim_whole']:.2f}x** (target {TARGET_VS_GENSIM}x)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver


def bench_corpus(corpus: Path, repeats: int, tmp_root: Path, idle_wait: float
                 ) -> dict[str, Any]:
    """Every run on one corpus; returns all figures (JSON-ready)."""
    info = describe_corpus(corpus)
    log = lambda what: print(f"[{time.strftime('%H:%M:%S')}] {corpus.name}: {what}",  # noqa: E731
                             file=sys.stderr, flush=True)
    all_runs: dict[str, list[Run]] = {}
    log("gensim")
    wait_for_idle(idle_wait)
    all_runs["gensim"] = [run_gensim(corpus)]
    for workers in (1, 2):
        log(f"dw2v API, {workers} worker(s), {repeats} run(s)")
        all_runs[f"dw2v-{workers}"] = run_dw2v_api(corpus, workers, repeats, tmp_root,
                                                   idle_wait)
    for workers in (1, 2):
        log(f"dw2v CLI, {workers} worker(s)")
        wait_for_idle(idle_wait)
        all_runs[f"cli-{workers}"] = [run_dw2v_cli(corpus, workers, tmp_root)]
    chosen = {key: best(runs) for key, runs in all_runs.items()}
    ratio = ratios(chosen)
    print_corpus(info, chosen, ratio)
    return {"corpus": info, "ratios": ratio,
            "best": {k: asdict(v) for k, v in chosen.items()},
            "runs": {k: [dict(asdict(r), tokens_per_second=r.tokens_per_second) for r in v]
                     for k, v in all_runs.items()}}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import dask
    import gensim
    import pyarrow

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "memory_bytes": psutil.virtual_memory().total, "load_avg_start": os.getloadavg(),
            "versions": {"pyarrow": pyarrow.__version__, "dask": dask.__version__,
                         "gensim": gensim.__version__}}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, action="append", default=[],
                        help="another corpus directory (repeatable), run after the devcorpus")
    parser.add_argument("--no-devcorpus", action="store_true",
                        help=f"skip the default corpus {DEFAULT_CORPUS}")
    parser.add_argument("--repeats", type=int, default=None,
                        help="dw2v API runs per cluster, the fastest kept (default: 3 for "
                             "corpora under 100 MiB on disk, else 1)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--tmp-dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where dw2v's scratch outputs go (deleted after each run)")
    parser.add_argument("--idle-wait", type=float, default=300.0,
                        help="before each run, wait up to this many seconds for the machine to "
                             "be idle (default 300; 0: don't wait)")
    parser.add_argument("--_gensim", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Benchmark every corpus, print tables and ratios, optionally write JSON."""
    args = parse_args(argv)
    if args._gensim is not None:  # the isolated gensim subprocess
        print(json.dumps(gensim_vocab(args._gensim)))
        return 0
    corpora = ([] if args.no_devcorpus else [DEFAULT_CORPUS]) + args.corpus
    info = machine()
    print(f"machine: {info['cpus']} CPUs, {info['memory_bytes'] / 2 ** 30:.0f} GiB, load "
          f"{info['load_avg_start'][0]:.2f}; pyarrow {info['versions']['pyarrow']}, dask "
          f"{info['versions']['dask']}, gensim {info['versions']['gensim']}")
    results = []
    for corpus in corpora:
        disk = sum(p.stat().st_size for p in parquet_files(corpus))
        repeats = args.repeats or (3 if disk < 100 * MIB else 1)
        results.append(bench_corpus(corpus.resolve(), repeats, args.tmp_dir, args.idle_wait))
    print("\n" + markdown(results))
    if args.json:
        info["load_avg_end"] = os.getloadavg()
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
