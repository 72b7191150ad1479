"""A Dask preload for the embedded LocalCluster's worker processes: they ignore SIGINT.

Ctrl-C in a terminal reaches every process of the foreground group, the workers too; each then
printed a KeyboardInterrupt traceback of its own while the driver was already stopping the run
(and closing the workers) cleanly. The driver alone handles Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:  # noqa: ARG001 - Dask's preload hook
    """Ignore SIGINT in this worker process (signals can be set from the main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
