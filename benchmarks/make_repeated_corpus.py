"""Write a large corpus of real text by repeating a small one: its rows, copied until the text
reaches ``--gigabytes``, shuffled, in ``--shards`` Parquet files (columns ``doc_id``, ``text``).

Real English (mixed case, punctuation, apostrophes, some non-ASCII) exercises every path of
the tokenizer, where ``make_corpus.py``'s synthetic words are plain ASCII; the vocabulary stays
the small corpus's. For speed checks of the vocabulary stage on a second corpus, not for
quality.

    python benchmarks/make_repeated_corpus.py ../shared/data/devcorpus \
        benchmarks/_data/devcorpus-x1g --gigabytes 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    text = pa.concat_arrays([pq.read_table(p, columns=["text"])["text"].combine_chunks()
                             for p in sorted(args.source.glob("*.parquet"))])
    text = text.filter(pc.is_valid(text))
    size = int(pc.sum(pc.binary_length(text)).as_py())
    copies = max(1, round(args.gigabytes * 1e9 / size))
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(text) * copies) % len(text)
    args.out.mkdir(parents=True, exist_ok=False)
    for k, part in enumerate(np.array_split(order, args.shards)):
        rows = text.take(pa.array(part))
        start = sum(len(p) for p in np.array_split(order, args.shards)[:k])
        pq.write_table(pa.table({"doc_id": pa.array(np.arange(start, start + len(rows))),
                                 "text": rows}), args.out / f"part-{k:05d}.parquet",
                       row_group_size=65536)
    print(f"{copies} copies of {len(text):,} rows ({size:,} bytes of text) in {args.shards} "
          f"files under {args.out}")


if __name__ == "__main__":
    main()
