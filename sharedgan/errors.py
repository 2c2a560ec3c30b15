"""Every error sharedgan raises on purpose, in one place (as torch elastic keeps its errors).

Bad input is a :class:`ConfigError` (exit 2: one line that says what to do); a run that fails
is a :class:`RoleFailed` or :class:`Diverged` (exit 1); the rest are their refinements."""

from __future__ import annotations

import signal


class ConfigError(ValueError):
    """Bad user input; the message is one line that says what to do."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name} (exit code {code})"
        except ValueError:
            return f"was killed by signal {-code} (exit code {code})"
    return f"exited with code {code}"


class RoleFailed(RuntimeError):
    """A child process ended badly; names the role, how it ended, and where its log is."""

    def __init__(self, role: str, exitcode: int | None, log: str | None = None, detail: str = ""):
        self.role, self.exitcode, self.log = role, exitcode, log
        text = detail or f"{role} {describe_exit(exitcode)}"
        if log:
            text += f"; see {log}"
        super().__init__(text)


class UntrustedRun(ConfigError):
    """A run directory or config file that would make sharedgan import code it does not ship."""


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used; the message says which and why."""


class WriteFailed(OSError):
    """A role's checkpoint could not be written (disk full, file-size limit, read-only disk)."""

    def __init__(self, role: str, round_index: int, cause: OSError):
        self.role, self.round = role, round_index
        super().__init__(cause.errno, f"{role} could not write its checkpoint of round {round_index}: "
                                      f"{cause.strerror or cause}")


class FactoryError(ValueError):
    """A model factory reference that cannot be used; the message says what to pass instead."""


class DataError(ConfigError):
    """A data set that is missing or unusable; the message says how to get a good one."""


DIVERGENCE_KINDS = ("sample", "loss", "gradient", "parameter")  # what can turn non-finite, by code


class Diverged(RuntimeError):
    """NaN or Inf where a finite number must be; names the role, the round and what."""

    def __init__(self, role: str, round_index: int, what: str):
        self.role, self.round, self.what = role, round_index, what
        first_word = what.removeprefix("its ").split()[0]
        self.code = DIVERGENCE_KINDS.index(first_word) if first_word in DIVERGENCE_KINDS else 0
        super().__init__(f"{role} diverged at round {round_index}: {what} is not finite (NaN or Inf)")

