"""The teacher file (``sharedgan teacher --out T.pt``), which fixes HGAN's teacher for a study.

A plain tensor dictionary read with ``torch.load(weights_only=True)``, so reading one someone else
made runs no code: its kind, sample shape and sizes, its weights, the held-out NLL it was trained
to, and (an image teacher) a *pool* of its samples, drawn once when it was trained: a PixelCNN draws
a pixel at a time (seconds per batch on a CPU), so a run that holds the teacher fixed gives D_T
batches picked from the pool instead. Whatever does not fit the run that loads it is refused in one
line.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from sharedgan.errors import ConfigError
from sharedgan.models.pixelcnn import to_levels
from sharedgan.models.teacher import kind_of
from sharedgan.storage.files import write_atomic

FORMAT = 1


def save_teacher(path: Path, net: torch.nn.Module, sample_shape: tuple[int, ...], width: int, components: int,
                 dataset: str, nll: float, unit: str, pool: torch.Tensor | None = None) -> None:
    """``pool``: the teacher's own samples (images [P, C, H, W] on its levels), kept as uint8 levels."""
    buffer = io.BytesIO()
    data = {"format": FORMAT, "kind": kind_of(sample_shape), "sample_shape": list(sample_shape), "width": width,
            "components": components, "dataset": dataset, "nll": nll, "unit": unit, "model": net.state_dict()}
    if pool is not None:
        data["pool"] = to_levels(pool).to(torch.uint8)
    torch.save(data, buffer)
    write_atomic(Path(path), buffer.getvalue())


MAX_POOL = 65_536  # samples: a pool claiming more is refused (a tiny file can declare any shape)


def check_pool(pool, sample_shape: tuple[int, ...], where: str) -> torch.Tensor:
    """A pool read from disk (a teacher file or a checkpoint): uint8 levels [P, *sample_shape],
    1 ≤ P ≤ MAX_POOL, dense and contiguous (a saved view can claim a huge shape over one byte of
    storage, or be sparse), returned as it is; anything else is refused in one line."""
    if not (isinstance(pool, torch.Tensor) and pool.layout == torch.strided and pool.dtype == torch.uint8
            and pool.dim() == 1 + len(sample_shape) and 1 <= len(pool) <= MAX_POOL
            and list(pool.shape[1:]) == list(sample_shape) and pool.is_contiguous()):
        shape = tuple(pool.shape) if isinstance(pool, torch.Tensor) else type(pool).__name__
        raise ConfigError(f"{where}: its pool of teacher samples is not dense uint8 levels of shape [P ≤ {MAX_POOL}, "
                          f"{', '.join(map(str, sample_shape))}] (got {shape}); train the teacher again")
    return pool


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
    if "pool" in data:
        if kind_of(sample_shape) != "pixelcnn":
            raise ConfigError(f"--teacher {path} carries a pool of samples, which only an image teacher has; train "
                              f"the teacher again")
        data["pool"] = check_pool(data["pool"], sample_shape, f"--teacher {path}")
    return data
