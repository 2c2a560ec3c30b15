"""Named fault points, for the fault-injection tests and ``examples/studies/fault_trials.py``.

``SHAREDGAN_FAULT="<process>:<point>:<round>[:<SIGNAL>]"`` makes that process send itself the
signal (default SIGKILL) when it reaches that point in that round, so a test can kill a role at
the exact moment that matters instead of at a random one:

=================  =============  ======================================================
point              process        where
=================  =============  ======================================================
slot-write         generator-k    the batch is in slot k, its round stamp not yet
validation-write   discriminator  D's gradient is in slot k, its round stamp not yet
validation-write   teacher        D_T's (or T's) gradient is in slot k's teacher region, its stamp not yet
checkpoint-write   any role       the role's temporary checkpoint file is written, not renamed
checkpoint-rename  runner         the manifest is written, the checkpoint folder not yet renamed
=================  =============  ======================================================

Unset (always, outside tests), a point costs one environment lookup. Under torchrun a point fires
in the group's first attempt only: a group that torchrun restarted must get past it.
"""

from __future__ import annotations

import functools
import os
import signal

ENV = "SHAREDGAN_FAULT"


POINTS = ("slot-write", "validation-write", "checkpoint-write", "checkpoint-rename")


@functools.lru_cache(maxsize=4)
def _parse(spec: str) -> tuple[str, str, int, int]:
    parts = spec.split(":")
    if len(parts) not in (3, 4) or parts[1] not in POINTS:
        raise ValueError(f"{ENV}={spec!r}: expected <process>:<point>:<round>[:<SIGNAL>], point one of {POINTS}")
    name = parts[3] if len(parts) == 4 else "KILL"
    sig = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    return parts[0], parts[1], int(parts[2]), int(sig)


def point(name: str, process: str, round_index: int) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    who, where, when, sig = _parse(spec)
    if (who, where, when) == (process, name, round_index) and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        # the runner gets the signal as from outside (SIGTERM: a stop request, handled); a child
        # dies of it, here (its own handling of SIGTERM/SIGHUP, see procgroup, is for signals from
        # outside, whose meaning it first has to learn)
        if process != "runner" and sig != signal.SIGKILL:  # (SIGKILL has no handling to undo)
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)

