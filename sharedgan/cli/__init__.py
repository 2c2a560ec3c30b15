"""The ``sharedgan`` command line: launch, sample, eval, compare, tensorboard, bench, data, teacher.

Exit codes: 0 done, 1 failure during the run, 2 bad input, 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP.
Bad input is reported in one line, without a traceback, before anything is written.

Each subcommand lives in its own module (``launch``'s options are derived from the settings of
:class:`~sharedgan.config.TrainConfig`); this one holds the group, registers them, and
:func:`main`, the console entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sharedgan.cli.bench import bench
from sharedgan.cli.compare import compare
from sharedgan.cli.data import data
from sharedgan.cli.eval import eval_
from sharedgan.cli.launch import LAST_RUN, launch
from sharedgan.cli.sample import sample
from sharedgan.cli.teacher import teacher
from sharedgan.cli.tensorboard import tensorboard
from sharedgan.errors import ConfigError, FactoryError

EXIT_FAILED, EXIT_USAGE = 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="sharedgan")
def cli():
    """sharedgan: train a mixture of K GAN generators in parallel (PGAN), or the same math in one process.

    \b
    sharedgan launch                      # 8 generators on ring8, parallel engine
    sharedgan launch --engine sequential  # the same training in one process
    sharedgan launch --engine async --serve-batch 4   # no lock-step; D and C serve slots as they arrive
    sharedgan sample RUN --n 2500 --out samples.h5
    sharedgan eval RUN
    sharedgan compare runs/a runs/b --out cmp   # settings that differ, times, final metrics, curves
    sharedgan tensorboard RUN             # TensorBoard files of a finished run (launch mirrors as it trains)
    sharedgan data cifar10 --data-dir ~/data --png cifar10.png
    sharedgan bench --k 2,4,8 --out bench    # the engines against the sequential baseline
    sharedgan teacher --dataset ring8 --out T.pt   # HGAN's teacher, trained once (launch --teacher T.pt)
    """


for _command in (launch, sample, eval_, compare, tensorboard, bench, data, teacher):
    cli.add_command(_command)


def _resume_hint(diverged: bool) -> str:
    """Where a failed launch can go on from (resuming a divergence would only repeat it)."""
    from sharedgan.storage import checkpoint
    out = LAST_RUN.get("out")
    found = checkpoint.latest(Path(out)) if out else None
    if found is None:
        return ""
    if diverged:
        return f"; the last good checkpoint is {found}"
    if LAST_RUN.get("transport") == "distributed":  # (every rank's command takes --resume)
        return f"; resume from {found.name} with: torchrun ... -m sharedgan launch --resume {out}"
    return f"; resume from {found.name} with: sharedgan launch --resume {out}"


def main(argv=None) -> None:
    """Console entry point: one-line errors and documented exit codes, never a traceback for bad input."""
    from sharedgan.errors import Diverged, RoleFailed
    try:
        code = cli.main(args=argv, prog_name="sharedgan", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = 130
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        code = EXIT_USAGE
    except (ConfigError, FactoryError) as exc:
        click.echo(f"error: {exc}", err=True)
        code = EXIT_USAGE
    except (RoleFailed, Diverged) as exc:
        click.echo(f"failed: {exc}{_resume_hint(diverged='diverged at round' in str(exc))}", err=True)
        code = EXIT_FAILED
    except OSError as exc:  # a write of the run itself failed: disk full, file-size limit, read-only disk
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"failed: cannot write{where}: {exc.strerror or exc}; free space and resume{_resume_hint(False)}",
                   err=True)
        code = EXIT_FAILED
    sys.exit(code or 0)
