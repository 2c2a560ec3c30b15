"""The runner's OS signals: SIGINT, SIGTERM and SIGHUP ask a run to stop cleanly."""

from __future__ import annotations

import logging
import signal
import threading
import time

log = logging.getLogger("sharedgan")

STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C; timeout, systemd, SLURM; a closed terminal
DELIBERATE = 0.5  # seconds: a second Ctrl-C sooner than this is the same request, delivered twice


class StopSignals:
    """Handlers of the signals that stop a job, for the duration of a run: the first asks for a
    clean stop (a final checkpoint; the process exits 128 + its number). Only a deliberate second
    Ctrl-C — SIGINT after SIGINT, more than :data:`DELIBERATE` s later — stops at once (the last
    periodic checkpoint stays); SIGTERMs and SIGHUPs, however many arrive (a nested ``timeout``
    signals the runner and its group at once), never cut the final checkpoint short. Previous
    handlers are restored after."""

    def __init__(self):
        self.on_stop = None  # called in the handler of the first signal (the runner's stop flag)
        self.signum: int | None = None
        self.hard = False
        self._first_at = 0.0
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, _frame):
        now = time.monotonic()
        if self.signum is None:
            self.signum, self._first_at = signum, now
            if self.on_stop is not None:
                self.on_stop()
        elif signum == signal.SIGINT == self.signum and now - self._first_at > DELIBERATE:
            self.hard = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOPS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
