"""``sharedgan compare``: runs side by side, one table and one figure."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import click


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(),
              help="Also write compare.md (the table) and compare.png (every run's curves) into this folder.")
def compare(runs, out):
    """Compare RUNS: run directories, or folders of them (a bench's --out, whose runs are in runs/).

    Prints one table: the settings that differ between the runs, engine, K, rounds, training
    seconds, seconds per round, and where each ended (2-D: modes covered, high-quality share, KL;
    images: collapsed generators and the lowest spread). --out also draws the losses, β and the
    evaluation metric of every run on one figure. Nothing else is written.
    """
    from sharedgan import compare as comparing
    paths = comparing.find_runs(list(runs))
    loaded = []
    with click.progressbar(paths, label=f"reading {len(paths)} runs", file=sys.stderr,
                           show_pos=True) if len(paths) > 4 else nullcontext(paths) as bar:
        for path in bar:
            loaded.append(comparing.load(path))
    click.echo(comparing.table(loaded))
    if out:
        written = comparing.write(loaded, Path(out))
        click.echo("wrote " + " and ".join(str(p) for p in written))
