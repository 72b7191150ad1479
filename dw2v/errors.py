"""Exceptions dw2v raises for bad input and bad settings.

Every error names what is wrong and where, so the CLI can print it as it is and exit with a
code that tells usage errors (2) from data errors (1).
"""

from __future__ import annotations


class Dw2vError(Exception):
    """Base class of every error dw2v raises on purpose."""

    exit_code = 1


class ConfigError(Dw2vError, ValueError):
    """An invalid setting: names the field and the value.

    Raised by a settings dataclass, it also carries ``owner`` (the class name), ``field``,
    ``value`` and ``rule``, so the command line can name the flag or the file's key the user
    typed instead of the field."""

    exit_code = 2

    def __init__(self, message: str, *, owner: str | None = None, field: str | None = None,
                 value: object = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.owner, self.field, self.value, self.rule = owner, field, value, rule


class InputError(Dw2vError):
    """A problem with one input file: names the file and the problem."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class NoInputError(Dw2vError):
    """No Parquet file matched the inputs."""


class EmptyVocabularyError(Dw2vError):
    """Pruning left no word; the message says which setting to lower."""


class OutputExistsError(Dw2vError):
    """The output directory exists and is not empty, and overwriting was not asked for."""

    exit_code = 2


class ClusterError(Dw2vError):
    """The cluster cannot be reached or used (names the address and the cause)."""


class Interrupted(Dw2vError):
    """The run was stopped by Ctrl-C (exit 130) or SIGTERM (143); the message says what was
    kept."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """Raised in the driver by SIGTERM, so a terminated run unwinds like Ctrl-C (the cluster
    is closed, the old output stays) and says what it did."""


class TrainError(Dw2vError):
    """Training cannot start or continue (names the cause)."""


class ResumableError(TrainError):
    """Training stopped for a cause outside the run (no workers, a full disk): its staging
    directory and checkpoint are kept for ``--resume``; ``then`` says what to fix first."""

    def __init__(self, message: str, then: str) -> None:
        super().__init__(message)
        self.then = then


class NumericalError(Dw2vError):
    """Parameters became NaN or inf; the message names the round."""


class CheckpointError(Dw2vError):
    """A checkpoint that cannot be read (names the path and the cause)."""


class ExchangeError(Dw2vError):
    """Workers could not exchange rows: a peer lost, hung or never connected (names it, and
    ``peer`` is its address: the driver restarts the group without it)."""

    def __init__(self, message: str, peer: str = "") -> None:
        super().__init__(message, peer)  # both in args: pickled across processes whole
        self.peer = peer

    def __str__(self) -> str:
        return str(self.args[0])


class CheckpointWriteError(Dw2vError):
    """A worker could not write its part of a checkpoint (a full disk, say); names the round
    and the cause. The previous checkpoint is intact."""
