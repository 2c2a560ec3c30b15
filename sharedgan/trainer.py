"""The Python API: ``train(config)`` runs one training, ``load_run(dir)`` samples from a finished one."""
from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoint, rundir
from .config import ConfigError, TrainConfig
from .metrics import ModeReport, mode_report
from .models import FactoryError, factory_reference
from .record import RunRecorder
from .roles import dataset_of, make_model, model_spec
from .roles.generator import prior_noise
from .seeding import stream

log = logging.getLogger("sharedgan")


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run after a final checkpoint; ``result`` describes it."""

    def __init__(self, result: "RunResult", signum: int):
        self.result, self.signum = result, signum
        latest = checkpoint.latest(result.run_dir)
        if result.rounds_completed == 0:
            where = f"during start-up, before any round; nothing to resume in {result.run_dir}"
        elif latest is None:
            where = f"no complete checkpoint in {result.run_dir}"
        else:
            where = f"latest checkpoint {latest}"
        super().__init__(f"interrupted by {signal.Signals(signum).name} after {result.rounds_completed} rounds; {where}")


@dataclass
class RunResult:
    run_dir: Path
    status: str
    rounds_completed: int
    metrics: dict  # the last evaluation's summary (modes covered, high quality, KL, ...)
    train_seconds: float
    startup_seconds: float


class StopSignals:
    """SIGINT / SIGTERM handlers for the duration of a run: the first asks for a clean stop
    (a final checkpoint), a second one stops at once. Previous handlers are restored after."""

    def __init__(self):
        self.signum: int | None = None
        self.hard = False
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, _frame):
        if self.signum is not None:
            self.hard = True
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_factories(config: TrainConfig) -> None:
    """Turn factories into references and build each model once here, so a factory that cannot be
    imported or returns the wrong thing is reported as bad input before anything is written."""
    for role in ("generator", "discriminator", "classifier"):
        name = f"{role}_factory"
        try:
            setattr(config, name, factory_reference(getattr(config, name)))
        except FactoryError as exc:
            raise ConfigError(str(exc)) from None
    config.validate()
    spec = model_spec(config)
    for role in ("generator", "discriminator") + (("classifier",) if config.k > 1 else ()):
        try:
            make_model(config, role, spec)
        except FactoryError as exc:
            raise ConfigError(str(exc)) from None


def train(config: TrainConfig | dict, force: bool = False, progress: bool = False) -> RunResult:
    """Run one training as ``config`` says; return where it went and how it ended.

    Raises :class:`ConfigError` for bad input (nothing is written), :class:`~sharedgan.RoleFailed`
    when a role dies (its log names the cause), and :class:`TrainingInterrupted` after SIGINT or
    SIGTERM (a final checkpoint is written first).
    """
    config = TrainConfig.from_dict(config) if isinstance(config, dict) else dataclasses.replace(config)
    _check_factories(config)
    run_dir = rundir.prepare(config, force)
    handler = logging.FileHandler(rundir.log_path(run_dir, "runner"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    recorder = RunRecorder(config, run_dir, dataset_of(config), progress=progress)
    from .engines import parallel, sequential
    engine = {"parallel": parallel, "sequential": sequential}[config.engine]
    try:
        with StopSignals() as stop:
            try:
                engine.run(config, run_dir, recorder, stop)
                recorder.finish_training()
            except BaseException as exc:
                recorder.finish_training()
                log.exception("run failed")
                recorder.close()
                recorder.write("failed", str(exc))
                raise
        recorder.close()
        status = "interrupted" if stop.requested else "complete"
        recorder.write(status)
        _draw(run_dir)
        metrics = {k: v for k, v in recorder.evals[-1].items() if not hasattr(v, "shape")} if recorder.evals else {}
        result = RunResult(run_dir, status, recorder.rounds_completed, metrics, recorder.train_seconds(),
                           recorder.startup_seconds)
        if stop.requested:
            raise TrainingInterrupted(result, stop.signum)
        return result
    finally:
        log.removeHandler(handler)
        handler.close()


def _draw(run_dir: Path) -> None:
    try:
        from .plots import plot_run
        plot_run(run_dir)
    except Exception:  # noqa: BLE001 - a picture must never fail a finished run
        log.exception("could not draw the run's pictures")


class Run:
    """A finished (or interrupted) run: its config and its latest complete checkpoint."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        config_path = self.run_dir / "config.json"
        if not config_path.exists():
            raise ConfigError(f"{self.run_dir} is not a sharedgan run (no config.json); pass a run directory")
        self.config = TrainConfig.from_file(config_path)
        self.checkpoint = checkpoint.latest(self.run_dir)
        if self.checkpoint is None:
            raise ConfigError(f"{self.run_dir} has no complete checkpoint to sample from")
        self.round = json.loads((self.checkpoint / "manifest.json").read_text())["round"]
        self.dataset = dataset_of(self.config)
        spec = model_spec(self.config, self.dataset)
        self.generators = []
        for k in range(self.config.k):
            net = make_model(self.config, "generator", spec, k)
            net.load_state_dict(checkpoint.load_role(self.checkpoint, f"generator-{k}")["model"])
            net.eval()
            self.generators.append(net)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples of the mixture: each picks its generator uniformly. Returns (samples, generator)."""
        which = torch.randint(self.config.k, (n,), generator=stream(seed, "sample-mixture"))
        z = prior_noise(n, self.config.noise_dim, self.config.noise, stream(seed, "sample-noise"))
        out = torch.empty((n, *self.dataset.sample_shape))
        for k, net in enumerate(self.generators):
            idx = (which == k).nonzero().flatten()
            if len(idx):
                out[idx] = net(z[idx])
        return out, which

    def evaluate(self, n: int = 2500, seed: int = 0) -> ModeReport:
        samples, which = self.sample(n, seed)
        return mode_report(samples, which, self.dataset.centers, self.dataset.std, self.config.k)


def load_run(run_dir: str | Path) -> Run:
    return Run(Path(run_dir))
