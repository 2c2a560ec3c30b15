"""Peak memory of a run's processes.

Resident memory is read by the runner from outside (no signal carries it): the kernel keeps each
process's high-water mark (VmHWM in /proc/PID/status), which only grows, so the last reading
before a process exits is its peak. The runner reads every child's about once a second and when
it says FINISHED, and its own when run.h5 is written.

CUDA memory can only be read inside the process that allocated it (PyTorch's caching allocator
keeps the peak): each child reports its own on its FINISHED signal, the runner reads its own.
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


def peak_cuda() -> int | None:
    """This process's peak CUDA memory allocated by PyTorch, in bytes, summed over the devices it
    used (an upper bound of what it held at once); None where it touched no GPU. (Memory another
    process allocated and shared, such as the slot buffer in a role, is the allocator's of that
    process and counted there.)"""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))
