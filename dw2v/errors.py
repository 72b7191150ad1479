"""Exceptions dw2v raises for bad input and bad settings.

Every error names what is wrong and where, so the CLI can print it as it is and exit with a
code that tells usage errors (2) from data errors (1).
"""

from __future__ import annotations


class Dw2vError(Exception):
    """Base class of every error dw2v raises on purpose."""

    exit_code = 1


class ConfigError(Dw2vError, ValueError):
    """An invalid setting: names the field and the value."""

    exit_code = 2


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
