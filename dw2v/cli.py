"""The ``dw2v`` command: parse arguments, build the configs, call the stage, report.

Exit codes: 0 success, 1 bad data (the message names the file), 2 bad usage or settings.
"""

from __future__ import annotations

import _thread
import argparse
import functools
import gc
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from dw2v.cli_types import positive_int
from dw2v.config import ClusterConfig, IngestConfig, TrainConfig, VocabConfig
from dw2v.errors import ConfigError, Dw2vError, Terminated

logger = logging.getLogger("dw2v")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _setting(group: Any, where: str, *flags: str, **kwargs: Any) -> argparse.Action:
    """An option that sets the settings field ``where`` (``train.vector_size``: its table and
    name in the dataclasses and the ``--config`` file). Its destination is that name and its
    default the dataclass's, so the settings' names and defaults live in one place."""
    from dw2v import config_file

    kwargs.setdefault("default", config_file.default_of(where))
    takes_value = kwargs.get("action") in (None, "append")
    if takes_value and "choices" not in kwargs:  # shown as --dim DIM, not TRAIN.VECTOR_SIZE
        kwargs.setdefault("metavar", flags[0].lstrip("-").replace("-", "_").upper())
    return group.add_argument(*flags, dest=where, **kwargs)


def _add_input_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    group = parser.add_argument_group("input")
    group.add_argument("inputs", nargs="+" if required else "*", metavar="INPUT",
                       help="Parquet or text files (one document per line; .gz, .bz2, .zst "
                            "too), directories (every *.parquet and *.txt below), globs or "
                            "fsspec URLs (file://, memory://, s3:// with s3fs)")
    _setting(group, "ingest.text_column", "--text-column",
             help="Parquet: the column holding the text")
    _setting(group, "ingest.tokenizer.lowercase", "--no-lowercase", action="store_false",
             help="keep the case of the text")
    _setting(group, "ingest.tokenizer.pattern", "--token-pattern",
             help="RE2 regex a token must match (default: letters and digits, apostrophes "
                  "inside words)")
    _setting(group, "ingest.tokenizer.max_token_bytes", "--max-token-bytes", type=int,
             metavar="N", help="drop (and count) tokens longer than N UTF-8 bytes (word2vec "
                               "C's limit)")
    _setting(group, "ingest.batch_size", "--batch-size", type=positive_int,
             help="rows read at a time (bounds memory per task)")
    _setting(group, "ingest.storage_options", "--storage-option", type=_key_value,
             action="append", default=[], metavar="KEY=VALUE",
             help="fsspec storage option (repeatable)")


def _add_vocab_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("vocabulary")
    _setting(group, "vocab.min_count", "--min-count", "--minCount", type=int,
             help="drop words seen fewer times")
    _setting(group, "vocab.max_vocab_size", "--max-vocab-size", type=int,
             help="budget of distinct words while counting; the rarest are cut when it is "
                  "exceeded (bounds memory)")
    _setting(group, "vocab.max_final_vocab", "--max-final-vocab", type=int,
             help="raise min-count until at most this many words are left")
    _setting(group, "vocab.sample", "--sample", type=float,
             help="subsampling threshold for frequent words (0: off)")
    _setting(group, "vocab.ns_exponent", "--ns-exponent", type=float,
             help="exponent of the unigram noise distribution")


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster (default: an embedded LocalCluster)")
    where = group.add_mutually_exclusive_group()
    _setting(where, "cluster.scheduler", "--scheduler", metavar="ADDR",
             help="address of a running scheduler")
    _setting(where, "cluster.scheduler_file", "--scheduler-file", metavar="FILE",
             help="a scheduler's JSON file")
    _setting(group, "cluster.n_workers", "--workers", type=int,
             help="LocalCluster workers (default: one, with a thread per core, in this "
                  "process; more are a process each)")
    _setting(group, "cluster.threads_per_worker", "--threads-per-worker", type=int,
             help="LocalCluster threads per worker (default: one per core with one worker, "
                  "else 1)")
    _setting(group, "cluster.dashboard_address", "--dashboard", metavar="ADDR",
             help="LocalCluster dashboard address (another port is taken if busy); its "
                  "pages start, and their link is printed, once the run has lasted 10 s")
    _setting(group, "cluster.dashboard_address", "--no-dashboard", action="store_const",
             const=None, help="start the LocalCluster without its dashboard")
    _setting(group, "cluster.worker_timeout", "--worker-timeout", type=float, metavar="SECONDS",
             help="training: how long to wait when the cluster has no workers before "
                  "stopping (the last checkpoint is kept)")
    _setting(group, "cluster.connect_timeout", "--connect-timeout", type=float,
             metavar="SECONDS",
             help="how long to wait for --scheduler / --scheduler-file to answer")
    _setting(group, "cluster.checkpoint_every", "--checkpoint-every", type=float,
             metavar="SECONDS", help="training: seconds between checkpoints (0: after every "
                                     "round; one is always written at the end)")
    _setting(group, "cluster.exchange_timeout", "--exchange-timeout", type=float,
             metavar="SECONDS",
             help="training: how long a worker waits for a peer before the peer counts as "
                  "hung or lost and training restarts without it from the last checkpoint")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default=None, metavar="OUT_DIR",
                        help="output directory (must not exist or be empty, and must not be, "
                             "hold or lie inside an input)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output directory that holds only dw2v output; the "
                             "new one is built beside it and swapped in only when complete")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: when stderr is a terminal)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-vv: Dask's too)")


def _count_or_auto(text: str) -> int | None:
    """A whole number, or ``auto`` (None)."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or 'auto'") from None


def _sync_every(text: str) -> int | None:
    """``--sync-every``: a number of words, or ``auto`` (None)."""
    if text == "auto":
        return None
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of words or 'auto', not {text!r}")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    _setting(group, "train.model", "--model", choices=["skipgram", "cbow"])
    _setting(group, "train.vector_size", "--dim", "--vector-size", "--size", type=int,
             help="vector size")
    _setting(group, "train.window", "--window", "--ws", type=int,
             help="maximum context window")
    _setting(group, "train.negative", "--negative", "--neg", type=int,
             help="noise words per example")
    _setting(group, "train.epochs", "--epochs", "--epoch", "--iter", type=int,
             help="passes over the corpus")
    _setting(group, "train.alpha", "--alpha", "--lr", type=float, help="initial learning rate")
    _setting(group, "train.min_alpha", "--min-alpha", type=float, help="final learning rate")
    _setting(group, "train.sync_every", "--sync-every", type=_sync_every, metavar="WORDS|auto",
             help="words each worker trains between parameter averagings (default auto: "
                  "about 128 averagings per run, rounds of 20,000 to 1,000,000 words and at "
                  "least one word per 24 values of a vector matrix)")
    _setting(group, "train.scale_lr", "--scale-lr", action=argparse.BooleanOptionalAction,
             help="each worker's learning rate is --alpha/--min-alpha times the number of "
                  "workers, since averaging divides each worker's updates by that number "
                  "(default; --no-scale-lr: --alpha as given)")
    _setting(group, "train.hot_rows", "--hot-rows", type=_count_or_auto, metavar="N|auto",
             help="the exchange averages the N most frequent words' rows every round "
                  "(default auto: the words expected at least once in a worker's round)")
    _setting(group, "train.cold_every", "--cold-every", type=int, metavar="K",
             help="... and the other rows every K rounds, in turn (default 1: every touched "
                  "row every round)")
    _setting(group, "train.overlap", "--overlap", action=argparse.BooleanOptionalAction,
             help="exchange a round's rows while the next round trains (one round stale; "
                  "default: --no-overlap)")
    _setting(group, "train.shared_negatives", "--shared-negatives",
             action=argparse.BooleanOptionalAction,
             help="skip-gram: the HogBatch kernel, negatives shared by a centre word's "
                  "window (default; --no-shared-negatives: word2vec's per-pair negatives)")
    _setting(group, "train.cbow_block", "--cbow-block", type=positive_int, metavar="N",
             help="CBOW on the CPU: N consecutive centre words share one draw of negatives "
                  "(4: about 1.2x the words/s, at lower analogy accuracy; 1: a draw per "
                  "centre, word2vec's)")
    _setting(group, "train.threads", "--kernel-threads", type=int,
             help="Hogwild threads inside each worker's kernel (default: the threads the "
                  "worker has: --threads-per-worker, or a cluster worker's --nthreads)")
    _setting(group, "train.device", "--device", choices=["cpu", "gpu", "auto"],
             help="where workers train: cpu, gpu (every worker on its GPU) or auto (a GPU "
                  "where a worker has one)")
    _setting(group, "train.seed", "--seed", type=int,
             help="random seed (single-threaded workers give the same vectors for a seed; "
                  "Hogwild threads do not)")
    _setting(group, "train.skip_bad_shards", "--skip-bad-shards", action="store_true",
             help="skip a token-id shard that cannot be read during training, with a "
                  "warning (default: stop with an error naming it)")
    _setting(group, "train.save_output_vectors", "--save-output-vectors",
             action="store_true", help="also write the output vectors (output_vectors.npy)")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in OUT_DIR from its last checkpoint "
                            "(its settings are the checkpoint's; INPUT is not needed)")
    group.add_argument("--keep-work", action="store_true",
                       help="keep the token-id shards and checkpoints after training")
    group.add_argument("--init-from", default=None, metavar="MODEL_DIR",
                       help="continue training this model on INPUT: its vocabulary is extended "
                            "with the new words, its vectors kept")
    group.add_argument("--config", default=None, metavar="FILE",
                       help="settings from a TOML file (the shape --print-config writes); "
                            "flags given here override it")
    group.add_argument("--print-config", action="store_true",
                       help="print the effective settings as TOML and exit")
    group.add_argument("--neighbours", default=None, metavar="WORD,...",
                       help="print the nearest neighbours of these words at the end, and keep "
                            "them in model.json and report.html (default: five words of "
                            "decreasing frequency)")
    group.add_argument("--similarity", action="append", default=[], metavar="FILE",
                       help="score the model on this word-pair file at the end, as dw2v eval "
                            "does; printed, kept in model.json and report.html (repeatable)")
    group.add_argument("--analogies", action="append", default=[], metavar="FILE",
                       help="the same for a Google-format analogy file (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dw2v", description="Distributed word2vec on Dask, from Parquet or text files.",
        allow_abbrev=False)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    vocab = commands.add_parser(
        "vocab", help="build the vocabulary and encode the corpus to token ids",
        description="Count tokens on the cluster, prune, and write vocab.parquet, "
                    "vocab_report.json and work/ (token-id shards) to OUT_DIR.")
    _add_input_options(vocab)
    _add_vocab_options(vocab)
    _add_cluster_options(vocab)
    _add_run_options(vocab)
    train = commands.add_parser(
        "train", help="train word2vec on the cluster (vocabulary, rounds, model)",
        description="Build the vocabulary, train in rounds with parameter averaging on the "
                    "cluster, and write the model (vectors.npy, vocab.parquet, model.json) "
                    "to OUT_DIR.")
    _add_input_options(train, required=False)  # not needed with --resume
    _add_vocab_options(train)
    _add_train_options(train)
    _add_cluster_options(train)
    _add_run_options(train)
    from dw2v.cli_vectors import add_commands
    add_commands(commands)
    for sub in commands.choices.values():
        sub.allow_abbrev = False  # --threads must not mean --threads-per-worker
        if not any("--verbose" in a.option_strings for a in sub._actions):
            sub.add_argument("-v", "--verbose", action="count", default=0)
    _help_everywhere(parser)
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _version() -> str:
    from dw2v import __version__
    return __version__


def _configs(args: argparse.Namespace) -> tuple[IngestConfig, VocabConfig, TrainConfig,
                                             ClusterConfig]:
    """The settings the command line gives (every option named ``table.field``), checked."""
    from dw2v import config_file

    return config_file.build(config_file.tables_from(vars(args)))


def _explicit(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations the command line sets explicitly (argparse leaves a pre-set attribute
    alone unless its option is given, so a sentinel marks the ones left at their default;
    counting and appending options start from None, which they take as empty)."""
    sentinel = object()
    growing = (argparse._CountAction, argparse._AppendAction)
    namespace = argparse.Namespace(**{a.dest: None if isinstance(a, growing) else sentinel
                                      for a in parser._actions})
    parser.parse_args(list(argv), namespace=namespace)
    return {k for k, v in vars(namespace).items() if v is not sentinel and v is not None}


def train_flags() -> dict[str, str]:
    """Each training setting's option as ``dw2v train`` spells it (``vector_size``: ``--dim``),
    for messages about settings given to the CLI."""
    from dw2v import config_file

    parser = _subparser(build_parser(), "train")
    return {where[1]: flag for action in parser._actions
            if (where := config_file.field_of(action.dest)) is not None
            and where[0] == "train" and (flag := _flag(parser, action.dest)) is not None}


def _flag(parser: argparse.ArgumentParser, dest: str, argv: Sequence[str] = ()) -> str | None:
    """The option a user types for ``dest``: the one (or alias) in ``argv``, else the first
    (``--dim`` for ``dim``)."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            typed = [o for o in action.option_strings
                     if any(w == o or w.startswith(o + "=") for w in argv)]
            longs = [o for o in action.option_strings if o.startswith("--")]
            plain = [o for o in longs if not o.startswith("--no-")]
            return (typed[-1:] or plain or longs or action.option_strings)[0]
    return None


class _HelpFormatter(argparse.HelpFormatter):
    """``--help`` with every option's default: added where its help does not give it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS, [])
        flags = (argparse._VersionAction, argparse._StoreConstAction)  # store_true/false too
        if (action.option_strings and shown and "default" not in text
                and not isinstance(action, flags)):
            text = f"{text} (default: %(default)s)".strip()
        return text


def _help_everywhere(parser: argparse.ArgumentParser) -> None:
    """Every option of ``parser`` and its subcommands gets a help line (so the formatter can
    show its default)."""
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if (action.help is None and action.option_strings
                and not isinstance(action, argparse._StoreConstAction)
                and action.default not in (None, False, argparse.SUPPRESS, [])):
            action.help = "(default: %(default)s)"
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _help_everywhere(sub)


def _as_typed(flag: str, value: Any, argv: Sequence[str]) -> str:
    """What the user typed after ``flag`` (its last use), else the parsed value."""
    typed = None
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            typed = argv[i + 1]
        elif word.startswith(flag + "="):
            typed = word[len(flag) + 1:]
    text = typed if typed is not None else str(value)
    return repr(text) if not text or " " in text else text


def _as_toml(value: Any) -> str:
    """A value as the TOML file spells it (tables inline)."""
    import tomli_w

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_as_toml(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"x": value}).removeprefix("x = ").strip()


def _user_words(exc: ConfigError, parser: argparse.ArgumentParser, argv: Sequence[str],
                config_path: str | None = None, data: dict[str, Any] | None = None
                ) -> ConfigError:
    """``exc`` (a settings class's error, naming a field) rephrased with what the user typed:
    the flag (``--dim 0``), or the ``--config`` file's key where the value came from there."""
    from dw2v import config_file

    if exc.field is None or exc.owner is None or exc.rule is None:
        return exc
    explicit = _explicit(parser, argv)
    table = config_file.table_of_field(exc.owner)
    if table is None:
        return exc
    dest = f"{table}.{exc.field}"
    in_file, value = (config_file.file_value(data, table, exc.field) if data is not None
                      else (False, None))
    if in_file and dest not in explicit:
        return ConfigError(f"--config {config_path}: [{table}] {exc.field} = "
                           f"{_as_toml(value)}: {exc.rule}")
    flag = _flag(parser, dest, argv) if dest else None
    if flag is None:
        return exc
    return ConfigError(f"{flag} {_as_typed(flag, exc.value, argv)}: {exc.rule}")


def _train_settings(args: argparse.Namespace, parser: argparse.ArgumentParser,
                    argv: Sequence[str]) -> tuple[list[str], str | None, Any]:
    """Inputs, output and RunConfig from the command line and, under it, ``--config``."""
    from dw2v import config_file
    from dw2v.config import RunConfig

    explicit = _explicit(parser, argv)
    try:
        tables = config_file.tables_of(*_configs(args))
    except ConfigError as exc:
        raise _user_words(exc, parser, argv) from None
    inputs, output = list(args.inputs), args.output
    data: dict[str, Any] | None = None
    if args.config:
        data = config_file.read(args.config)
        tables = config_file.merge(tables, explicit, data)
        inputs = inputs or list(data.get("inputs", []))
        output = output or data.get("output")
    try:
        ingest, vocab, train_config, cluster = config_file.build(tables)
    except ConfigError as exc:
        raise _user_words(exc, parser, argv, args.config, data) from None
    return inputs, output, RunConfig(ingest=ingest, vocab=vocab, train=train_config,
                                     cluster=cluster)


def _run_train(args: argparse.Namespace, parser: argparse.ArgumentParser,
               argv: Sequence[str]) -> int:
    from dw2v import config_file
    from dw2v.cli_vectors import print_scores
    from dw2v.report import ReportExtras
    from dw2v.train import train

    inputs, output, config = _train_settings(args, parser, argv)
    if args.print_config:
        print(config_file.dumps(inputs, output, config_file.tables_of(
            config.ingest, config.vocab, config.train, config.cluster)), end="")
        return 0
    if not output:
        raise ConfigError("train: give -o OUT_DIR (or output in the --config file)")
    if not inputs and not args.resume:
        raise ConfigError("train: give at least one INPUT (or --resume)")
    args.output = output
    for path in args.similarity + args.analogies:  # before training, not after it
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such benchmark file")
    extras = ReportExtras(neighbours=tuple(w for w in (args.neighbours or "").split(",") if w),
                          similarity=tuple(args.similarity), analogies=tuple(args.analogies))
    model = train(inputs, output, config, overwrite=args.overwrite,
                  resume=args.resume, keep_work=args.keep_work, progress=args.progress,
                  init_from=args.init_from, report=extras, command=["dw2v", "train", *argv],
                  setting_names=train_flags())
    rounds = model.meta["rounds"]
    seconds = sum(r["seconds"] for r in rounds)
    words = sum(r["words"] for r in rounds)
    print(f"trained {len(model):,} words x {model.vectors.shape[1]} in {len(rounds)} rounds: "
          f"{words:,} words in {seconds:.1f} s ({words / max(seconds, 1e-9):,.0f} words/s), "
          f"final loss {rounds[-1]['loss']:.4f}" if rounds else "nothing to train")
    print(f"model written to {args.output}")
    report = Path(args.output) / "report.html"
    if report.exists():
        print(f"report: {report}")
    kept = model.meta.get("extras", {})
    for word, neighbours in kept.get("neighbours", {}).items():
        print(f"  {word}: " + (", ".join(w for w, _ in neighbours) if neighbours is not None
                               else "not in the vocabulary"))
    print_scores(kept, sections=False)
    return 0


def _setup_logging(verbose: int) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="dw2v: %(levelname)s: %(name)s: %(message)s", stream=sys.stderr)
    console = logging.getLogger("dw2v.console")  # a line or two the user always sees
    if not console.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("dw2v: %(message)s"))
        console.addHandler(handler)
    console.setLevel(logging.INFO)
    console.propagate = False
    # Task errors reach the user as dw2v's own message; the workers' copies are noise unless -v.
    dask_level = ("critical", "warning", "info")[min(verbose, 2)]
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", dask_level)  # inherited by workers
    logging.getLogger("distributed").setLevel(dask_level.upper())


def _run_vocab(args: argparse.Namespace, parser: argparse.ArgumentParser,
               argv: Sequence[str]) -> int:
    from dw2v.prepare import build_vocab
    from dw2v.vocab import load

    try:
        ingest, vocab, _, cluster = _configs(args)
    except ConfigError as exc:
        raise _user_words(exc, parser, argv) from None
    report = build_vocab(args.inputs, args.output, ingest=ingest, vocab=vocab, cluster=cluster,
                         overwrite=args.overwrite, progress=args.progress)
    print(report.summary())
    top = load(args.output).tokens.slice(0, 12).to_pylist()
    print("most frequent: " + ", ".join(top))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command == "vocab" and not args.output:
        parser.error("vocab: the following arguments are required: -o/--output")
    if (args.command == "train" and not args.inputs and not args.resume and not args.config
            and not args.print_config):
        parser.error("train: give at least one INPUT (or --resume)")
    _setup_logging(args.verbose)
    with _signals_stop_the_run(args.verbose):
        try:
            if args.command == "train":
                return _run_train(args, _subparser(parser, "train"),
                                  argv[argv.index("train") + 1:])
            if args.command == "vocab":
                return _run_vocab(args, _subparser(parser, "vocab"),
                                  argv[argv.index("vocab") + 1:])
            from dw2v.cli_vectors import run
            return run(args)
        except Dw2vError as exc:
            print(f"dw2v: error: {exc}", file=sys.stderr)
            for note in getattr(exc, "__notes__", []):
                print(f"dw2v: {note}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt as exc:  # not from training, which says what it kept
            how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            print(f"dw2v: {how}; nothing was written (an existing output is unchanged)",
                  file=sys.stderr)
            return 143 if isinstance(exc, Terminated) else 130


@contextmanager
def _signals_stop_the_run(verbose: int) -> Iterator[None]:
    """While inside: Ctrl-C and SIGTERM raise in the main thread (:func:`_stop`), and one
    that Python swallowed is delivered again (:func:`_unraisable`); restored after."""
    previous = {sig: signal.signal(sig, functools.partial(_stop, verbose=verbose))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_unraisable, fallback=previous_hook)
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _unraisable(unraisable: Any, fallback: Callable[[Any], None]) -> None:
    """``sys.unraisablehook``: a Ctrl-C or SIGTERM whose handler ran where Python cannot
    raise (a garbage collector's callback, such as Dask's GC diagnosis, or a ``__del__``) was
    swallowed there, and the run went on to completion; deliver it again to the main thread,
    so that it stops the run. From another thread, a moment later: delivered now, its handler
    would run inside this hook, which swallows it too. Anything else goes to ``fallback``."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        signum = (signal.SIGTERM if isinstance(unraisable.exc_value, Terminated)
                  else signal.SIGINT)
        again = threading.Timer(0.01, _thread.interrupt_main, (signum,))
        again.daemon = True
        again.start()
        return
    fallback(unraisable)


def _stop(signum: int, frame: Any, verbose: int = 0) -> None:
    """Ctrl-C or SIGTERM: unwind (SIGTERM like Ctrl-C), so that the cluster is closed and the
    run says what it kept. What Dask and its event loop then log about the calls cut short
    (cancelled gathers, callbacks) is noise to the user: silenced unless -vv."""
    if verbose < 2:
        names = [n for n in logging.root.manager.loggerDict
                 if n.split(".")[0] in ("distributed", "tornado", "asyncio")]
        for name in ["distributed", "tornado", "asyncio", *names]:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def console() -> None:
    """The ``dw2v`` command: :func:`main`, then exit. The interpreter's last garbage collection
    walked every object the run imported (Dask, pandas, Numba): 0.6-0.9 s after the
    output was complete (RESULTS.md §22). Frozen objects are left to the exit to free."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
