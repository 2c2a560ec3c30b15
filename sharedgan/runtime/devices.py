"""Where each role and the slot buffer live: ``--device`` (the buffer, and every role by default)
and ``--devices`` (placement of roles on a node with several GPUs).

``--devices`` is a ``;``-separated list of ``ROLE:DEVICE[,DEVICE...]`` with ROLE one of
``generators``, ``discriminator``, ``classifier``; generators are dealt over their list in turn.
Example: ``generators:cuda:0,cuda:1;discriminator:cuda:2;classifier:cuda:3``. A role not named
there runs on ``--device``.

Every model is built and initialised on the CPU from its own seed, then moved, and every random
draw (noise, real batches) comes from the CPU streams of :mod:`sharedgan.math.seeding`, so a run on a GPU
draws the same numbers as one on the CPU.

A CUDA kernel runs after its launch returns: a role that wrote into the buffer must wait for its
stream (:func:`settle`) before it signals that the slot is ready, or the reader in another process
may see the old bytes.
"""

from __future__ import annotations

import os

import torch

from sharedgan.errors import ConfigError

ROLES = ("generators", "discriminator", "classifier", "teacher")


def parse_device(text: str, what: str = "--device") -> torch.device:
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{what}: {text!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{what}: {text!r} is not supported; use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} {text}: no CUDA device here (torch.cuda.is_available() is False); "
                              "use --device cpu, or a torch built with CUDA on a machine with a GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{what} {text}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered from 0")
    return device


def parse_placement(text: str | None) -> dict[str, list[torch.device]]:
    """``--devices`` → {role: [devices]}; an empty dict when not given."""
    if not text:
        return {}
    placement: dict[str, list[torch.device]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        role, sep, devices = entry.partition(":")
        if not sep or role not in ROLES or not devices:
            raise ConfigError(f"--devices: {entry!r} is not ROLE:DEVICE[,DEVICE...] with ROLE one of "
                              f"{', '.join(ROLES)} (e.g. 'generators:cuda:0,cuda:1;discriminator:cuda:2')")
        if role in placement:
            raise ConfigError(f"--devices names {role} twice")
        placement[role] = [parse_device(d.strip(), "--devices") for d in devices.split(",")]
    return placement


def role_device(config, name: str) -> torch.device:
    """The device of role ``name`` (generator-k, discriminator, classifier)."""
    name = config.host(name)  # C on D's trunk runs where D does
    placement = parse_placement(config.devices)
    if name.startswith("generator-") and "generators" in placement:
        choices = placement["generators"]
        return choices[int(name.split("-")[1]) % len(choices)]
    base = name.partition("-")[0]  # an async engine's D and C replicas sit with their primary
    return placement.get(base, [parse_device(config.device)])[0]


def buffer_device(config) -> torch.device:
    return parse_device(config.device)


def check(config) -> None:
    """Refuse a device this machine lacks before any process starts."""
    parse_device(config.device)
    parse_placement(config.devices)


def prepare(config, device: torch.device) -> None:
    """Per process, before its first compute: denormal floats flushed to zero, deterministic
    kernels when asked for, the CUDA device.

    Flushing denormals matters: late in a long run C's heads saturate and its activations and
    gradients fall into the denormal range, where CPU arithmetic is ~10× slower (a 30-minute K = 8
    soak saw C's step grow from about 0.05 to 0.34 s a round; on that soak's last checkpoint
    flushing brings it back to 0.03 s). Every engine flushes, so they still agree bit for bit."""
    torch.set_flush_denormal(True)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what cuBLAS needs to be deterministic
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    if device.type == "cuda":
        torch.cuda.set_device(device)


def settle(*devices: torch.device) -> None:
    """Wait until this process's queued CUDA work on ``devices`` is done (a no-op on the CPU)."""
    for device in devices:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

