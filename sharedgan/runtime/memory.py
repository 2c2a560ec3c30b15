"""Peak memory of a run's processes, read by the runner from outside (no signal carries it).

The kernel keeps each process's high-water mark of resident memory (VmHWM in /proc/PID/status):
it only grows, so the last reading before a process exits is its peak. The runner reads every
child's about once a second and when it says FINISHED, and its own when run.h5 is written.
"""

from __future__ import annotations

import os
import resource
import sys


def peak_rss(pid: int | None = None) -> int | None:
    """Peak resident memory of ``pid`` (None: this process) in bytes; None if it cannot be read."""
    if pid is None or pid == os.getpid():
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # (kB on Linux, bytes on macOS)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
