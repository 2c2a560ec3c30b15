"""The teacher file (``sharedgan teacher --out T.pt``), which fixes HGAN's teacher for a study.

A plain tensor dictionary read with ``torch.load(weights_only=True)``, so reading one someone else
made runs no code: its kind, sample shape and sizes, its weights, and the held-out NLL it was
trained to. Whatever does not fit the run that loads it is refused in one line.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from sharedgan.errors import ConfigError
from sharedgan.models.teacher import kind_of
from sharedgan.storage.files import write_atomic

FORMAT = 1


def save_teacher(path: Path, net: torch.nn.Module, sample_shape: tuple[int, ...], width: int, components: int,
                 dataset: str, nll: float, unit: str) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "kind": kind_of(sample_shape), "sample_shape": list(sample_shape), "width": width,
                "components": components, "dataset": dataset, "nll": nll, "unit": unit,
                "model": net.state_dict()}, buffer)
    write_atomic(Path(path), buffer.getvalue())


def read_teacher(path: str | Path, sample_shape: tuple[int, ...], width: int, components: int) -> dict:
    """A teacher file, checked against the run that loads it (one-line errors that say what to pass)."""
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"--teacher {path}: no such file; train one with 'sharedgan teacher --out {path}'") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ConfigError(f"--teacher {path} is not a teacher file ({type(exc).__name__}); train one with "
                          f"'sharedgan teacher --out PATH'") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "model" not in data:
        raise ConfigError(f"--teacher {path} is not a teacher file; train one with 'sharedgan teacher --out PATH'")
    if list(data.get("sample_shape", [])) != list(sample_shape):
        raise ConfigError(f"--teacher {path} models samples of shape {tuple(data.get('sample_shape', []))}, this run's "
                          f"are {tuple(sample_shape)}: train a teacher on this data set")
    expected = {"width": width} if kind_of(sample_shape) == "pixelcnn" else {"width": width, "components": components}
    for key, value in expected.items():
        if data.get(key) != value:
            raise ConfigError(f"--teacher {path} was trained with --teacher-{key} {data.get(key)}; pass the same "
                              f"(this run has {value})")
    return data
