"""``sharedgan launch``: its options are derived from the settings of :class:`~sharedgan.config.TrainConfig`."""

from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path

import click

from sharedgan.config import TrainConfig, option_flag, require_consent
from sharedgan.errors import ConfigError

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _option_type(field: dataclasses.Field):
    """The click type of a setting: its choices, a path, or its annotation's type ("float | None": float)."""
    if field.metadata["choices"] is not None:
        return click.Choice(field.metadata["choices"])
    if field.metadata["path"]:
        return click.Path()
    return _TYPES[field.type.split("|")[0].strip()]


def _setting_option(field: dataclasses.Field) -> tuple:
    flag = option_flag(field)
    if _option_type(field) is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    return flag, field.name, _option_type(field), field.metadata["help"]


# --lr is no setting of its own: it sets the three learning rates at once, listed just before them.
LR_OPTION = ("--lr", None, float, "Learning rate of G, D and C at once (overridden by --lr-generator etc.).")


def _derived_options() -> list[tuple]:
    options = []
    for field in dataclasses.fields(TrainConfig):
        if field.name == "lr_generator":
            options.append(LR_OPTION)
        options.append(_setting_option(field))
    return options


# (option, config field, click type, help), one per setting, in the order of TrainConfig's fields.
# Defaults come from TrainConfig, so --help shows them.
LAUNCH_OPTIONS = _derived_options()


def _launch_options(func):
    defaults = TrainConfig()
    for flag, field, type_, help_ in reversed(LAUNCH_OPTIONS):
        default = getattr(defaults, field) if field else None
        shown = f"{help_}" + (f"  [default: {default}]" if default is not None and "[default" not in help_ else "")
        func = click.option(flag, field or "lr", type=type_, default=None, help=shown)(func)
    return func


LAST_RUN: dict = {}  # the run directory of the latest launch, for the resume hint of a failure


@click.command()
@click.option("--config", "config_file", type=click.Path(),
              help="Start from a config.json (e.g. a run's); options given here override it.")
@click.option("--resume", "resume_dir", type=click.Path(),
              help="Continue the run in this directory from its latest intact checkpoint (bit-exact on CPU). "
                   "Only how it runs may change (--engine, --threads, --eval-every, checkpoints, timeouts, "
                   "--on-failure).")
@click.option("--force", is_flag=True, help="Reuse a non-empty --out, replacing the run that is there.")
@click.option("--trust-run", is_flag=True,
              help="The config of --resume or --config may name model factories sharedgan does not ship: import "
                   "and run them (only for files you trust; giving the same --*-factory yourself also does).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--roles-here", default=None, metavar="ROLE,...",
              help="--transport distributed: the roles this node's ranks run, in local-rank order (e.g. "
                   "generator-0,generator-1); roles no node names fill the ranks left (docs/cluster.md).")
@click.option("--bind", default=None, metavar="ADDRESS",
              help="--transport distributed: the interface this node's ZeroMQ inboxes listen on [default: the one "
                   "that reaches torchrun's rendezvous host].")
@_launch_options
def launch(config_file, resume_dir, force, trust_run, quiet, roles_here, bind, lr, **options):
    """Train K generators, a discriminator D and a classifier C.

    Writes the run directory: config.json, logs/, run.h5, checkpoints/, samples.png, curves.png,
    evolution.png. Ctrl-C stops after one more round and leaves a checkpoint (exit code 130);
    --resume continues from it.
    """
    from sharedgan.api import TrainingInterrupted, resume_config, train
    if lr is not None:  # each role's own --lr-* wins over --lr
        for name in ("lr_generator", "lr_discriminator", "lr_classifier"):
            options[name] = lr if options[name] is None else options[name]
    given = {field: value for field, value in options.items() if value is not None}
    if resume_dir is not None:
        if config_file or force:
            raise ConfigError("--resume takes the run's own config.json; drop --config and --force")
        config = resume_config(resume_dir, given, trust=trust_run)
    else:
        # a config.json in a run directory is that run's record (TrainConfig.from_dict's run); one
        # written by hand takes today's defaults for what it leaves out
        in_run = bool(config_file) and (Path(config_file).parent / "run.h5").is_file()
        config = TrainConfig.from_file(config_file, run=in_run) if config_file else TrainConfig()
        if config_file:
            require_consent(config, config_file, given, trust_run)
        for field, value in given.items():
            setattr(config, field, value)
        if "generator_factory" in given and "generator" not in given:  # the file's --generator named its factory
            config.generator = None
    try:
        from sharedgan.storage.rundir import default_out
        config.out = config.out or default_out()
        LAST_RUN.update(out=config.out, transport=config.transport)
        if config.transport == "distributed":
            from sharedgan.cluster.launch import launch_rank
            here = tuple(r.strip() for r in roles_here.split(",") if r.strip()) if roles_here else ()
            result = launch_rank(config, force, resume_dir is not None, not quiet, here, bind)
        else:
            if roles_here or bind:
                raise ConfigError("--roles-here and --bind place the roles of --transport distributed; drop them")
            result = train(config, force=force, progress=not quiet, resume=resume_dir is not None)
    except TrainingInterrupted as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(130 if exc.signum == signal.SIGINT else 128 + exc.signum)
    m = result.metrics
    click.echo(f"done: {result.rounds_completed} rounds in {result.train_seconds:.1f} s of training "
               f"(+{result.startup_seconds:.1f} s start-up); run directory {result.run_dir}")
    if "modes_covered" in m:
        click.echo(f"last evaluation: {m['modes_covered']}/{m['num_modes']} modes covered, "
                   f"{m['high_quality']:.1%} high quality, KL(p̂‖uniform) {m['kl_uniform']:.3f}")
