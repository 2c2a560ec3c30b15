"""The runner's OS signals: SIGINT and SIGTERM ask a run to stop cleanly."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("sharedgan")


class StopSignals:
    """SIGINT / SIGTERM handlers for the duration of a run: the first asks for a clean stop
    (a final checkpoint), a second one stops at once. Previous handlers are restored after."""

    def __init__(self):
        self.signum: int | None = None
        self.hard = False
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, _frame):
        if self.signum is not None:
            self.hard = True
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

