"""The run record: per-round losses and timings, evaluations, progress, events.

One object in the main process (the sequential engine itself, or the parallel engine's runner)
receives every role's per-round numbers, computes the evaluation metrics, and is the only writer
of ``run.h5`` (its schema: :mod:`sharedgan.storage.runfile`).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch

from sharedgan import board
from sharedgan.config import TrainConfig
from sharedgan.data.mixtures import GaussianMixture
from sharedgan.eval.modes import ModeReport, mix, mixture_assignment, mode_report
from sharedgan.eval.realness import METRICS as REALNESS_METRICS
from sharedgan.eval.realness import unreal
from sharedgan.eval.spread import collapsed, generator_spread, reference_spread
from sharedgan.runtime.memory import peak_cuda, peak_rss
from sharedgan.storage.files import write_atomic
from sharedgan.storage.runfile import TIME_PARTS, decode_text, write_run_file

log = logging.getLogger("sharedgan")

GRID_PER_GENERATOR = 8
MIRROR_EVERY = 2.0  # seconds between TensorBoard updates while training (and at every checkpoint)


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
        if config.teacher_weight:  # HGAN's teacher: its NLL, D_T's loss, each generator's teacher term
            self.series |= {"loss/teacher": nan(cap), "loss/distiller": nan(cap), "term/teacher": nan(cap, K),
                            **{f"time/teacher/{part}": nan(cap) for part in TIME_PARTS}}
        self._judge = self._realness_judge() if config.images else False  # eval.realness's, or False: none
        self.evals: list[dict] = []
        self.events: list[dict] = []
        self.prior_train_seconds = 0.0  # training time of the earlier parts of a resumed run
        self.reports_needed = len(config.roles)
        self.served: dict[str, int] = {}  # engine async: slots each D and C process served (this session)
        self.peak_rss: dict[str, int] = {}  # process → its peak resident memory, bytes (this session)
        self.peak_cuda: dict[str, int] = {}  # process → its peak CUDA memory, bytes (runs on a GPU)
        self.slot_buffer_bytes = 0
        self.sent_bytes: dict[str, int] = {}  # process → bytes it sent over --transport distributed
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
        self.realness_info: dict = {}  # k, M, reference count and the held-out baseline, for run.h5
        self.status, self.error = "running", ""
        self._bar = None
        self._mirror = None  # the TensorBoard mirror (sharedgan.board), from the first round trained
        self._mirrored_at = 0.0
        self._bar_cm = None
        if progress:
            self._bar_cm = click.progressbar(length=R, label="training", file=sys.stderr, show_pos=True,
                                             item_show_func=lambda _: self._progressdecode_text())
            self._bar = self._bar_cm.__enter__()

    # ---- per-round numbers -------------------------------------------------------------------
    def start_training(self) -> None:
        self._open_mirror()
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

    def generator(self, k: int, n: int, loss: float, beta: float, d_term: float, c_term: float,
                  t_term: float = 0.0) -> None:
        s = self._room(n)
        s["loss/generator"][n, k], s["beta"][n, k] = loss, beta
        s["term/discriminator"][n, k], s["term/classifier"][n, k] = d_term, c_term
        if "term/teacher" in s:
            s["term/teacher"][n, k] = t_term
        self._count(n)

    def teacher(self, n: int, nll: float, distiller_loss: float) -> None:
        """The teacher's NLL of round n's real batch (nats; images: bits/dim) and D_T's mean loss."""
        s = self._room(n)
        s["loss/teacher"][n], s["loss/distiller"][n] = nll, distiller_loss
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

    def memory(self, process: str, peak: int | None) -> None:
        """A reading of ``process``'s peak resident memory (bytes; the peak over a respawned role's lives)."""
        if peak is not None:
            self.peak_rss[process] = max(peak, self.peak_rss.get(process, 0))

    def cuda_memory(self, process: str, peak: int | None) -> None:
        """``process``'s peak CUDA memory (bytes; the peak over a respawned role's lives)."""
        if peak is not None:
            self.peak_cuda[process] = max(peak, self.peak_cuda.get(process, 0))

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
            if self._mirror is not None and now - self._mirrored_at > MIRROR_EVERY:
                self._mirror_call("rounds", self.series, self._settled())
                self._mirrored_at = now

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
            self.realness_info = {k: v for k, v in previous.get("attrs", {}).items() if k.startswith("realness_")}
            self._room(keep - 1)
            for name, values in self.series.items():
                old = previous.get(name)
                if old is not None and old.shape[1:] == values.shape[1:]:
                    n = min(keep, len(old))
                    values[:n] = old[:n]
            ev = previous
            keys = ("images", "spread", *REALNESS_METRICS, *(f"mixture_{m}" for m in REALNESS_METRICS)) \
                if self.config.images else (
                "high_quality", "kl_uniform", "modes_covered", "modes_covered_lenient", "mode_histogram",
                "generator_table", "samples", "generator")
            for i, r in enumerate(ev.get("eval/round", [])):
                if r <= round_index:
                    e = {key: ev[f"eval/{key}"][i] for key in ("round", "train_seconds", "seconds") + keys
                         if f"eval/{key}" in ev}
                    if self.config.images:  # a file from before eval/spread or realness existed
                        for key in keys[1:]:
                            missing = float("nan") if key.startswith("mixture_") else np.full(self.config.k, np.nan)
                            e.setdefault(key, missing)
                    e["round"] = int(e["round"])
                    if "modes_covered" in e:
                        e["modes_covered"] = int(e["modes_covered"])
                    self.evals.append(e)
            for i, r in enumerate(ev.get("events/round", [])):
                if r <= round_index:
                    self.events.append({"round": int(r), "seconds": float(ev["events/seconds"][i]),
                                        "role": decode_text(ev["events/role"][i]),
                                        "what": decode_text(ev["events/what"][i])})
        self.rounds_completed = keep
        self.prior_train_seconds = train_seconds
        if self._bar is not None:
            self._bar.update(keep)
        self.event(round_index, "runner", f"resumed after round {round_index} (the latest intact checkpoint)")

    def _progressdecode_text(self) -> str:
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
            fake = len(unreal(self.evals[-1].get("precision", ())))
            text += f"  unreal {fake}/{self.config.k}" if fake else ""
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
            from sharedgan.data.images import to_uint8
            grid = eval_samples[:, :GRID_PER_GENERATOR]
            flat = to_uint8(grid.reshape(-1, *grid.shape[2:]))
            pictures = flat.reshape(*grid.shape[:2], *flat.shape[1:])  # [K, g, H, W, C]
            K, N = eval_samples.shape[:2]
            if self._reference_spread is None:
                self._reference_spread = reference_spread(self.dataset.data.images, self.config.seed)
            ids = torch.arange(K).repeat_interleave(N)
            ratios = generator_spread(eval_samples.flatten(0, 1), ids, K, self._reference_spread)
            realness = self._realness(eval_samples.flatten(0, 1), ids)
            seconds = generation_seconds + time.perf_counter() - t0
            self.eval_seconds += generation_seconds if metrics_overlap_training else seconds
            self.evals.append({"round": n, "train_seconds": self.train_seconds(), "seconds": seconds,
                               "images": pictures, "spread": ratios, **realness})
            self._save_grid(n, pictures)
            self._mirror_evaluation(n, metrics_overlap_training, images=pictures)
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
        last = self.evals[-1]
        self._mirror_evaluation(n, metrics_overlap_training,
                                samples=(last["samples"], last["generator"], self.dataset.centers.numpy()))
        return report

    def _realness(self, samples: torch.Tensor, ids: torch.Tensor) -> dict:
        """--realness auto: PRDC per generator and of the mixture (``eval.realness``); NaN where the
        data set has no labels or its classifier is too weak to judge (said once, in the log)."""
        K = self.config.k
        if not self._judge:
            return {**{m: np.full(K, np.nan) for m in REALNESS_METRICS},
                    **{f"mixture_{m}": float("nan") for m in REALNESS_METRICS}}
        report = self._judge.report(samples, ids, K)
        self.realness_info = {"realness_k": report.k, "realness_samples": report.m,
                              "realness_reference": report.reference,
                              **{f"realness_real_{m}": v for m, v in report.real.items()}}
        return report.series()

    def _realness_judge(self):
        """--realness auto: the judge, built before any role starts (training the data set's
        classifier the first time takes minutes on a large data set: never while roles wait for a
        runner that reads no heartbeats), or False with the reason in the log. The global RNG is
        left as it was: the roles of the sequential engine draw from it and checkpoint it."""
        if self.config.realness == "off":
            return False
        from sharedgan.eval.coverage import classifier_for, realness_judge
        log.info("realness: the coverage classifier for %s (trained once, then cached)", self.dataset.data.name)
        try:
            with torch.random.fork_rng(devices=[]):
                classifier, _ = classifier_for(self.dataset.data)
                return realness_judge(classifier, self.dataset.data)
        except Exception as exc:  # noqa: BLE001 - a metric that cannot be had never stops a run
            log.info("realness is not measured: %s", exc)
            return False

    def _mirror_evaluation(self, n: int, overlaps_training: bool, **pictures) -> None:
        """The evaluation into TensorBoard (its picture takes a while to draw): evaluation time too."""
        start = time.perf_counter()
        self._mirror_call("evaluation", n, self.evals[-1], **pictures)
        if not overlaps_training:
            self.eval_seconds += time.perf_counter() - start

    def _save_grid(self, n: int, pictures: np.ndarray) -> None:
        """grids/round-NNNNNNN.png: one row per generator, at every evaluation of an image run
        (written whole or not at all; a picture that cannot be written is logged, the run goes on)."""
        from sharedgan.plots import save_image_grid
        path = self.run_dir / "grids" / f"round-{n + 1:07d}.png"
        png = io.BytesIO()
        save_image_grid(pictures.reshape(-1, *pictures.shape[2:]), png, columns=pictures.shape[1])
        try:
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, png.getbuffer())
        except OSError as exc:
            log.warning("could not write %s: %s", path, exc)

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
        # the mirror follows run.h5, flushed: while training every round settled, at the end every one
        self._mirror_call("rounds", self.series, self._settled() if self.status == "running" else R)
        self._mirror_call("flush" if self.status == "running" else "close")
        if self.status != "running":
            self._mirror = None
        return path

    # ---- the TensorBoard mirror ----------------------------------------------------------------
    def _settled(self) -> int:
        """The rounds before this one are whole: all their reports in (the async engine completes
        rounds out of order), and the one before the newest, since a role reports where its round's
        time went just after it reports the round (and after a checkpoint it writes)."""
        waiting = min(self._reports, default=self.rounds_completed)
        return max(0, min(waiting, self.rounds_completed - 1))

    def _open_mirror(self) -> None:
        """--tensorboard: mirror from the first round this process trains (a resumed run's new event
        file drops what an earlier part wrote from that round on, so no step shows twice)."""
        wanted = self.config.tensorboard
        if wanted == "off" or self._mirror is not None:
            return
        if not board.available():
            message = f"TensorBoard is not installed, so nothing is mirrored: {board.INSTALL_HINT}"
            log.info(message)
            if wanted == "on":
                click.echo(f"note: {message}", err=True)
            return
        try:
            self._mirror = board.Mirror(self.run_dir, json.loads(self.config.to_json()), self.rounds_completed)
        except Exception as exc:  # noqa: BLE001 - a mirror must never stop a run
            log.warning("cannot write TensorBoard files in %s (%s); training goes on without them", self.run_dir, exc)

    def _mirror_call(self, method: str, *args, **kwargs) -> None:
        if self._mirror is None:
            return
        try:
            getattr(self._mirror, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a mirror must never stop a run
            log.warning("TensorBoard mirror failed (%s); it stops, the run goes on", exc)
            self._mirror = None

    def _write(self, target, R: int) -> None:
        attrs = {
            "status": self.status, "error": self.error,
            "config": self.config.to_json(), "engine": self.config.engine, "k": self.config.k,
            "rounds_planned": self.config.rounds, "rounds_completed": R,
            "startup_seconds": self.startup_seconds, "train_seconds": self.train_seconds(),
            "eval_seconds": self.eval_seconds, "threads_per_process": self.config.threads,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started_at)),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z") if self.status != "running" else "",
            **{f"served/{name}": count for name, count in self.served.items()},
            "slot_buffer_bytes": self.slot_buffer_bytes,
        }
        self.memory("runner", peak_rss())
        self.cuda_memory("runner", peak_cuda())
        attrs.update({f"peak_rss/{name}": peak for name, peak in self.peak_rss.items()})
        attrs.update({f"peak_cuda/{name}": peak for name, peak in self.peak_cuda.items()})
        attrs.update({f"sent_bytes/{name}": sent for name, sent in self.sent_bytes.items()})
        ev = self.evals
        data = {name: values[:R] for name, values in self.series.items()}
        data["eval/round"] = np.array([e["round"] for e in ev], dtype=np.int64)
        for key in ("train_seconds", "seconds"):
            data[f"eval/{key}"] = np.array([e[key] for e in ev], dtype=np.float64)
        if self.config.images:
            self._image_data(data, attrs)
        else:
            self._mode_data(data)
        write_run_file(target, attrs, data, self.events)

    def _image_data(self, data: dict, attrs: dict) -> None:
        c, h, w = self.dataset.sample_shape
        shape = (self.config.k, min(GRID_PER_GENERATOR, self.config.eval_samples), h, w, c)
        data["eval/images"] = (np.stack([e["images"] for e in self.evals]) if self.evals
                               else np.zeros((0, *shape), np.uint8))
        spreads = np.stack([e["spread"] for e in self.evals]) if self.evals else np.zeros((0, self.config.k))
        data["eval/spread"] = spreads.astype(np.float64)
        for m in REALNESS_METRICS:
            data[f"eval/{m}"] = (np.stack([e[m] for e in self.evals]) if self.evals
                                 else np.zeros((0, self.config.k))).astype(np.float64)
            data[f"eval/mixture_{m}"] = np.array([e[f"mixture_{m}"] for e in self.evals], dtype=np.float64)
        attrs.update({"data_name": self.dataset.data.name, "data_cache": str(self.dataset.data.cache),
                      **self.realness_info})

    def _mode_data(self, data: dict) -> None:
        ev = self.evals
        for key in ("high_quality", "kl_uniform"):
            data[f"eval/{key}"] = np.array([e[key] for e in ev], dtype=np.float64)
        for key in ("modes_covered", "modes_covered_lenient"):
            data[f"eval/{key}"] = np.array([e[key] for e in ev], dtype=np.int64)
        M, K, shape = len(self.dataset.centers), self.config.k, tuple(self.dataset.sample_shape)
        N = self.config.eval_samples

        def stack(key, shape_, dtype):
            return np.stack([e[key] for e in ev]) if ev else np.zeros((0, *shape_), dtype)
        data["eval/mode_histogram"] = stack("mode_histogram", (M,), np.int64)
        data["eval/generator_table"] = stack("generator_table", (K, M + 1), np.int64)
        data["eval/samples"] = stack("samples", (N, *shape), np.float32)
        data["eval/generator"] = stack("generator", (N,), np.int16)
        data["data/centers"] = self.dataset.centers.numpy()
        data["data/centers@std"] = self.dataset.std

    def close(self) -> None:
        if self._bar_cm is not None:
            self._bar_cm.__exit__(None, None, None)
            self._bar_cm = self._bar = None

