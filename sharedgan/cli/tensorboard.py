"""``sharedgan tensorboard``: TensorBoard event files of a run, written from its run.h5."""

from __future__ import annotations

from pathlib import Path

import click

from sharedgan.errors import ConfigError


@click.command(name="tensorboard")
@click.argument("run", type=click.Path())
def tensorboard(run):
    """Write RUN/tensorboard/ from RUN's run.h5 (a finished run, or one made before the mirror
    existed or with --tensorboard off), replacing the event files it had; then
    'tensorboard --logdir RUN' shows its scalars, sample grids or scatters, and settings."""
    from sharedgan import board
    from sharedgan.config import TrainConfig
    from sharedgan.storage.runfile import read_run_file
    if not board.available():
        raise ConfigError(f"TensorBoard is not installed: {board.INSTALL_HINT}")
    run_dir = Path(run)
    TrainConfig.from_file(run_dir / "config.json", run=True)  # a run's, checked before anything is written
    try:
        data = read_run_file(run_dir / "run.h5")
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{run_dir} has no readable run.h5 ({str(exc).splitlines()[0]})") from None
    from sharedgan.storage.rundir import RunLock
    lock = RunLock(run_dir)  # a run still training mirrors itself: never rewrite its folder under it
    try:
        folder = board.write_run(run_dir, data)
    except OSError as exc:
        raise ConfigError(f"cannot write {run_dir / board.FOLDER}: {exc}") from None
    finally:
        lock.release()
    click.echo(f"wrote {folder}; view it with: tensorboard --logdir {run_dir}")
