"""Runs side by side: the settings that differ, how long each took, where each ended, and their
curves on one figure (``sharedgan compare``). Reads run directories only; writes nothing unless
asked to (``write``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sharedgan.config import TrainConfig
from sharedgan.errors import ConfigError
from sharedgan.eval.realness import unreal
from sharedgan.eval.spread import COLLAPSED
from sharedgan.storage.files import write_atomic
from sharedgan.storage.runfile import read_run_file

# settings that say where a run lives, not what it is (never "a difference"), and those the table
# shows for every run anyway
PLACES = ("out", "data_dir", "cache_dir")
ALWAYS = ("engine", "k", "rounds")


@dataclass
class RunSummary:
    path: Path
    config: dict
    data: dict

    @property
    def rounds(self) -> int:
        return int(self.data["attrs"].get("rounds_completed", 0))

    @property
    def train_seconds(self) -> float:
        return float(self.data["attrs"].get("train_seconds", float("nan")))

    def final(self) -> dict[str, str]:
        """The last evaluation, as table cells."""
        d = self.data
        if not len(d.get("eval/round", [])):
            return {}
        if "eval/modes_covered" in d:
            modes = int(len(d["data/centers"]))
            return {"modes": f"{int(d['eval/modes_covered'][-1])}/{modes}",
                    "high quality": f"{d['eval/high_quality'][-1]:.1%}", "KL": f"{d['eval/kl_uniform'][-1]:.3f}"}
        spread = d.get("eval/spread")
        if spread is None or not len(spread):
            return {}
        last = spread[-1]
        cells = {"collapsed": f"{int((last < COLLAPSED).sum())}/{len(last)}", "min spread": f"{np.nanmin(last):.2f}"}
        precision = d.get("eval/precision")
        if precision is not None and len(precision) and np.isfinite(precision[-1]).any():
            cells["unreal"] = f"{len(unreal(precision[-1]))}/{len(last)}"
            cells["precision"] = f"{d['eval/mixture_precision'][-1]:.2f}"
        return cells


def find_runs(paths: list[str]) -> list[Path]:
    """Run directories from the paths given: a run itself, or a folder of runs (a bench's ``--out``
    holds them in ``runs/``; any folder whose sub-folders are runs)."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if (path / "config.json").is_file():
            found.append(path)
            continue
        inner = path / "runs" if (path / "runs").is_dir() else path
        runs = sorted(p for p in inner.iterdir() if (p / "config.json").is_file()) if inner.is_dir() else []
        if not runs:
            raise ConfigError(f"{path} is neither a sharedgan run (no config.json) nor a folder of runs; "
                              "pass run directories or a bench's --out")
        found.extend(runs)
    return found


def load(path: Path) -> RunSummary:
    config = TrainConfig.from_file(path / "config.json", run=True).validate(reading=True)  # as strictly as a launch's
    try:
        data = read_run_file(path / "run.h5")
    except (OSError, ValueError, KeyError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path} has no readable run.h5 ({why}); it cannot be compared") from None
    return RunSummary(path, json.loads(config.to_json()), data)


def differing(runs: list[RunSummary]) -> list[str]:
    """The settings whose values are not the same in every run, in the config's field order."""
    names = list(runs[0].config)
    return [n for n in names if n not in PLACES + ALWAYS and len({json.dumps(r.config.get(n)) for r in runs}) > 1]


def label(run: RunSummary, keys: list[str]) -> str:
    """A run's short name in the figure: its folder and the first settings that tell it apart."""
    return " ".join([run.path.name] + [f"{k}={run.config[k]}" for k in keys[:2]])


def table(runs: list[RunSummary]) -> str:
    """The Markdown table: one row per run."""
    keys = differing(runs)
    finals = [r.final() for r in runs]
    metrics = list(dict.fromkeys(k for f in finals for k in f))
    head = ["run", *keys, "engine", "K", "rounds", "train s", "s/round", *metrics]  # rounds: completed
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, final in zip(runs, finals):
        per_round = run.train_seconds / run.rounds if run.rounds else float("nan")
        cells = [run.path.name, *(str(run.config.get(k)) for k in keys), str(run.config["engine"]),
                 str(run.config["k"]), str(run.rounds), f"{run.train_seconds:.1f}", f"{per_round:.4f}",
                 *(final.get(m, "—") for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(runs: list[RunSummary], path: Path) -> None:
    """Losses, β and the evaluation metric of every run on one figure (one colour per run)."""
    from sharedgan.plots import plt
    keys = differing(runs)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    colors = plt.cm.tab10(np.linspace(0, 1, max(len(runs), 2)))
    for run, color in zip(runs, colors):
        d, name = run.data, label(run, keys)
        x = np.arange(1, run.rounds + 1)
        axes[0].plot(x, d["loss/discriminator"], color=color, lw=0.8, label=name)
        axes[1].plot(x, np.nanmean(d["loss/generator"], axis=1) if run.rounds else [], color=color, lw=0.8)
        axes[2].plot(x, np.nanmean(d["beta"], axis=1) if run.rounds else [], color=color, lw=0.8)
        rounds = d.get("eval/round", np.zeros(0)) + 1
        if "eval/high_quality" in d:
            axes[3].plot(rounds, d["eval/high_quality"], "o-", color=color, ms=3, lw=0.8)
            axes[3].set_title("high-quality share")
        elif "eval/spread" in d and len(d["eval/spread"]):
            axes[3].plot(rounds, np.nanmin(d["eval/spread"], axis=1), "o-", color=color, ms=3, lw=0.8)
            axes[3].set_title("lowest spread of a generator")
    for ax, title in zip(axes[:3], ("D loss −J^D", "mean generator loss J^G", "mean β")):
        ax.set_title(title)
    for ax in axes:
        ax.set_xlabel("round")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(runs: list[RunSummary], out: Path) -> list[Path]:
    """compare.md (the table) and compare.png (the curves) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "compare.md", "# Runs compared\n\n" + table(runs) + "\n")
    figure(runs, out / "compare.png")
    return [out / "compare.md", out / "compare.png"]
