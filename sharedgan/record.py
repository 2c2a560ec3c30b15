"""The run record: per-round losses and timings, evaluations, progress, and ``run.h5``.

One object in the main process (the sequential engine itself, or the parallel engine's runner)
receives every role's per-round numbers and is the only writer of ``run.h5``.

run.h5, schema version 2 (every array's first axis is the round, 0-based; NaN where not recorded)
--------------------------------------------------------------------------------------------------
attributes   schema_version, status (running | complete | interrupted | failed), error, config (JSON),
             engine, k, rounds_planned, rounds_completed, startup_seconds, train_seconds,
             eval_seconds, threads_per_process, software versions (sharedgan, python, torch, numpy,
             pyzmq, libzmq, h5py), host, platform, cpu_count, started_at, finished_at
loss/discriminator  [R]     −J^D, mean over D's K updates of the round
loss/classifier     [R]     −J^C head losses, mean over C's K updates (NaN when K = 1)
loss/generator      [R, K]  J^{G_k} = D term + β_k · C term
beta                [R, K]  β_k
term/discriminator  [R, K]  D's term of J^{G_k}: E[1 − min(d, logit t)]
term/classifier     [R, K]  C's term without β: E[softplus(c_k)]
time/round          [R]     wall seconds from the end of the previous round to the end of this one
time/<role>/compute, time/<role>/wait, time/<role>/copy   [R, K] for generator, [R] for discriminator and
                    classifier: seconds of the round that role spent computing, waiting for a signal,
                    and copying into or out of slots (the sequential engine never waits)
eval/round          [E]     rounds after which an evaluation ran (0-based)
eval/train_seconds  [E]     training wall time up to that evaluation, evaluation time excluded
eval/seconds        [E]     time the evaluation took (fresh samples + metrics)
eval/modes_covered, eval/modes_covered_lenient, eval/high_quality, eval/kl_uniform   [E]
eval/mode_histogram [E, M]  high-quality samples per mode
eval/generator_table [E, K, M+1]  high-quality samples per (generator, mode); last column low quality
eval/samples        [E, N, *sample_shape] float32, eval/generator [E, N] int16: the evaluated samples
data/centers        [M, *sample_shape], attribute std
                    (the eval/ arrays from modes_covered to data/centers: 2-D runs)
eval/images         [E, K, g, H, W, C] uint8: image runs, each generator's first g ≤ 8 evaluated samples
eval/spread         [E, K]  image runs: each generator's spread (``diversity``: near 0 when collapsed);
                    absent from files written before it existed (read as NaN)
attributes          data_name, data_cache: image runs, the data set and its HDF5 cache
events/round, events/seconds, events/role, events/what   [V]  what happened besides training: a
                    resume, a role lost and restarted (round: the last round completed before it;
                    seconds: since this process started); strings are UTF-8
A resumed run continues the same file: rounds up to the checkpoint come from the earlier part,
train_seconds adds up every part.
"""
from __future__ import annotations

import io
import json
import logging
import os
import platform
import socket
import sys
import time
from pathlib import Path

import click
import h5py
import numpy as np
import torch

from .checkpoint import write_atomic
from .config import TrainConfig
from .data import GaussianMixture
from .diversity import collapsed, generator_spread, reference_spread
from .metrics import ModeReport, mix, mixture_assignment, mode_report

SCHEMA_VERSION = 2
GRID_PER_GENERATOR = 8
TIME_PARTS = ("compute", "wait", "copy")  # images per generator kept from each evaluation of an image run


def software_versions() -> dict:
    import zmq
    from . import __version__
    return {"sharedgan": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": np.__version__, "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "h5py": h5py.__version__}


class RunRecorder:
    def __init__(self, config: TrainConfig, run_dir: Path, dataset: GaussianMixture, progress: bool = False):
        self.config, self.run_dir, self.dataset = config, Path(run_dir), dataset
        R, K = config.rounds, config.k
        # per-round series grow by doubling: a run planned for 10^8 rounds must not allocate them all
        cap = min(R, 1024)
        nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
        self.series = {
            "loss/discriminator": nan(cap), "loss/classifier": nan(cap), "loss/generator": nan(cap, K),
            "beta": nan(cap, K), "term/discriminator": nan(cap, K), "term/classifier": nan(cap, K),
            "time/round": nan(cap),
            **{f"time/{role}/{part}": nan(cap, K) if role == "generator" else nan(cap)
               for role in ("generator", "discriminator", "classifier") for part in TIME_PARTS},
        }
        self.evals: list[dict] = []
        self.events: list[dict] = []
        self.prior_train_seconds = 0.0  # training time of the earlier parts of a resumed run
        self.reports_needed = len(config.roles)
        self.served: dict[str, int] = {}  # engine async: slots each D and C process served (this session)
        self._reports: dict[int, int] = {}
        self.rounds_completed = 0
        self.started_at = time.time()
        self._t_start = time.perf_counter()
        self._t_train = None
        self._t_last = None
        self._t_end = None
        self.startup_seconds = float("nan")
        self.eval_seconds = 0.0
        self._reference_spread = None  # image runs: the real images' spread, computed at the first evaluation
        self.status, self.error = "running", ""
        self._bar = None
        self._bar_cm = None
        if progress:
            self._bar_cm = click.progressbar(length=R, label="training", file=sys.stderr, show_pos=True,
                                             item_show_func=lambda _: self._progress_text())
            self._bar = self._bar_cm.__enter__()

    # ---- per-round numbers -------------------------------------------------------------------
    def start_training(self) -> None:
        now = time.perf_counter()
        self.startup_seconds = now - self._t_start
        self._t_train = self._t_last = now

    def _room(self, n: int) -> dict:
        """The series, grown (doubling, at most to the planned rounds) so that round n fits."""
        cap = len(self.series["time/round"])
        if n >= cap:
            new = min(max(2 * cap, n + 1), self.config.rounds)
            for name, values in self.series.items():
                grown = np.full((new, *values.shape[1:]), np.nan)
                grown[:cap] = values
                self.series[name] = grown
        return self.series

    def generator(self, k: int, n: int, loss: float, beta: float, d_term: float, c_term: float) -> None:
        s = self._room(n)
        s["loss/generator"][n, k], s["beta"][n, k] = loss, beta
        s["term/discriminator"][n, k], s["term/classifier"][n, k] = d_term, c_term
        self._count(n)

    def discriminator(self, n: int, loss: float) -> None:
        self._room(n)["loss/discriminator"][n] = loss
        self._count(n)

    def classifier(self, n: int, loss: float) -> None:
        self._room(n)["loss/classifier"][n] = loss
        self._count(n)

    def times(self, role: str, k: int, n: int, compute: float, wait: float, copy: float, add: bool = False) -> None:
        """Where role's round n went: seconds computing, waiting for a signal, copying slots.
        ``add``: one of several reports of the round (the async engine's D and C report per slot)."""
        s = self._room(n)
        for part, value in zip(TIME_PARTS, (compute, wait, copy)):
            series, index = s[f"time/{role}/{part}"], ((n, k) if role == "generator" else n)
            series[index] = value + series[index] if add and not np.isnan(series[index]) else value

    def _count(self, n: int) -> None:
        self._reports[n] = self._reports.get(n, 0) + 1
        if self._reports[n] == self.reports_needed:
            del self._reports[n]
            now = time.perf_counter()
            self.series["time/round"][n] = now - self._t_last
            self._t_last = now
            self.rounds_completed = max(self.rounds_completed, n + 1)
            if self._bar is not None:
                self._bar.update(1)

    def finish_training(self) -> None:
        """Freeze the training clock at the end of the last completed round, so process shutdown,
        plots and file writes after it are never counted as training."""
        if self._t_end is None:
            self._t_end = self._t_last if self._t_last is not None else time.perf_counter()

    def train_seconds(self) -> float:
        if self._t_train is None:
            return 0.0
        end = self._t_end if self._t_end is not None else time.perf_counter()
        return self.prior_train_seconds + end - self._t_train - self.eval_seconds

    def event(self, round_index: int, role: str, what: str) -> None:
        self.events.append({"round": round_index, "seconds": time.perf_counter() - self._t_start, "role": role,
                            "what": what})

    def restore(self, previous: dict | None, round_index: int, train_seconds: float) -> None:
        """Continue a run from its checkpoint of ``round_index``: keep the earlier part's series,
        evaluations and events up to that round (``previous`` is its run.h5, or None if unreadable)."""
        keep = round_index + 1
        if previous is not None:
            self._room(keep - 1)
            for name, values in self.series.items():
                old = previous.get(name)
                if old is not None and old.shape[1:] == values.shape[1:]:
                    n = min(keep, len(old))
                    values[:n] = old[:n]
            ev = previous
            keys = ("images", "spread") if self.config.images else (
                "high_quality", "kl_uniform", "modes_covered", "modes_covered_lenient", "mode_histogram",
                "generator_table", "samples", "generator")
            for i, r in enumerate(ev.get("eval/round", [])):
                if r <= round_index:
                    e = {key: ev[f"eval/{key}"][i] for key in ("round", "train_seconds", "seconds") + keys
                         if key != "spread" or "eval/spread" in ev}
                    if self.config.images:  # a file from before eval/spread existed
                        e.setdefault("spread", np.full(self.config.k, np.nan))
                    e["round"] = int(e["round"])
                    if "modes_covered" in e:
                        e["modes_covered"] = int(e["modes_covered"])
                    self.evals.append(e)
            for i, r in enumerate(ev.get("events/round", [])):
                if r <= round_index:
                    self.events.append({"round": int(r), "seconds": float(ev["events/seconds"][i]),
                                        "role": _text(ev["events/role"][i]), "what": _text(ev["events/what"][i])})
        self.rounds_completed = keep
        self.prior_train_seconds = train_seconds
        if self._bar is not None:
            self._bar.update(keep)
        self.event(round_index, "runner", f"resumed after round {round_index} (the latest intact checkpoint)")

    def _progress_text(self) -> str:
        n = self.rounds_completed - 1
        if n < 0:
            return ""
        s = self.series
        rate = self.rounds_completed / max(self.train_seconds(), 1e-9)
        text = f"{rate:6.1f} rounds/s  D {s['loss/discriminator'][n]:.3f}"
        if self.config.k > 1:
            text += f"  C {s['loss/classifier'][n]:.3f}"
        text += f"  G {np.nanmean(s['loss/generator'][n]):.3f}  β {np.nanmean(s['beta'][n]):.3f}"
        if self.evals and self.config.images:
            gone = len(collapsed(self.evals[-1]["spread"]))
            text += f"  collapsed {gone}/{self.config.k}" if gone else ""
        elif self.evals:
            e = self.evals[-1]
            text += f"  modes {e['modes_covered']}/{len(self.dataset.centers)} hq {e['high_quality']:.0%}"
        return text

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self, n: int, eval_samples: torch.Tensor, generation_seconds: float,
                 metrics_overlap_training: bool = False) -> ModeReport | None:
        """Metrics on fresh samples ([K, N, ...], one batch per generator) mixed uniformly; for
        images, the first GRID_PER_GENERATOR samples of every generator as uint8 pictures.

        Evaluation time is subtracted from training time; in the parallel engine the runner's
        metric computation runs while the roles train (``metrics_overlap_training``), so only the
        generators' sample-writing time is subtracted there."""
        t0 = time.perf_counter()
        if self.config.images:
            from .image_data import to_uint8
            grid = eval_samples[:, :GRID_PER_GENERATOR]
            flat = to_uint8(grid.reshape(-1, *grid.shape[2:]))
            pictures = flat.reshape(*grid.shape[:2], *flat.shape[1:])  # [K, g, H, W, C]
            K, N = eval_samples.shape[:2]
            if self._reference_spread is None:
                self._reference_spread = reference_spread(self.dataset.data.images, self.config.seed)
            ratios = generator_spread(eval_samples.flatten(0, 1), torch.arange(K).repeat_interleave(N), K,
                                      self._reference_spread)
            seconds = generation_seconds + time.perf_counter() - t0
            self.eval_seconds += generation_seconds if metrics_overlap_training else seconds
            self.evals.append({"round": n, "train_seconds": self.train_seconds(), "seconds": seconds,
                               "images": pictures, "spread": ratios})
            self._save_grid(n, pictures)
            return None
        assignment = mixture_assignment(self.config.eval_samples, self.config.k, self.config.seed, n)
        samples = mix(eval_samples, assignment)
        report = mode_report(samples, assignment, self.dataset.centers, self.dataset.std, self.config.k)
        seconds = generation_seconds + time.perf_counter() - t0
        self.eval_seconds += generation_seconds if metrics_overlap_training else seconds
        self.evals.append({"round": n, "train_seconds": self.train_seconds(), "seconds": seconds,
                           **report.summary(), "mode_histogram": report.mode_histogram,
                           "generator_table": report.generator_table, "samples": samples.numpy().astype(np.float32),
                           "generator": assignment.numpy().astype(np.int16)})
        return report

    def _save_grid(self, n: int, pictures: np.ndarray) -> None:
        """grids/round-NNNNNNN.png: one row per generator, at every evaluation of an image run
        (written whole or not at all; a picture that cannot be written is logged, the run goes on)."""
        from .plots import save_image_grid
        path = self.run_dir / "grids" / f"round-{n + 1:07d}.png"
        png = io.BytesIO()
        save_image_grid(pictures.reshape(-1, *pictures.shape[2:]), png, columns=pictures.shape[1])
        try:
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, png.getbuffer())
        except OSError as exc:
            logging.getLogger("sharedgan").warning("could not write %s: %s", path, exc)

    # ---- the run file ------------------------------------------------------------------------
    def write(self, status: str | None = None, error: str = "") -> Path:
        """(Re)write run.h5 atomically: a reader never sees a half-written file."""
        if status is not None:
            self.status, self.error = status, error
        R = self.rounds_completed
        path = self.run_dir / "run.h5"
        # built in memory, then written with plain file I/O: HDF5 does not survive a failed write
        # (a full disk, a file-size limit) cleanly, Python's file objects raise a clean OSError;
        # on any failure the previous run.h5 stays as it was
        data = io.BytesIO()
        self._write(data, R)
        write_atomic(path, data.getbuffer())
        return path

    def _write(self, target, R: int) -> None:
        with h5py.File(target, "w") as f:
            attrs = {
                "schema_version": SCHEMA_VERSION, "status": self.status, "error": self.error,
                "config": self.config.to_json(), "engine": self.config.engine, "k": self.config.k,
                "rounds_planned": self.config.rounds, "rounds_completed": R,
                "startup_seconds": self.startup_seconds, "train_seconds": self.train_seconds(),
                "eval_seconds": self.eval_seconds, "threads_per_process": self.config.threads,
                "host": socket.gethostname(), "platform": platform.platform(), "cpu_count": os.cpu_count() or 0,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_at)),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z") if self.status != "running" else "",
            }
            attrs.update({f"version_{k}": str(v) for k, v in software_versions().items()})
            attrs.update({f"served/{name}": count for name, count in self.served.items()})
            f.attrs.update(attrs)
            for name, values in self.series.items():
                f.create_dataset(name, data=values[:R])
            ev = self.evals
            f.create_dataset("eval/round", data=np.array([e["round"] for e in ev], dtype=np.int64))
            for key in ("train_seconds", "seconds"):
                f.create_dataset(f"eval/{key}", data=np.array([e[key] for e in ev], dtype=np.float64))
            if self.config.images:
                self._write_images(f)
            else:
                self._write_modes(f)
            text = h5py.string_dtype()
            f.create_dataset("events/round", data=np.array([e["round"] for e in self.events], dtype=np.int64))
            f.create_dataset("events/seconds", data=np.array([e["seconds"] for e in self.events], dtype=np.float64))
            f.create_dataset("events/role", data=[e["role"] for e in self.events], dtype=text)
            f.create_dataset("events/what", data=[e["what"] for e in self.events], dtype=text)

    def _write_images(self, f: h5py.File) -> None:
        c, h, w = self.dataset.sample_shape
        shape = (self.config.k, min(GRID_PER_GENERATOR, self.config.eval_samples), h, w, c)
        pictures = np.stack([e["images"] for e in self.evals]) if self.evals else np.zeros((0, *shape), np.uint8)
        f.create_dataset("eval/images", data=pictures, compression="gzip")
        spreads = np.stack([e["spread"] for e in self.evals]) if self.evals else np.zeros((0, self.config.k))
        f.create_dataset("eval/spread", data=spreads.astype(np.float64))
        f.attrs.update({"data_name": self.dataset.data.name, "data_cache": str(self.dataset.data.cache)})

    def _write_modes(self, f: h5py.File) -> None:
        ev = self.evals
        for key in ("high_quality", "kl_uniform"):
            f.create_dataset(f"eval/{key}", data=np.array([e[key] for e in ev], dtype=np.float64))
        for key in ("modes_covered", "modes_covered_lenient"):
            f.create_dataset(f"eval/{key}", data=np.array([e[key] for e in ev], dtype=np.int64))
        M, K, shape = len(self.dataset.centers), self.config.k, tuple(self.dataset.sample_shape)
        N = self.config.eval_samples
        stack = lambda key, shape_, dtype: np.stack([e[key] for e in ev]) if ev else np.zeros((0, *shape_), dtype)  # noqa: E731
        f.create_dataset("eval/mode_histogram", data=stack("mode_histogram", (M,), np.int64))
        f.create_dataset("eval/generator_table", data=stack("generator_table", (K, M + 1), np.int64))
        f.create_dataset("eval/samples", data=stack("samples", (N, *shape), np.float32), compression="gzip")
        f.create_dataset("eval/generator", data=stack("generator", (N,), np.int16), compression="gzip")
        centers = f.create_dataset("data/centers", data=self.dataset.centers.numpy())
        centers.attrs["std"] = self.dataset.std

    def close(self) -> None:
        if self._bar_cm is not None:
            self._bar_cm.__exit__(None, None, None)
            self._bar_cm = self._bar = None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_run_file(path: Path) -> dict:
    """run.h5 as a dict of numpy arrays plus ``attrs`` (used by ``sharedgan eval`` and plots)."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        if int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
            raise ValueError(f"{path} has run-file schema {f.attrs.get('schema_version')}, expected {SCHEMA_VERSION}")
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    for name in ("events/role", "events/what"):
        if name in out:
            out[name] = [_text(v) for v in out[name]]
    out["config"] = json.loads(out["attrs"]["config"])
    return out



def format_time_breakdown(data: dict) -> str:
    """Where each role's rounds went (run.h5's time/<role>/*): mean milliseconds per round spent
    computing, waiting for a signal and copying slots, and each as a share of the role's round."""
    lines = ["where the time goes (mean per round; share of that role's round):",
             f"{'role':<15}" + "".join(f"{part:>18}" for part in TIME_PARTS)]
    for role in ("generator", "discriminator", "classifier"):
        parts = [data.get(f"time/{role}/{part}") for part in TIME_PARTS]
        if any(p is None for p in parts) or not all(np.isfinite(p).any() for p in parts):
            continue
        means = [float(np.nanmean(p)) for p in parts]
        total = sum(means) or 1.0
        label = f"{role} (each)" if role == "generator" else role
        lines.append(f"{label:<15}" + "".join(f"{m * 1e3:11.2f} ms {m / total:4.0%}" for m in means))
    return "\n".join(lines)
