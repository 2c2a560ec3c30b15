"""TensorBoard, optional: a mirror of run.h5 in ``RUN/tensorboard/`` (``pip install 'sharedgan[tensorboard]'``).

run.h5 stays the source of truth; the mirror writes what it holds, under the same names: every
per-round series (a [R, K] series as one tag per generator, ``loss/generator/3``), every
evaluation metric (the mixture's, and each generator's where there is one), the sample grid of
an image run (one row per generator) and the scatter of a 2-D run at every evaluation, and the
run's settings as hparams. The step of a tag is the round, 0-based, as in run.h5.

During training the runner (the single writer of run.h5) is the single writer here too. A
resumed run opens a new event file whose ``purge_step`` is the first round it trains: TensorBoard
drops what an earlier part wrote from that round on, so no step is shown twice.
``sharedgan tensorboard RUN`` writes the event files of a finished run from its run.h5.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from sharedgan.plots import draw_mixture, image_grid

INSTALL_HINT = "pip install 'sharedgan[tensorboard]'"
FOLDER = "tensorboard"
MIXTURE_METRICS = ("modes_covered", "modes_covered_lenient", "high_quality", "kl_uniform",  # 2-D runs
                   "mixture_precision", "mixture_recall", "mixture_density", "mixture_coverage")  # images
GENERATOR_METRICS = ("spread", "precision", "recall", "density", "coverage")  # [E, K]: one tag per generator


def available() -> bool:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or installed broken (a protobuf mismatch): no mirror
        return False
    return True


def scalar_tags(name: str, values: np.ndarray):
    """(tag, column) of a series: itself for [R], one tag per generator for [R, K]."""
    if values.ndim == 1:
        return [(name, None)]
    return [(f"{name}/{k}", k) for k in range(values.shape[1])]


class Mirror:
    """Writes what the recorder records, as it records it: rounds as they complete (each round
    once every report of it is in), evaluations as they are made."""

    def __init__(self, run_dir: Path, config: dict, first_round: int = 0):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(Path(run_dir) / FOLDER), purge_step=first_round if first_round else None)
        self.next_round = first_round  # the first round not written yet
        self._hparams(config)

    def _hparams(self, config: dict) -> None:
        from torch.utils.tensorboard.summary import hparams
        shown = {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))}
        shown.update({k: str(v) for k, v in config.items() if v is None})
        for summary in hparams(shown, {}):
            self.writer.file_writer.add_summary(summary)

    def rounds(self, series: dict[str, np.ndarray], upto: int) -> None:
        """Every series' rounds from the last written up to ``upto`` (exclusive); NaN is skipped.
        A round is one event holding every tag's value: one event a tag made the mirror cost 12% of
        a ring8 K = 8 round, this costs 3% (docs/results.md)."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        tags = [(name, values, scalar_tags(name, values)) for name, values in series.items()]
        for n in range(self.next_round, upto):
            entries = []
            for name, values, named in tags:
                if n >= len(values):
                    continue
                row = values[n]
                for tag, k in named:
                    value = row if k is None else row[k]
                    if np.isfinite(value):
                        entries.append(Summary.Value(tag=tag, simple_value=float(value)))
            if entries:
                self.writer.file_writer.add_summary(Summary(value=entries), n)
        self.next_round = max(self.next_round, upto)

    def evaluation(self, n: int, metrics: dict, images: np.ndarray | None = None, samples=None) -> None:
        """An evaluation after round ``n``: its metrics, and the image grid ([K, g, H, W, C]) or the
        2-D samples (``(samples, generator ids, mode centres)``) it judged."""
        for key in MIXTURE_METRICS:
            if key in metrics and np.isfinite(metrics[key]):
                self.writer.add_scalar(f"eval/{key}", float(metrics[key]), n)
        for key in GENERATOR_METRICS:
            if key in metrics:
                for k, value in enumerate(np.asarray(metrics[key])):
                    if np.isfinite(value):
                        self.writer.add_scalar(f"eval/{key}/{k}", float(value), n)
        if images is not None:
            K, g = images.shape[:2]
            grid = image_grid(images.reshape(K * g, *images.shape[2:]), columns=g)
            self.writer.add_image("eval/samples", grid, n, dataformats="HWC")
        if samples is not None:
            self.writer.add_figure("eval/samples", _scatter(*samples, n), n)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _scatter(samples: np.ndarray, which: np.ndarray, centers: np.ndarray, n: int):
    from sharedgan.plots import plt
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_mixture(ax, centers, samples, which, int(which.max()) + 1 if len(which) else 1, f"round {n + 1}")
    fig.tight_layout()
    return fig  # (add_figure closes it)


def write_run(run_dir: Path, data: dict) -> Path:
    """The event files of a run from its run.h5 (``data``: as ``read_run_file`` returns it),
    replacing any the run had: what ``sharedgan tensorboard RUN`` does."""
    folder = Path(run_dir) / FOLDER
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OSError(f"{folder} is not a folder of this run's; remove it first")
    if folder.exists():
        shutil.rmtree(folder)
    mirror = Mirror(run_dir, data["config"])
    series = {name: values for name, values in data.items()
              if isinstance(values, np.ndarray) and (name.startswith(("loss/", "term/", "time/")) or name == "beta")}
    mirror.rounds(series, int(data["attrs"].get("rounds_completed", 0)))
    for i, n in enumerate(data.get("eval/round", [])):
        metrics = {key: data[f"eval/{key}"][i] for key in MIXTURE_METRICS + GENERATOR_METRICS if f"eval/{key}" in data}
        images = data["eval/images"][i] if "eval/images" in data else None
        samples = ((data["eval/samples"][i], data["eval/generator"][i], data["data/centers"])
                   if "eval/samples" in data else None)
        mirror.evaluation(int(n), metrics, images, samples)
    mirror.close()
    return folder
