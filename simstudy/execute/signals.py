"""Signal handling shared by the driver: what a library must not take over."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def keep_sigint() -> Iterator[None]:
    """Restore SIGINT's handler after the block (an import that replaces it, e.g.).

    ``dask_jobqueue.runner`` installs ``sys.exit()`` for SIGINT when imported: Ctrl-C would
    then end a run with exit code 0, no message and no cleanup.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
