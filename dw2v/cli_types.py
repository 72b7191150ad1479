"""Argument types the ``dw2v`` commands share (so ``cli`` and ``cli_vectors`` need not import
each other)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
