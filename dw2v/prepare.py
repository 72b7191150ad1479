"""The vocabulary stage as one job: find shards, check, count, reduce, finalize, encode, write.

Everything heavy runs as Dask tasks: footers are checked, shards counted and encoded on the
workers (counting keeps each shard's tokens as ids into its own dictionaries, so encoding is a
lookup, not a second tokenization: :mod:`dw2v.local_ids`); counts are merged there (by hash
bucket, each a chain of merges); the client only receives the small final vocabulary, which it
writes. The output directory appears only when every step succeeded.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from dw2v import __version__
from dw2v.atomic import staged_dir
from dw2v.config import ClusterConfig, IngestConfig, VocabConfig, to_dict
from dw2v.errors import NoInputError
from dw2v.ingest import (MemoryCorpus, ShardInfo, as_inputs, check_shard, encode_shard,
                         find_shards, memory_shards, paths_of, split_parquet_shards,
                         split_text_shards)
from dw2v.local_ids import local_path, remove_store
from dw2v.preflight import check_run
from dw2v.vocab import (VOCAB_FILE, Vocabulary, count_shard, extend, finalize, merge_counts, save,
                        split_counts)

if TYPE_CHECKING:  # Dask is imported where it is used: ``import dw2v`` stays light
    from distributed import Client, Future

logger = logging.getLogger(__name__)

WORK_DIR = "work"
MANIFEST = "manifest.json"
REPORT = "vocab_report.json"


@dataclass(frozen=True)
class VocabReport:
    """What the vocabulary job saw, kept and took; written as ``vocab_report.json``."""

    output: str
    files: int
    skipped_files: list[str]
    documents: int
    null_documents: int
    empty_documents: int
    tokens: int
    distinct: int
    budget_pruned_distinct: int
    budget_pruned_tokens: int
    kept: int
    kept_tokens: int
    min_count: int
    sentences: int
    expected_after_subsampling: int
    workers: int
    seconds_vocab: float
    seconds_encode: float
    seconds_total: float
    seconds_cluster_start: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    #: Tokens longer than the tokenizer's ``max_token_bytes``, dropped (not in ``tokens``).
    long_tokens_dropped: int = 0

    @property
    def tokens_per_second(self) -> float:
        """Corpus tokens per second of the vocabulary step (reading, tokenizing, counting)."""
        return self.tokens / self.seconds_vocab if self.seconds_vocab else 0.0

    def to_json(self) -> str:
        return json.dumps(dict(asdict(self), tokens_per_second=self.tokens_per_second), indent=1)

    def summary(self) -> str:
        pruned = (f", {self.budget_pruned_distinct:,} cut by --max-vocab-size "
                  f"({self.budget_pruned_tokens:,} tokens)" if self.budget_pruned_distinct else "")
        skipped = f" ({len(self.skipped_files)} empty, skipped)" if self.skipped_files else ""
        limit = self.settings.get("ingest", {}).get("tokenizer", {}).get("max_token_bytes")
        over = f"longer than {limit:,} bytes" if limit else "over the length limit"
        long = (f" ({self.long_tokens_dropped:,} {over}: dropped)"
                if self.long_tokens_dropped else "")
        return "\n".join([
            f"files       {self.files:,}{skipped}",
            f"documents   {self.documents:,} ({self.null_documents:,} null, "
            f"{self.empty_documents:,} empty: skipped)",
            f"tokens      {self.tokens:,}{long}",
            f"distinct    {self.distinct:,}{pruned}",
            f"kept        {self.kept:,} words with count >= {self.min_count} "
            f"({self.kept_tokens:,} tokens, {self.kept_tokens / max(self.tokens, 1):.1%})",
            f"sentences   {self.sentences:,} encoded in {self.output}/{WORK_DIR}",
            f"time        {self.seconds_total:.1f} s on {self.workers} workers (+ "
            f"{self.seconds_cluster_start:.1f} s to start or reach the cluster); vocabulary "
            f"{self.tokens_per_second:,.0f} tokens/s, encoding {self.seconds_encode:.1f} s",
        ])


def _check_all(client: Client, urls: Sequence[str], ingest: IngestConfig,
               rid: str) -> list[ShardInfo]:
    futures = client.map(check_shard, urls, range(len(urls)), config=ingest,
                         key=[f"dw2v-check-{rid}-{i}" for i in range(len(urls))])
    infos: list[ShardInfo] = client.gather(futures)
    for info in infos:
        if info.empty:
            logger.warning("%s: empty file, skipped", info.url)
    if all(info.empty for info in infos):
        raise NoInputError(f"every input file is empty ({len(infos)} files)")
    workers = len(client.nthreads())
    infos = split_parquet_shards(infos, PIECES_PER_WORKER * workers)
    return split_text_shards(infos, text_block(infos, ingest, workers))


#: Shards per worker that a corpus of few files is cut into at least (Parquet files along
#: their row groups, text files in byte ranges), so that no worker is left idle in training.
PIECES_PER_WORKER = 4


#: The smallest byte range an uncompressed text file is cut into.
MIN_TEXT_BLOCK = 2**20


def text_block(infos: Sequence[ShardInfo], ingest: IngestConfig, workers: int) -> int:
    """Bytes per range of uncompressed text: ``ingest.text_block_bytes``, or less so that the
    text makes at least four ranges per worker (one text file must not leave all but one
    worker idle in training), never under ``MIN_TEXT_BLOCK``."""
    text = sum(i.size_bytes for i in infos if i.kind == "text" and i.codec is None)
    return max(min(ingest.text_block_bytes, -(-text // max(PIECES_PER_WORKER * workers, 1))),
               min(MIN_TEXT_BLOCK, ingest.text_block_bytes))


AUTO_BUCKETS_BYTES = 64 * 2**20
MERGE_PRIORITY = 1  # above the counting tasks' default 0


def _reduce_buckets(client: Client, counts: Sequence[Future], vocab: VocabConfig, rid: str,
                    input_bytes: int) -> list[Future]:
    """Split each shard's counts by token hash and merge every bucket on its own, so the
    merges run in parallel and overlap the counting of later shards (all submitted at once).

    Splits and merges outrank the counting tasks: a worker runs them as soon as their inputs
    exist, before it counts another shard; with the chained merges (:func:`chain_reduce`) the
    count tables waiting in memory stay as few for 1,000 shards as for 10."""
    from dw2v.dask_cluster import chain_reduce

    n = vocab.buckets or (8 if input_bytes >= AUTO_BUCKETS_BYTES else 1)
    if n == 1:
        return [chain_reduce(client, counts, merge_counts, split_every=vocab.split_every,
                             name=f"dw2v-merge-counts-{rid}", priority=MERGE_PRIORITY,
                             budget=vocab.max_vocab_size)]
    budget = -(-vocab.max_vocab_size // n) if vocab.max_vocab_size else None
    splits = [client.submit(split_counts, counts_i, n, key=f"dw2v-split-{rid}-{i}",
                            priority=MERGE_PRIORITY) for i, counts_i in enumerate(counts)]
    totals = []
    for b in range(n):
        parts = [client.submit(operator.itemgetter(b), split, key=f"dw2v-bucket-{rid}-{i}-{b}",
                               priority=MERGE_PRIORITY) for i, split in enumerate(splits)]
        totals.append(chain_reduce(client, parts, merge_counts, split_every=vocab.split_every,
                                   name=f"dw2v-merge-counts-{rid}-b{b}",
                                   priority=MERGE_PRIORITY, budget=budget))
    return totals


def build_vocab(inputs: str | Path | Sequence[str | Path], output: str | Path, *,
                ingest: IngestConfig = IngestConfig(), vocab: VocabConfig = VocabConfig(),
                cluster: ClusterConfig = ClusterConfig(), client: Client | None = None,
                overwrite: bool = False, progress: bool | None = None,
                base: Vocabulary | None = None) -> VocabReport:
    """Build the vocabulary of ``inputs`` and encode them; write everything to ``output``.

    ``output`` gets ``vocab.parquet``, ``vocab_report.json`` and ``work/`` (one token-id
    shard per non-empty input file, plus ``manifest.json``). With ``base`` (a trained model's
    vocabulary, for continued training) the vocabulary is ``base`` extended with the new
    corpus's words (:func:`dw2v.vocab.extend`).
    """
    inputs = as_inputs(inputs)
    out = Path(output).absolute()
    check_run(paths_of(inputs), cluster, client)
    with staged_dir(out, overwrite=overwrite, inputs=paths_of(inputs)) as stage:
        return build_into(stage, inputs, ingest=ingest, vocab=vocab, cluster=cluster,
                          client=client, progress=progress, base=base, output=out)



def build_into(stage: Path, inputs: Sequence[str] | MemoryCorpus, *,
               ingest: IngestConfig = IngestConfig(),
               vocab: VocabConfig = VocabConfig(), cluster: ClusterConfig = ClusterConfig(),
               client: Client | None = None, progress: bool | None = None,
               base: Vocabulary | None = None, output: Path | None = None) -> VocabReport:
    """:func:`build_vocab`'s work, written into the existing directory ``stage`` (the caller
    checks and swaps it into place); ``output`` is the path the report names."""
    from dw2v.dask_cluster import client_for, run_id, show_progress, wait_with_progress

    out = output or stage
    memory = inputs if isinstance(inputs, MemoryCorpus) else None
    urls = [] if memory is not None else find_shards(inputs, ingest)
    bars = show_progress(progress)
    connecting = time.perf_counter()
    with client_for(cluster, client) as c:
        started = time.perf_counter()  # the job's clock starts once the cluster is up
        rid = run_id()
        workers = len(c.nthreads())
        if memory is None:
            infos = _check_all(c, urls, ingest, rid)
            parts: list[Any] = [None] * len(infos)
        else:  # computed (Dask) or sent (Arrow) to the workers, kept there until encoded
            infos = memory_shards(memory)
            parts = (c.compute(list(memory.parts)) if memory.kind == "dask"
                     else c.scatter(list(memory.parts)))
        logger.info("%d shards (%d Parquet rows, %s bytes of text), on %d workers",
                    len(infos), sum(i.rows for i in infos),
                    f"{sum(i.weight for i in infos if i.kind == 'text'):,}", workers)
        work = stage / WORK_DIR
        work.mkdir()
        # each shard's tokens are kept as the counting pass saw them, so encoding is a lookup
        local = {info.index: local_path(work, info.index) for info in infos}
        counts = [c.submit(count_shard, info, ingest, vocab.max_vocab_size, data=part,
                           local=local[info.index], key=f"dw2v-count-{rid}-{info.index}")
                  for info, part in zip(infos, parts)]
        buckets = _reduce_buckets(c, counts, vocab, rid, sum(i.size_bytes for i in infos))
        if base is None:
            final = c.submit(finalize, buckets, vocab, key=f"dw2v-finalize-{rid}")
        else:  # every word of the new corpus, then the base extended with it
            everything = replace(vocab, min_count=1, max_final_vocab=None)
            final = c.submit(extend, base, c.submit(finalize, buckets, everything,
                                                    key=f"dw2v-finalize-{rid}"),
                             vocab, key=f"dw2v-extend-{rid}")
        wait_with_progress(counts, desc="counting", unit="B",
                           weights=[i.weight for i in infos], enabled=bars, release=True)
        words: Vocabulary = final.result()
        vocab_done = time.perf_counter()
        tokens = c.submit(operator.attrgetter("tokens"), final, key=f"dw2v-tokens-{rid}")
        live = [(i, part) for i, part in zip(infos, parts) if not i.empty]
        encoded = [c.submit(encode_shard, info, tokens, str(work), ingest, data=part,
                            local=local[info.index], key=f"dw2v-encode-{rid}-{info.index}")
                   for info, part in live]
        wait_with_progress(encoded, desc="encoding", unit="B",
                           weights=[i.weight for i, _ in live], enabled=bars)
        del parts, live  # an in-memory corpus's partitions are released here
        shards = c.gather(encoded)
        remove_store(work)
        encode_done = time.perf_counter()
        settings = {"ingest": to_dict(ingest), "vocab": to_dict(vocab)}
        words = replace(words, extra={"ingest": settings["ingest"], "dw2v_version": __version__})
        save(words, stage / VOCAB_FILE)
        (work / MANIFEST).write_text(json.dumps({
            "vocab_size": len(words),
            "tokens": sum(s.tokens for s in shards),
            "sentences": sum(s.sentences for s in shards),
            "shards": [asdict(s) for s in shards],
        }, indent=1))
        stats = words.stats
        report = VocabReport(
            output=str(out), files=stats.files + len(stats.skipped_files),
            skipped_files=list(stats.skipped_files), documents=stats.documents,
            null_documents=stats.null_rows, empty_documents=stats.empty_rows,
            tokens=stats.tokens, distinct=words.distinct_seen,
            budget_pruned_distinct=stats.budget_pruned_distinct,
            budget_pruned_tokens=stats.budget_pruned_tokens,
            long_tokens_dropped=stats.long_tokens_dropped, kept=len(words),
            kept_tokens=words.retained_tokens, min_count=words.min_count,
            sentences=sum(s.sentences for s in shards),
            expected_after_subsampling=words.expected_after_subsampling(), workers=workers,
            seconds_vocab=vocab_done - started, seconds_encode=encode_done - vocab_done,
            seconds_total=time.perf_counter() - started,
            seconds_cluster_start=started - connecting, settings=settings)
        (stage / REPORT).write_text(report.to_json())
    logger.info("vocabulary of %d words written to %s", len(words), out)
    return report
