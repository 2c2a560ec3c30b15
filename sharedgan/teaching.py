"""``sharedgan teacher``: train HGAN's teacher on its own, before any run, and say how good it is.

A study that compares runs with and without the teacher term should hold the teacher fixed: train
it once here (``--out T.pt``), then give every run ``--teacher T.pt``. The teacher is trained by
maximum likelihood on the data set (2-D: fresh draws of the mixture; images: the training images
less a held-out part, or all of them when the data set has a test split) and judged on held-out
data: NLL in nats per sample for 2-D data, beside the true mixture's own (the floor: its entropy
estimated on the same samples), and bits per dimension for images.

An image teacher's file also keeps a pool of its own samples (``--pool``, drawn once here): a run
that holds the teacher fixed picks D_T's batches from it, where drawing them from the PixelCNN
would take seconds per batch, pixel by pixel, every round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sharedgan.config import TrainConfig
from sharedgan.math.seeding import derive_seed, stream
from sharedgan.models.teacher import build_teacher, mean_nll
from sharedgan.roles.build import dataset_of
from sharedgan.storage.teacher_file import save_teacher

HELD_OUT_2D = 20_000
HELD_OUT_SHARE = 0.1  # of the images, when the data set has no test split


@dataclass
class TeacherReport:
    nll: float  # held-out, in ``unit``
    unit: str  # "nats" (2-D, per sample) or "bits/dim" (images)
    floor: float | None  # 2-D: the true mixture's NLL of the same held-out samples
    steps: int
    seconds: float
    pool: int = 0  # samples kept in the file
    pool_seconds: float = 0.0


def image_split(data, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) images: the test split if the data set has one, else 10% held out."""
    if data.test_images is not None and len(data.test_images):
        return np.arange(len(data.images)), np.asarray(data.test_images)
    order = torch.randperm(len(data.images), generator=stream(seed, "teacher-split")).numpy()
    cut = max(1, int(len(order) * HELD_OUT_SHARE))
    return np.sort(order[cut:]), np.asarray(data.images[np.sort(order[:cut])])


POOL_CHUNK = 64  # samples drawn at once into the pool


def train_teacher(config: TrainConfig, steps: int, out: Path, progress=None, pool: int = 0,
                  pool_progress=None) -> TeacherReport:
    """Train a teacher for ``config``'s data set with its --teacher-width/components, --lr-teacher,
    --batch-size and --seed; draw ``pool`` samples of it (images only); write it to ``out``
    (atomically) and report its held-out NLL. ``progress(step, loss)`` after each step,
    ``pool_progress(n)`` after each chunk of n pool samples."""
    import time

    from sharedgan.data.images import from_uint8
    torch.set_num_threads(config.threads)
    dataset = dataset_of(config)
    shape = dataset.sample_shape
    net = build_teacher(shape, config.teacher_width, config.teacher_components,
                        derive_seed(config.seed, "init", "teacher", 0))
    opt = torch.optim.Adam(net.parameters(), lr=config.lr_teacher)
    images = config.images
    if images:
        train_idx, held = image_split(dataset.data, config.seed)
        held_out = from_uint8(held)
    else:
        held_out = dataset.sample(HELD_OUT_2D, stream(config.seed, "teacher-held-out"))
    start = time.perf_counter()
    for step in range(steps):
        gen = stream(config.seed, "teacher-real", 0, step)
        if images:
            pick = train_idx[torch.randint(len(train_idx), (config.batch_size,), generator=gen).numpy()]
            batch = from_uint8(dataset.data.images[np.sort(pick)])
        else:
            batch = dataset.sample(config.batch_size, gen)
        for group in opt.param_groups:  # falling linearly to 0, as a run's --lr-decay linear
            group["lr"] = config.lr_teacher * (1.0 - step / steps)
        loss = -net.log_prob(batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step, float(loss.detach()))
    seconds = time.perf_counter() - start
    with torch.no_grad():  # (in chunks: a PixelCNN's activations of thousands of images at once are large)
        nll = sum(float(mean_nll(net, chunk)) * len(chunk) for chunk in held_out.split(256)) / len(held_out)
        floor = None if images else float(-dataset.log_prob(held_out).mean())
    unit = "bits/dim" if images else "nats"
    start = time.perf_counter()
    samples = draw_pool(net, pool, config.seed, pool_progress) if pool else None
    pool_seconds = time.perf_counter() - start if pool else 0.0
    save_teacher(out, net, shape, config.teacher_width, config.teacher_components, config.dataset, nll, unit,
                 samples)
    return TeacherReport(nll, unit, floor, steps, seconds, pool, pool_seconds)


def draw_pool(net: torch.nn.Module, n: int, seed: int, progress=None) -> torch.Tensor:
    """n samples of the teacher, POOL_CHUNK at a time, chunk i from the stream (seed, "teacher-pool", i)."""
    net.eval()
    chunks = []
    with torch.no_grad():
        for i, start in enumerate(range(0, n, POOL_CHUNK)):
            chunks.append(net.sample(min(POOL_CHUNK, n - start), stream(seed, "teacher-pool", i)))
            if progress is not None:
                progress(len(chunks[-1]))
    return torch.cat(chunks)
