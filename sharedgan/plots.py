"""Pictures of a run, drawn from run.h5: samples by generator, loss and β curves (and each
generator's spread for image runs), evolution."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sharedgan.eval.realness import UNREAL  # noqa: E402
from sharedgan.eval.spread import COLLAPSED  # noqa: E402
from sharedgan.storage.runfile import read_run_file  # noqa: E402

matplotlib.use("Agg")


def _colors(k: int):
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(k)]


def _scatter(ax, data: dict, index: int, title: str) -> None:
    draw_mixture(ax, data["data/centers"], data["eval/samples"][index], data["eval/generator"][index],
            int(data["attrs"]["k"]), title)


def scatter_samples(samples: np.ndarray, which: np.ndarray, centers: np.ndarray, k: int, path: Path) -> Path:
    """2-D samples coloured by generator over the real modes, as a PNG."""
    fig, ax = plt.subplots(figsize=(6, 6))
    draw_mixture(ax, centers, samples, which, k, f"{len(samples)} samples (rings: real modes)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def draw_mixture(ax, centers, samples, which, k: int, title: str) -> None:
    """A 2-D scatter of samples coloured by generator over rings at the true modes, on ``ax``."""
    ax.scatter(centers[:, 0], centers[:, 1], s=120, facecolors="none", edgecolors="0.6", linewidths=1, zorder=1)
    for g, color in enumerate(_colors(k)):
        pts = samples[which == g]
        ax.scatter(pts[:, 0], pts[:, 1], s=3, color=color, label=f"G{g}", zorder=2)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    span = np.abs(centers).max() * 1.5 + 0.5
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)


def plot_run(run_dir: Path) -> list[Path]:
    run_dir = Path(run_dir)
    data = read_run_file(run_dir / "run.h5")
    written = []
    E = len(data["eval/round"])
    if E and "eval/images" in data:
        written += _plot_images(run_dir, data)
    elif E:
        fig, ax = plt.subplots(figsize=(6, 6))
        n = int(data["eval/round"][-1])
        title = (f"round {n + 1}: {data['eval/modes_covered'][-1]}/{len(data['data/centers'])} modes, "
                 f"{data['eval/high_quality'][-1]:.1%} high quality (rings: real modes)")
        _scatter(ax, data, E - 1, title)
        if int(data["attrs"]["k"]) <= 12:
            ax.legend(markerscale=4, fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(run_dir / "samples.png", dpi=120)
        plt.close(fig)
        written.append(run_dir / "samples.png")

        shown = np.unique(np.linspace(0, E - 1, min(E, 8)).round().astype(int))
        cols = min(4, len(shown))
        rows = math.ceil(len(shown) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, i in zip(axes.flat, shown):
            ax.set_axis_on()
            _scatter(ax, data, i, f"round {int(data['eval/round'][i]) + 1}: "
                                  f"{data['eval/modes_covered'][i]} modes, {data['eval/high_quality'][i]:.0%} hq")
        fig.tight_layout()
        fig.savefig(run_dir / "evolution.png", dpi=100)
        plt.close(fig)
        written.append(run_dir / "evolution.png")

    R = len(data["loss/discriminator"])
    if R:
        x = np.arange(1, R + 1)
        spread = data.get("eval/spread")
        spread = spread if spread is not None and len(spread) and np.isfinite(spread).any() else None
        precision = data.get("eval/precision")
        precision = precision if precision is not None and len(precision) and np.isfinite(precision).any() else None
        panels = 3 + (spread is not None) + (precision is not None)
        fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
        axes[0].plot(x, data["loss/discriminator"], label="D: −J^D")
        if np.isfinite(data["loss/classifier"]).any():
            axes[0].plot(x, data["loss/classifier"], label="C: −J^C (per head)")
        axes[0].set_title("discriminator and classifier loss")
        for g, color in enumerate(_colors(data["loss/generator"].shape[1])):
            axes[1].plot(x, data["loss/generator"][:, g], color=color, lw=0.8, label=f"G{g}")
            axes[2].plot(x, data["beta"][:, g], color=color, lw=0.8)
        axes[1].set_title("generator loss J^{G_k}")
        axes[2].set_title("β_k")
        if spread is not None:
            for g, color in enumerate(_colors(spread.shape[1])):
                axes[3].plot(data["eval/round"] + 1, spread[:, g], "o-", color=color, lw=0.8, ms=3)
            axes[3].axhline(COLLAPSED, color="k", ls="--", lw=0.8, label=f"collapsed below {COLLAPSED:g}")
            axes[3].set_ylim(bottom=0)
            axes[3].set_title("spread per generator (1: as varied as real images)")
            axes[3].legend(fontsize=8)
        if precision is not None:
            _plot_precision(axes[-1], data, precision)
        for ax in axes:
            ax.set_xlabel("round")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(run_dir / "curves.png", dpi=100)
        plt.close(fig)
        written.append(run_dir / "curves.png")
    return written


def _plot_precision(ax, data: dict, precision: np.ndarray) -> None:
    """Each generator's precision (eval.realness), the mixture's, what real held-out images score,
    and the line below which a generator counts as unreal."""
    rounds = data["eval/round"] + 1
    for g, color in enumerate(_colors(precision.shape[1])):
        ax.plot(rounds, precision[:, g], "o-", color=color, lw=0.8, ms=3)
    if "eval/mixture_precision" in data:
        ax.plot(rounds, data["eval/mixture_precision"], "k-", lw=1.5, label="mixture")
    real = data["attrs"].get("realness_real_precision")
    if real is not None:
        ax.axhline(float(real), color="g", ls=":", lw=1, label=f"real held-out images ({float(real):.2f})")
    ax.axhline(UNREAL, color="k", ls="--", lw=0.8, label=f"unreal below {UNREAL:g}")
    ax.set_ylim(0, 1.02)
    ax.set_title("precision per generator (realness)")
    ax.legend(fontsize=8)


def _plot_images(run_dir: Path, data: dict) -> list[Path]:
    """samples.png: the last evaluation, one row per generator; evolution.png: each generator's
    first image at every evaluation (rows: generators, columns: evaluations)."""
    images = data["eval/images"]  # [E, K, g, H, W, C]
    E, K, g = images.shape[:3]
    save_image_grid(images[-1].reshape(K * g, *images.shape[3:]), run_dir / "samples.png", columns=g)
    shown = np.unique(np.linspace(0, E - 1, min(E, 12)).round().astype(int))
    evolution = images[shown][:, :, 0].transpose(1, 0, 2, 3, 4).reshape(K * len(shown), *images.shape[3:])
    save_image_grid(evolution, run_dir / "evolution.png", columns=len(shown))
    return [run_dir / "samples.png", run_dir / "evolution.png"]


def image_grid(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
    """uint8 images [N, H, W, C] tiled row by row, ``columns`` per row, on a white background."""
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / columns))
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = images[i]
    return grid


def save_image_grid(images: np.ndarray, target, columns: int, scale: int = 2) -> None:
    """Write ``image_grid`` as a PNG to a path or a file object, each pixel ``scale`` × ``scale``
    (small images stay visible)."""
    grid = image_grid(images, columns)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    plt.imsave(target, grid[..., 0] if grid.shape[2] == 1 else grid, cmap="gray" if grid.shape[2] == 1 else None,
               vmin=0, vmax=255, format="png")

