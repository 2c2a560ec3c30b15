"""Class coverage for image runs: the image analogue of the 2-D mode table.

A small CNN, trained once on the data set's own labels and cached beside its HDF5 cache, labels
every generated image. From those labels: the histogram of predicted classes, the classes covered
(a class is covered when it holds ≥ 1% of the samples, as a mode is in ``eval.modes``), KL(p̂ ‖
uniform), the share of *confident* samples (top class probability ≥ 0.5, the analogue of
"high quality") and the generator × class table.

A classifier that cannot tell real images apart cannot judge fakes: its accuracy on held-out real
images (the data set's test split, or 10% of the training images kept aside) is stored with it,
and coverage is refused when it is below ``MIN_ACCURACY``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sharedgan.data.images import ImageData, from_uint8
from sharedgan.errors import ConfigError
from sharedgan.eval.modes import COVER_FRACTION, histogram_coverage
from sharedgan.math.seeding import stream
from sharedgan.storage.files import write_atomic

FORMAT = 1


MIN_ACCURACY = 0.8  # below this, a classifier's labels say more about it than about the samples


CONFIDENT = 0.5


BATCH = 128


HELD_OUT_FRACTION = 0.1


class CoverageRefused(ConfigError):
    """Coverage cannot be reported honestly (no labels, or a classifier that is not good enough)."""


class ClassNet(nn.Module):
    """Three stages of two 3×3 convolutions with batch norm, then global average pooling: small
    enough to train on a CPU. (Its accuracy on MNIST and CIFAR-10 has not been measured yet; eval
    prints it every time, and the gate below refuses a weak one.)"""

    def __init__(self, channels: int, num_classes: int, width: int = 32):
        super().__init__()
        layers, c_in = [], channels
        for stage in range(3):
            c_out = width * 2 ** stage
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                           nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def embed(self, x):
        """The last hidden layer [N, 4·width]: the feature space of ``eval.realness``."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.head(self.embed(x))


@dataclass
class TrainedClassifier:
    net: ClassNet
    accuracy: float  # on held-out real images
    held_out: int  # how many
    classes: list[str]
    epochs: int
    seed: int = 0  # of the split between training and held-out images


def _splits(data: ImageData, seed: int):
    """((images, labels, indices) to train on, (images, labels, indices) held out): labelled
    images only; the data set's test split where it has one, else 10% of its images."""
    labelled = np.flatnonzero(data.labels >= 0)
    if data.test_images is not None and data.test_labels is not None and (data.test_labels >= 0).any():
        return ((data.images, data.labels, labelled),
                (data.test_images, data.test_labels, np.flatnonzero(data.test_labels >= 0)))
    order = labelled[torch.randperm(len(labelled), generator=stream(seed, "coverage-split")).numpy()]
    keep = max(1, int(len(order) * HELD_OUT_FRACTION))
    return (data.images, data.labels, np.sort(order[keep:])), (data.images, data.labels, np.sort(order[:keep]))


def _shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Random translation by up to ``pixels`` (pad with the border, crop): cheap augmentation that
    suits digits and objects alike (a flip would not suit digits)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    dy, dx = torch.randint(2 * pixels + 1, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w]


def train_classifier(data: ImageData, epochs: int = 10, seed: int = 0,
                     on_step: Callable[[int, int], None] | None = None) -> TrainedClassifier:
    """Train the coverage classifier on ``data``'s labelled images and measure it on held-out ones.
    ``on_step(done, total)`` reports progress in batches."""
    if not data.classes or not (data.labels >= 0).any():
        raise CoverageRefused(f"{data.name} has no class labels: class coverage needs a labelled data set "
                              "(an .h5/.npz with 'labels', or a folder with one sub-folder per class)")
    (train_x, train_y, train_idx), (test_x, test_y, test_idx) = _splits(data, seed)
    torch.manual_seed(seed)  # the initial weights
    net = ClassNet(data.shape[2], len(data.classes))
    # Small data sets get smaller batches: ~30 steps an epoch let batch norm's running statistics settle.
    batch = min(BATCH, max(16, len(train_idx) // 30))
    total, done = epochs * -(-len(train_idx) // batch), 0
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(1, total))
    gen = stream(seed, "coverage-train")
    net.train()
    for _ in range(epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        for start in range(0, len(order), batch):
            idx = np.sort(order[start:start + batch])  # sorted: the mapped file reads in order
            x = _shift(from_uint8(train_x[idx]), gen)
            loss = F.cross_entropy(net(x), torch.from_numpy(train_y[idx]).long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            if on_step:
                on_step(done, total)
    net.eval()
    predicted = predict(net, test_x[test_idx]).argmax(dim=1).numpy()
    accuracy = float((predicted == test_y[test_idx]).mean())
    return TrainedClassifier(net, accuracy, len(test_idx), list(data.classes), epochs, seed)


@torch.no_grad()
def predict(net: ClassNet, images) -> torch.Tensor:
    """Class probabilities [N, classes] of uint8 [N, H, W, C] images or float [N, C, H, W] in [−1, 1]."""
    net.eval()
    out = []
    for start in range(0, len(images), 512):
        chunk = images[start:start + 512]
        x = (from_uint8(chunk) if isinstance(chunk, np.ndarray) and chunk.dtype == np.uint8
             else torch.as_tensor(chunk).float())
        out.append(F.softmax(net(x), dim=1))
    return torch.cat(out) if out else torch.empty(0, net.head.out_features)


# ---- the cache ------------------------------------------------------------------------------------
def cache_path(data: ImageData, epochs: int, seed: int):
    return data.cache.with_name(f"{data.cache.stem}.classifier-e{epochs}-s{seed}.pt")


def classifier_for(data: ImageData, epochs: int = 10, seed: int = 0,
                   on_step: Callable[[int, int], None] | None = None,
                   cache_folder: Path | None = None) -> tuple[TrainedClassifier, bool]:
    """The cached classifier for ``data`` (trained and cached first if missing or made from other
    data). Returns (classifier, whether it was trained now). It is cached beside the data cache,
    or, with ``cache_folder`` (what only reads a run: it writes nowhere a run names), there; both
    places are read."""
    paths = [cache_path(data, epochs, seed)]
    if cache_folder is not None:  # named by a hash of the data's checksum: nothing a file says goes into a path
        key = hashlib.sha256(data.source_id.encode()).hexdigest()[:32]
        paths.append(Path(cache_folder) / f"classifier-{key}-e{epochs}-s{seed}.pt")
    for path in paths:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("format") == FORMAT and saved.get("source_id") == data.source_id:
                net = ClassNet(data.shape[2], len(saved["classes"]))
                net.load_state_dict(saved["model"])
                return (TrainedClassifier(net, saved["accuracy"], saved["held_out"], saved["classes"], epochs,
                                          seed), False)
        except (OSError, RuntimeError, KeyError, ValueError, AttributeError, EOFError, pickle.UnpicklingError):
            pass  # missing, damaged or stale: train a new one
    trained = train_classifier(data, epochs, seed, on_step)
    path = paths[-1]
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "source_id": data.source_id, "model": trained.net.state_dict(),
                "accuracy": trained.accuracy, "held_out": trained.held_out, "classes": trained.classes}, buf)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, buf.getbuffer())
    except OSError:
        pass  # an unwritable cache folder costs a retrain next time, nothing else
    return trained, True


# ---- the report -----------------------------------------------------------------------------------
@dataclass
class CoverageReport:
    num_samples: int
    classes: list[str]
    classes_covered: int
    confident: float  # fraction of samples whose top class probability ≥ CONFIDENT
    kl_uniform: float
    class_histogram: np.ndarray  # [classes] counts of predicted classes
    generator_table: np.ndarray  # [K, classes]
    accuracy: float  # the classifier's, on held-out real images
    held_out: int

    def summary(self) -> dict:
        return {"classes_covered": self.classes_covered, "num_classes": len(self.classes),
                "confident": self.confident, "kl_uniform": self.kl_uniform, "classifier_accuracy": self.accuracy}


def _check_accuracy(classifier: TrainedClassifier, min_accuracy: float, what: str) -> None:
    if classifier.accuracy < min_accuracy:
        raise CoverageRefused(
            f"{what} not reported: the classifier is right on {classifier.accuracy:.1%} of "
            f"{classifier.held_out} held-out real images, below the {min_accuracy:.0%} needed; "
            f"train it longer (--classifier-epochs, now {classifier.epochs})")


def realness_judge(classifier: TrainedClassifier, data: ImageData, min_accuracy: float = MIN_ACCURACY):
    """``eval.realness``'s judge in this classifier's features: the balls around its training
    images, the baseline from the real images it was measured on (never trained on)."""
    from sharedgan.eval.realness import K_NEIGHBOURS, RealnessJudge
    _check_accuracy(classifier, min_accuracy, "realness")
    (train_x, _, train_idx), (test_x, _, test_idx) = _splits(data, classifier.seed)
    if len(train_idx) <= K_NEIGHBOURS:
        raise CoverageRefused(f"realness needs more than k = {K_NEIGHBOURS} real reference images; "
                              f"the classifier was trained on {len(train_idx)}")
    classifier.net.eval()
    return RealnessJudge(classifier.net.embed, _Rows(train_x, train_idx), test_x[test_idx], classifier.seed)


class _Rows:
    """Rows ``index`` of a mapped image array, indexable like one (read in file order)."""

    def __init__(self, images, index: np.ndarray):
        self.images, self.index = images, index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, rows):
        return self.images[np.sort(self.index[rows])]


def class_coverage(classifier: TrainedClassifier, samples: torch.Tensor, generator_ids: torch.Tensor,
                   num_generators: int, min_accuracy: float = MIN_ACCURACY) -> CoverageReport:
    """Coverage of ``samples`` (float [N, C, H, W] in [−1, 1]) made by ``generator_ids`` [N]."""
    _check_accuracy(classifier, min_accuracy, "class coverage")
    probs = predict(classifier.net, samples)
    top, label = probs.max(dim=1)
    num_classes = len(classifier.classes)
    hist = np.bincount(label.numpy(), minlength=num_classes)
    covered, kl = histogram_coverage(hist)
    table = np.zeros((num_generators, num_classes), dtype=np.int64)
    np.add.at(table, (generator_ids.long().numpy(), label.numpy()), 1)
    confident = float((top >= CONFIDENT).float().mean()) if len(samples) else 0.0
    return CoverageReport(len(samples), classifier.classes, covered, confident, kl, hist, table,
                          classifier.accuracy, classifier.held_out)


def format_coverage(report: CoverageReport) -> str:
    names = [name[:6] for name in report.classes]
    lines = [
        f"classifier accuracy {report.accuracy:.1%} on {report.held_out} held-out real images",
        f"samples             {report.num_samples}",
        f"classes covered     {report.classes_covered}/{len(report.classes)} (≥{COVER_FRACTION:.0%} of samples)",
        f"confident           {report.confident:.1%} (top class probability ≥ {CONFIDENT:g})",
        f"KL(p̂ ‖ uniform)     {report.kl_uniform:.4f}",
        "",
        "generator × predicted class (counts)",
        "gen  " + " ".join(f"{name:>6s}" for name in names),
    ]
    for k, row in enumerate(report.generator_table):
        lines.append(f"{k:>3d}  " + " ".join(f"{int(v):>6d}" for v in row))
    lines.append("all  " + " ".join(f"{int(v):>6d}" for v in report.class_histogram))
    return "\n".join(lines)

