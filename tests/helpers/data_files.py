"""Tiny data files in exactly the official formats (CIFAR-10 Python batches, MNIST IDX), and the
documented formats of a user's own data, for tests that must not need the network."""
from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batch(n: int, seed: int) -> bytes:
    """One batch as the official archive pickles it: {b'data': uint8 [n, 3072], b'labels': [n], ...}."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    return pickle.dumps({b"batch_label": b"testing batch", b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, protocol=2)


def cifar_folder(root: Path, n: int = 6) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate(CIFAR_BATCHES):
        (folder / name).write_bytes(cifar_batch(n, i))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}, protocol=2))
    return folder


def cifar_archive(root: Path, n: int = 6, drop: str | None = None) -> Path:
    """cifar-10-python.tar.gz with the official member names (optionally one batch missing)."""
    root.mkdir(parents=True, exist_ok=True)
    src = cifar_folder(root / "src", n)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in CIFAR_BATCHES + ["batches.meta"]:
            if name != drop:
                tar.add(src / name, arcname=f"cifar-10-batches-py/{name}")
    return archive


def idx(array: np.ndarray) -> bytes:
    magic = {3: 2051, 1: 2049}[array.ndim]
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def mnist_files(root: Path, n: int = 12, gz: bool = True, labels_for: int | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, labels_for or n, dtype=np.uint8)
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            raw = idx(array)
            name = f"{prefix}-{kind}"
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (root / name).write_bytes(raw)
    return root


def learnable_images(n: int, classes: int, size: int = 32, channels: int = 3, seed: int = 0):
    """Labelled images a small CNN can learn: class c is stripes of period 2(c + 1) pixels at a
    random phase, on noise (a texture, so it survives translation and pooling). Returns
    (uint8 [n, size, size, channels], int64 labels [n])."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    noise = rng.integers(0, 60, (n, size, size, channels), dtype=np.int64)
    cols = np.arange(size)
    images = np.empty_like(noise)
    for i, c in enumerate(labels):
        period = 2 * (c + 1)
        stripes = ((cols + rng.integers(period)) % period) < period // 2
        images[i] = noise[i] + 180 * stripes[None, :, None]
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)
