"""The Python API: ``train(config)`` runs one training, ``load_run(dir)`` samples from a finished one."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sharedgan.config import RESUMABLE, TrainConfig, fingerprint, require_consent
from sharedgan.engines.recorder import RunRecorder
from sharedgan.errors import ConfigError, FactoryError
from sharedgan.models.spec import factory_reference
from sharedgan.roles.build import dataset_of, make_model, model_spec
from sharedgan.roles.generator import make_body
from sharedgan.roles.teacher import teacher_of
from sharedgan.runtime.buffer import buffer_bytes, fields_of
from sharedgan.runtime.interrupts import StopSignals
from sharedgan.storage import checkpoint, rundir
from sharedgan.storage.runfile import read_run_file
from sharedgan.storage.teacher_file import check_pool

log = logging.getLogger("sharedgan")


class TrainingInterrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP stopped the run after a final checkpoint; ``result`` describes it."""

    def __init__(self, result: "RunResult", signum: int):
        self.result, self.signum = result, signum
        latest = checkpoint.latest(result.run_dir)
        if result.rounds_completed == 0:
            where = f"during start-up, before any round; nothing to resume in {result.run_dir}"
        elif latest is None:
            where = f"no complete checkpoint in {result.run_dir}"
        else:
            where = f"latest checkpoint {latest}"
        super().__init__(f"interrupted by {signal.Signals(signum).name} after {result.rounds_completed} rounds; "
                         f"{where}")


@dataclass
class RunResult:
    run_dir: Path
    status: str
    rounds_completed: int
    metrics: dict  # the last evaluation's summary (modes covered, high quality, KL, ...)
    train_seconds: float
    startup_seconds: float


def _check_factories(config: TrainConfig, resume: bool = False) -> None:
    """Fill the data-dependent defaults, turn factories into references, prepare the data set
    (an image cache is built here, once), and build each model once, so bad input is reported
    before anything is written."""
    config.validate()
    config.data_dir = str(Path(config.data_dir).resolve())  # a run can be sampled from any directory later
    if config.cache_dir is not None:
        config.cache_dir = str(Path(config.cache_dir).resolve())
    if config.images and Path(config.dataset).exists():
        config.dataset = str(Path(config.dataset).resolve())
    if config.teacher is not None:
        config.teacher = str(Path(config.teacher).resolve())
    for role in ("generator", "discriminator", "classifier"):
        name = f"{role}_factory"
        try:
            setattr(config, name, factory_reference(getattr(config, name)))
        except FactoryError as exc:
            raise ConfigError(str(exc)) from None
    spec = model_spec(config)
    _check_memory(config, spec)
    try:
        for role in ("generator", "discriminator") + (("classifier",) if config.k > 1 else ()):
            make_model(config, role, spec)
        if config.share_generator_body:
            make_body(config, spec)
        if config.teacher_weight:  # (a --teacher file that does not fit a fresh run is refused here, in one line)
            teacher_of(config, spec.sample_shape, trained=not resume)
    except FactoryError as exc:
        raise ConfigError(str(exc)) from None


def _check_memory(config: TrainConfig, spec) -> None:
    """A slot buffer larger than this machine's memory is refused before anything is written (it
    would fail, or swap the machine to a halt, only after the run directory was made)."""
    if config.device != "cpu" or config.devices:
        return  # (the buffer lives on the GPU: its allocation says so itself)
    need = buffer_bytes(fields_of(config, spec.sample_shape), config.k)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > have // 2:
        raise ConfigError(f"the slot buffer would take {need / 2**30:.1f} GiB of this machine's "
                          f"{have / 2**30:.0f} GiB; lower --batch-size, --eval-samples or --k")


def resume_config(run_dir: str | Path, overrides: dict | None = None, trust: bool = False) -> TrainConfig:
    """The config of the run in ``run_dir``, with ``overrides`` of the settings a resume may change
    (:data:`~sharedgan.config.RESUMABLE`); changing anything else is refused, and so is a model
    factory of the run's own unless ``trust`` or ``overrides`` names the same one
    (:func:`~sharedgan.config.require_consent`)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not a sharedgan run (no config.json); pass the directory of a run to --resume")
    rundir.check_inside(run_dir)  # before anything of it is read: where it would make us write
    config = TrainConfig.from_file(run_dir / "config.json", run=True)
    require_consent(config, f"{run_dir}/config.json", overrides, trust)
    for name, value in (overrides or {}).items():
        if name == "out" and value is not None and Path(value).resolve() != run_dir.resolve():
            raise ConfigError(f"--resume continues in {run_dir} itself; drop --out")
        if name not in RESUMABLE and value != getattr(config, name):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} cannot change when resuming (the run has {getattr(config, name)!r}); drop it, "
                              "or start a new run")
        setattr(config, name, value)
    config.out = str(run_dir)
    return config


def resume(run_dir: str | Path, overrides: dict | None = None, progress: bool = False,
           trust: bool = False) -> RunResult:
    """Continue the run in ``run_dir`` from its latest intact checkpoint (see :func:`train`);
    ``trust``: its config may name model factories sharedgan does not ship."""
    return train(resume_config(run_dir, overrides, trust), progress=progress, resume=True)


def _resume_point(config: TrainConfig, run_dir: Path) -> tuple[Path, dict]:
    """The checkpoint to continue from, after checking it fits ``config`` and loads into its models."""
    skipped: list[str] = []
    found = checkpoint.latest(run_dir, skipped)
    if found is None:
        why = f" ({skipped[0]})" if skipped else ""
        raise ConfigError(f"{run_dir} has no intact checkpoint to resume from{why}; start a new run")
    for reason in skipped:
        log.warning("passing over a damaged checkpoint: %s", reason)
    try:
        manifest = checkpoint.check_compatible(found, fingerprint(config), config.roles)
        spec = model_spec(config)
        for name in config.roles:
            role, state = name.split("-")[0], checkpoint.load_role(found, name)
            if role == "teacher":  # the teacher's model, and its distiller's (a discriminator)
                teacher_of(config, spec.sample_shape, trained=False).load_state_dict(state["model"])
                if "pool" in state:
                    check_pool(state["pool"], spec.sample_shape, f"checkpoint {found.name}'s teacher")
                if config.teacher_term == "adversarial":
                    make_model(config, "discriminator", spec, stream_name="distiller").load_state_dict(
                        state["distiller"]["model"])
                continue
            net = make_model(config, role, spec, int(name.split("-")[1]) if role == "generator" else 0)
            net.load_state_dict(state["model"])
    except checkpoint.CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    except (RuntimeError, KeyError) as exc:
        raise ConfigError(f"checkpoint {found} does not fit this run's models ({str(exc).splitlines()[0]}); "
                          "resume with the models that made it") from None
    if manifest["round"] >= config.rounds - 1:
        raise ConfigError(f"{run_dir} already finished its {config.rounds} rounds; nothing to resume")
    return found, manifest


def train(config: TrainConfig | dict, force: bool = False, progress: bool = False, resume: bool = False,
          cluster=None) -> RunResult:
    """Run one training as ``config`` says; return where it went and how it ended.

    With ``resume``, ``config.out`` is an earlier run (see :func:`resume`): training continues after
    its latest intact checkpoint, in the same directory and the same run.h5, and reproduces the
    uninterrupted run exactly on CPU.

    Raises :class:`ConfigError` for bad input (nothing is written), :class:`~sharedgan.RoleFailed`
    when a role dies (its log names the cause), :class:`~sharedgan.errors.Diverged` on NaN/Inf in the
    sequential engine, and :class:`TrainingInterrupted` after SIGINT or SIGTERM (a final checkpoint
    is written first).

    ``cluster``: this process is rank 0 of a torchrun job (``--transport distributed``, see
    :func:`sharedgan.cluster.launch.launch_rank`); the roles run on the other ranks.
    """
    config = TrainConfig.from_dict(config) if isinstance(config, dict) else dataclasses.replace(config)
    try:
        _check_factories(config, resume)
        start, restore, manifest = 0, None, {}
        if resume:
            restore, manifest = _resume_point(config, Path(config.out))
            start = manifest["round"] + 1
        if cluster is not None:  # every rank starts, or every rank refuses with the same line
            cluster.agree(config, restore)
    except (ConfigError, FactoryError) as exc:
        if cluster is not None and not cluster.agreed:
            cluster.refuse(str(exc))
        raise
    try:
        run_dir, lock = rundir.prepare(config, force, resume)
    except (ConfigError, OSError) as exc:
        if cluster is not None:  # the other ranks wait for the run directory: they exit with the same line
            cluster.refuse(str(exc) if isinstance(exc, ConfigError) else f"cannot prepare {config.out}: {exc}")
        raise
    try:
        if cluster is not None:
            cluster.share_run_dir(run_dir)
        return _train(config, run_dir, progress, start, restore, manifest, cluster)
    finally:
        lock.release()


def _train(config: TrainConfig, run_dir: Path, progress: bool, start: int, restore: Path | None,
           manifest: dict, cluster=None) -> RunResult:
    handler = logging.FileHandler(rundir.log_path(run_dir, "runner"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    recorder = RunRecorder(config, run_dir, dataset_of(config), progress=progress)
    if restore is not None:
        checkpoint.remove_partials(run_dir, above=start - 1)  # a later, unfinished checkpoint of the old part
        try:
            previous = read_run_file(run_dir / "run.h5")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cannot read the earlier run.h5 (%s); its rounds stay NaN", exc)
            previous = None
        recorder.restore(previous, start - 1, float(manifest.get("train_seconds", 0.0)))
        log.info("resuming from %s", restore)
    from sharedgan.engines import sequential
    from sharedgan.engines.asynchronous import supervisor as asynchronous
    from sharedgan.engines.parallel import supervisor as parallel
    engines = {"parallel": parallel, "sequential": sequential, "batched": sequential, "async": asynchronous}
    engine_run = engines[config.engine].run
    if cluster is not None:  # the parallel engine's runner on rank 0, its roles torchrun's other ranks
        from sharedgan.cluster import runner
        engine_run = partial(runner.run, cluster=cluster)
    try:
        with StopSignals() as stop:
            try:
                engine_run(config, run_dir, recorder, stop, start, restore)
                recorder.finish_training()
            except BaseException as exc:
                recorder.finish_training()
                log.exception("run failed")
                recorder.close()
                try:
                    recorder.write("failed", str(exc))
                except OSError as write_error:  # e.g. the disk that failed the run is still full
                    log.error("could not record the failure in run.h5: %s", write_error)
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
        from sharedgan.plots import plot_run
        plot_run(run_dir)
    except Exception:  # noqa: BLE001 - a picture must never fail a finished run
        log.exception("could not draw the run's pictures")

