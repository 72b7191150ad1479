"""The commands that use trained vectors: ``export``, ``index``, ``similar``, ``analogy``,
``eval``, ``embed`` (document vectors).

MODEL is a model directory, or any vectors file ``dw2v.load`` reads (word2vec text or binary,
fastText ``.vec``, a Parquet export). ``similar`` and ``analogy`` use the model's
nearest-neighbour index (``MODEL/index``, built by ``dw2v index``) when there is one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dw2v.cli_types import positive_int
from dw2v.errors import ConfigError


def add_commands(commands: Any) -> None:
    """Add the vector commands to the ``dw2v`` sub-parsers."""
    from dw2v.export import FORMATS
    from dw2v.search import BACKENDS, DEFAULT_BACKEND

    export = commands.add_parser("export", help="write the vectors as word2vec text or binary, "
                                                "Parquet or NumPy")
    export.add_argument("model", metavar="MODEL")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("-o", "--output", required=True, metavar="PATH")
    export.add_argument("--normalize", action="store_true", help="unit-length vectors")
    export.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="only the N most frequent words")
    export.add_argument("--overwrite", action="store_true")

    index = commands.add_parser("index", help="build an approximate nearest-neighbour index")
    index.add_argument("model", metavar="MODEL")
    index.add_argument("-o", "--output", default=None, metavar="PATH",
                       help="index directory (default MODEL/index, where similar finds it)")
    index.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                       help=f"default {DEFAULT_BACKEND} (measured: benchmarks/RESULTS.md)")
    index.add_argument("--overwrite", action="store_true")

    for name, help_text in (("similar", "nearest neighbours of words"),
                            ("analogy", "A is to B as C is to ? (3CosAdd)")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("model", metavar="MODEL")
        if name == "similar":
            sub.add_argument("words", nargs="+", metavar="WORD")
        else:  # three positionals: argparse's help fails on one nargs=3 with a tuple metavar
            for letter, role in (("a", "is to"), ("b", "as"), ("c", "is to ?")):
                sub.add_argument(letter, metavar=letter.upper(), help=f"{letter.upper()} "
                                                                      f"{role}")
        sub.add_argument("-k", type=positive_int, default=10, help="neighbours (default 10)")
        sub.add_argument("--index", default=None, metavar="PATH",
                         help="index directory (default MODEL/index when it exists)")
        sub.add_argument("--exact", action="store_true", help="exact search, no index")
        sub.add_argument("--json", action="store_true", help="one JSON object on stdout")

    embed = commands.add_parser(
        "embed", help="document vectors: the mean of each document's word vectors",
        description="Write OUT.parquet: one row per document of INPUT (Parquet or text, as "
                    "dw2v train reads them), its id and its vector (fixed_size_list<float32>), "
                    "the mean of its words' vectors, tokenized as the model was trained.")
    embed.add_argument("model", metavar="MODEL")
    embed.add_argument("inputs", nargs="+", metavar="INPUT")
    embed.add_argument("-o", "--output", required=True, metavar="OUT.parquet")
    embed.add_argument("--text-column", default="text",
                       help="Parquet: the column holding the text (default text)")
    embed.add_argument("--id-column", default=None,
                       help="Parquet: the id column kept beside each vector (default doc_id "
                            "when present; else source file and row)")
    embed.add_argument("--overwrite", action="store_true",
                       help="replace OUT.parquet if it is a document-vectors file dw2v wrote")

    report = commands.add_parser("report", help="(re)write MODEL/report.html and its figures")
    report.add_argument("model", metavar="MODEL")

    ev = commands.add_parser("eval", help="word-similarity and analogy benchmarks")
    ev.add_argument("model", metavar="MODEL")
    ev.add_argument("--similarity", action="append", default=[], metavar="FILE",
                    help="tab-separated word pairs with a score (repeatable)")
    ev.add_argument("--analogies", action="append", default=[], metavar="FILE",
                    help="Google-format analogy questions (repeatable)")
    ev.add_argument("--restrict-vocab", type=positive_int, default=300_000, metavar="N",
                    help="only the N most frequent words count (default 300,000, gensim's "
                         "for both word pairs and analogies)")
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _index_for(args: argparse.Namespace, emb: Any) -> Any:
    from dw2v.search import AnnIndex

    if args.exact:
        return None
    path = Path(args.index) if args.index else Path(args.model) / "index"
    if args.index is None and not path.is_dir():
        return None
    return AnnIndex.load(path, emb)


def check_not_overlapping_model(args: argparse.Namespace) -> None:
    """The output of ``embed`` is neither the model nor inside it."""
    from dw2v.atomic import check_not_overlapping

    check_not_overlapping(Path(args.output).absolute(), [args.model])


def run(args: argparse.Namespace) -> int:
    """Run one of the vector commands; the exit code."""
    from dw2v.embeddings import load

    if args.command == "report":
        from dw2v.report import write_report
        print(f"report written to {write_report(args.model)}")
        return 0
    if args.command in ("export", "index"):
        from dw2v.atomic import check_not_overlapping
        out = Path(args.output) if args.output else Path(args.model) / "index"
        # an index belongs inside its model (the default MODEL/index); an export does not
        check_not_overlapping(out, [args.model],
                              allow_inside=[args.model] if args.command == "index" else [])
    emb = load(args.model)
    if args.command == "embed":
        from dw2v.config import IngestConfig
        from dw2v.docvec import embed_files

        check_not_overlapping_model(args)
        total = embed_files(emb, args.inputs, args.output,
                            ingest=IngestConfig(text_column=args.text_column),
                            id_column=args.id_column, overwrite=args.overwrite)
        print(f"{total:,} document vectors ({emb.vector_size} dimensions) written to "
              f"{args.output}")
        return 0
    if args.command == "export":
        from dw2v.export import export
        files = export(emb, args.output, args.format, normalize=args.normalize,
                       limit=args.limit, overwrite=args.overwrite)
        print(f"wrote {min(args.limit or len(emb), len(emb)):,} vectors to "
              + ", ".join(map(str, files)))
    elif args.command == "index":
        from dw2v.search import AnnIndex
        out = Path(args.output) if args.output else Path(args.model) / "index"
        index = AnnIndex.build(emb, args.backend)
        index.save(out, overwrite=args.overwrite)
        print(f"{args.backend} index of {len(emb):,} vectors written to {out} "
              f"({index.seconds_build:.1f} s)")
    elif args.command in ("similar", "analogy"):
        index = _index_for(args, emb)
        try:
            if args.command == "similar":
                results = {w: emb.most_similar(w, topn=args.k, index=index) for w in args.words}
            else:
                words = (args.a, args.b, args.c)
                results = {" ".join(words): emb.analogy(*words, topn=args.k, index=index)}
        except KeyError as exc:
            raise ConfigError(f"{exc.args[0]}") from None
        if args.json:
            print(json.dumps({q: [{"word": w, "similarity": s} for w, s in r]
                              for q, r in results.items()}, ensure_ascii=False))
        else:
            for query, neighbours in results.items():
                print(f"{query}:")
                for word, sim in neighbours:
                    print(f"  {sim:7.4f}  {word}")
    else:
        if not args.similarity and not args.analogies:
            raise ConfigError("eval: give at least one --similarity or --analogies file")
        report = {
            "similarity": {f: emb.evaluate_similarity(f, args.restrict_vocab).to_dict()
                           for f in args.similarity},
            "analogies": {f: emb.evaluate_analogies(f, args.restrict_vocab).to_dict()
                          for f in args.analogies}}
        if args.json:
            print(json.dumps(report))
        else:
            print_scores(report)
    return 0


def print_scores(report: dict[str, Any], sections: bool = True) -> None:
    """Print word-pair and analogy scores (``dw2v eval``'s, or those a run kept)."""
    for f, r in report.get("similarity", {}).items():
        print(f"{f}: Spearman {r['spearman']:.4f}, Pearson {r['pearson']:.4f}, "
              f"out of vocabulary {r['oov']:.1%} of {r['pairs']} pairs")
    for f, r in report.get("analogies", {}).items():
        print(f"{f}: accuracy {r['accuracy']:.4f} ({r['correct']:,} of {r['total']:,}; "
              f"{r['skipped']:,} skipped, out of vocabulary)")
        for s in r["sections"] if sections else []:
            print(f"  {s['name']:28s} {s['accuracy']:.4f} ({s['correct']}/{s['total']})")
