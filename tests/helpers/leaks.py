"""What a run may leave behind: processes, /dev/shm entries, sockets, file descriptors.

``Snapshot.take()`` before and after; ``Snapshot.leaks(before, after)`` lists what appeared.
Children of a sharedgan run carry SHAREDGAN_RUN in their environment, so orphans are found even
after they were re-parented. test_leaks.py plants each kind of leak to show this check catches it.
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass

MARKER = b"SHAREDGAN_RUN="


def run_processes() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if MARKER in f.read():
                    found.add(int(entry))
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie is not)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def abstract_sockets() -> set[str]:
    with open("/proc/net/unix") as f:
        return {line.split()[-1] for line in f if line.split()[-1].startswith("@sharedgan-")}


def socket_files() -> set[str]:
    return set(glob.glob("/tmp/sharedgan-*")) | set(glob.glob("/tmp/pymp-*"))


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@dataclass
class Snapshot:
    processes: set
    shm: set
    sockets: set
    files: set
    fds: set

    @classmethod
    def take(cls) -> "Snapshot":
        fds = open_fds()
        return cls(run_processes(), set(os.listdir("/dev/shm")), abstract_sockets(), socket_files(), fds)

    @staticmethod
    def leaks(before: "Snapshot", after: "Snapshot", fds: bool = False) -> list[str]:
        found = []
        for name in ("processes", "shm", "sockets", "files") + (("fds",) if fds else ()):
            extra = getattr(after, name) - getattr(before, name)
            if extra:
                found.append(f"{name}: {sorted(extra)}")
        return found


def wait_clean(before: Snapshot, timeout: float = 5.0, fds: bool = False) -> list[str]:
    """Leaks still present after ``timeout`` s (processes that were just signalled need a moment to go)."""
    deadline = time.monotonic() + timeout
    while True:
        found = Snapshot.leaks(before, Snapshot.take(), fds)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
