"""``sharedgan teacher``: train HGAN's teacher once, for runs that hold it fixed (``--teacher T.pt``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sharedgan.errors import ConfigError

DEFAULT_POOL = 2048  # image teachers' samples kept in the file


@click.command()
@click.option("--dataset", default="ring8", show_default=True,
              help="ring8, grid25, cifar10, mnist, or the path of your images (as 'sharedgan launch').")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The teacher file to write (e.g. T.pt).")
@click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Maximum-likelihood steps (Adam, --lr-teacher falling linearly to 0); 20000 took ring8's and "
                   "grid25's teachers to within 0.002 nats of the true mixture's NLL.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--width", "teacher_width", type=click.IntRange(min=1),
              help="--teacher-width: the 2-D MDN's hidden units [128] or the PixelCNN's channels [32].")
@click.option("--components", "teacher_components", type=click.IntRange(min=1), default=16, show_default=True,
              help="--teacher-components of the 2-D teacher.")
@click.option("--lr-teacher", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--data-dir", type=click.Path(), default="data", show_default=True)
@click.option("--cache-dir", type=click.Path())
@click.option("--pool", type=click.IntRange(min=0),
              help="Images: samples of the trained teacher kept in the file. A run with --teacher picks D_T's "
                   "batches from them instead of sampling the PixelCNN pixel by pixel every round (about 5 s for 64 "
                   "digits on one CPU thread, once per pool chunk here). 0: no pool.  [default: 2048 for images; "
                   "2-D teachers sample at once and keep none]")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def teacher(dataset, out, steps, batch_size, teacher_width, teacher_components, lr_teacher, seed, data_dir,
            cache_dir, pool, force):
    """Train the teacher of HGAN (an autoregressive density model: a mixture-density network for
    2-D data, a gated PixelCNN for images) by maximum likelihood, report its held-out negative
    log-likelihood, and save it for 'sharedgan launch --teacher-weight G --teacher OUT', which
    then keeps it fixed. An image teacher's file also keeps a pool of its samples (--pool), from
    which such a run picks its distiller's teacher batches.

    \b
    sharedgan teacher --dataset ring8 --out ring8-teacher.pt
    sharedgan launch --k 1 --teacher-weight 1 --teacher ring8-teacher.pt
    """
    from sharedgan.config import TrainConfig
    from sharedgan.teaching import train_teacher
    target = Path(out)
    if target.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it, or another --out")
    if not target.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {target.parent} does not exist")
    config = TrainConfig(dataset=dataset, batch_size=batch_size, teacher_width=teacher_width,
                         teacher_components=teacher_components, lr_teacher=lr_teacher, seed=seed, data_dir=data_dir,
                         cache_dir=cache_dir, teacher_weight=1.0, engine="sequential").validate()
    if pool is None:
        pool = DEFAULT_POOL if config.images else 0
    if pool and not config.images:
        raise ConfigError(f"--pool {pool}: a 2-D teacher draws its samples at once and keeps no pool; leave --pool out")
    label = "training the teacher" + (", then drawing its pool" if pool else "")
    with click.progressbar(length=steps + pool, label=label, file=sys.stderr, show_pos=True) as bar:
        report = train_teacher(config, steps, target, progress=lambda step, loss: bar.update(1), pool=pool,
                               pool_progress=bar.update)
    floor = f" (the true mixture: {report.floor:.3f} {report.unit})" if report.floor is not None else ""
    kept = f"; {report.pool} samples in its pool ({report.pool_seconds:.1f} s)" if report.pool else ""
    click.echo(f"held-out NLL {report.nll:.3f} {report.unit}{floor} after {report.steps} steps, "
               f"{report.seconds:.1f} s{kept}; wrote {out}")
