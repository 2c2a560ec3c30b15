"""``sharedgan data``: prepare an image data set's HDF5 cache and describe it."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("name")
@click.option("--data-dir", type=click.Path(), default="data", show_default=True,
              help="Where the official files are (or are downloaded to): cifar-10-python.tar.gz or "
                   "cifar-10-batches-py/; the four MNIST IDX files.")
@click.option("--cache-dir", type=click.Path(), help="Where the HDF5 cache goes [default: DATA_DIR/cache].")
@click.option("--no-verify-md5", is_flag=True, help="Accept archives whose MD5 differs from the published one "
                                                    "(a re-packed copy); the content is still checked.")
@click.option("--no-download", is_flag=True, help="Never reach for the network; fail if the files are missing.")
@click.option("--png", type=click.Path(),
              help="Also write a grid of 64 images, one row per class where there are labels.")
def data(name, data_dir, cache_dir, no_verify_md5, no_download, png):
    """Prepare a data set's HDF5 cache and describe it: NAME is cifar10, mnist, or the path of your
    own data (.h5 with 'images' [N, H, W, C] uint8 and optional 'labels' [N]; .npy; .npz; a folder
    of PNG/JPEG images, one sub-folder per class if labelled).

    The cache is built once; later runs map it without copying. A missing or damaged source is
    refused with a one-line error that says how to get a good one, and nothing is half-written.
    """
    import numpy as np

    from sharedgan.data.images import load
    def building(cache):  # decoding a data set takes a while: say so on a terminal (like a progress bar)
        if sys.stderr.isatty():
            click.echo(f"building the cache {cache} (once; later runs map it)...", err=True)
    d = load(name, data_dir, cache_dir, verify_md5=not no_verify_md5, download=not no_download, on_build=building)
    n, (h, w, c) = len(d.images), d.shape
    held_out = f", {len(d.test_images)} held out" if d.test_images is not None else ""
    click.echo(f"{d.name}: {n} images {h}×{w}×{c} uint8{held_out}; cache {d.cache}")
    if d.classes:
        counts = np.bincount(d.labels[d.labels >= 0], minlength=len(d.classes))
        click.echo("classes: " + ", ".join(f"{name} {count}" for name, count in zip(d.classes, counts)))
    if png:
        from sharedgan.plots import save_image_grid
        pick = _grid_picks(d.labels, len(d.classes))
        save_image_grid(np.asarray(d.images[pick]), png, columns=8)
        click.echo(f"wrote {png}")


def _grid_picks(labels, num_classes: int, per_row: int = 8, rows: int = 8):
    """Indices for a picture: one row per class (up to ``rows``) when labelled, else the first 64."""
    import numpy as np
    if num_classes == 0:
        return np.arange(min(len(labels), per_row * rows))
    picks = [np.flatnonzero(labels == c)[:per_row] for c in range(min(num_classes, rows))]
    return np.concatenate([p for p in picks if len(p)])
