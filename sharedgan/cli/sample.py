"""``sharedgan sample``: samples of a run's mixture in a format other tools read (and a picture)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

import click

from sharedgan.errors import ConfigError

FORMATS = ("h5", "npz", "png", "csv")
SUFFIXES = {".h5": "h5", ".hdf5": "h5", ".npz": "npz", ".csv": "csv"}


@click.command()
@click.argument("run", type=click.Path())
@click.option("--n", "n", type=click.IntRange(min=1, max=10_000_000), default=2500, show_default=True,
              help="Number of samples.")
@click.option("--out", "out", type=click.Path(), required=True,
              help="File (h5, npz, csv) or folder (png) to write; refused if it exists, unless --force.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="h5: HDF5; npz: NumPy; png: a folder of one PNG per image with generators.csv (image runs); "
                   "csv: x, y, generator per line (2-D runs) [default: from --out's suffix, else h5].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise and of the generator choice.")
@click.option("--force", is_flag=True, help="Replace --out.")
@click.option("--png", type=click.Path(),
              help="Also write a picture of the samples (a grid, one row per generator, for images).")
@click.option("--trust-run", is_flag=True,
              help="RUN's config.json may name model factories sharedgan does not ship: import and run them "
                   "(only for runs you trust; see the README's Security).")
def sample(run, trust_run, n, out, fmt, seed, force, png):
    """Draw N samples of the mixture from RUN's latest checkpoint into --out.

    Each sample picks its generator uniformly. h5 and npz hold samples [N, 2] float32 (2-D runs) or
    images [N, H, W, C] uint8 (image runs) and generator [N] int64; h5 also the run, round and
    seed as attributes. png (image runs): OUT/g{k}-{i}.png, one file per image (what clean-fid and
    pytorch-fid read), and OUT/generators.csv (file, generator). csv (2-D runs): a header, then
    x, y, generator. Nothing is written but --out (and --png).
    """
    from sharedgan.runs import load_run
    if fmt is None and Path(out).suffix.lower() == ".png":
        raise ConfigError(f"--out {out}: a .png is one picture; for a folder of images pass --format png, "
                          "for a picture of the samples --png")
    fmt = fmt or SUFFIXES.get(Path(out).suffix.lower(), "h5")
    target = Path(out)
    if png and Path(png).exists() and not force:
        raise ConfigError(f"{png} exists; choose another --png or pass --force")
    if target.exists() or target.is_symlink():
        if not force:
            raise ConfigError(f"{out} exists; choose another --out or pass --force")
        if target.is_dir() and not target.is_symlink() and fmt != "png":
            raise ConfigError(f"{out} is a folder; --format {fmt} writes a file: choose another --out")
    r = load_run(run, trust=trust_run)
    if fmt == "png" and not r.config.images:
        raise ConfigError(f"{run} is a 2-D run: its samples are points, not pictures; use --format csv or npz "
                          "(--png draws a scatter)")
    if fmt == "csv" and r.config.images:
        raise ConfigError(f"{run} is an image run: use --format png (a folder of images), npz or h5")
    samples, which = r.sample(n, seed)
    try:
        WRITERS[fmt](target, r, samples, which.numpy(), {"run": str(Path(run).resolve()), "round": r.round,
                                                        "seed": seed})
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {n} samples from round {r.round + 1} of {run} to {out} ({fmt})")
    if png:
        _sample_picture(r, samples, which, png)
        click.echo(f"wrote {png}")


def _arrays(r, samples) -> tuple[str, object]:
    if r.config.images:
        from sharedgan.data.images import to_uint8
        return "images", to_uint8(samples)
    return "samples", samples.numpy()


def _write_h5(target: Path, r, samples, which, attrs: dict) -> None:
    import h5py

    from sharedgan.storage.files import write_atomic
    name, values = _arrays(r, samples)
    data = io.BytesIO()
    with h5py.File(data, "w") as f:
        f.create_dataset(name, data=values, compression="gzip" if name == "images" else None)
        f.create_dataset("generator", data=which)
        f.attrs.update(attrs)
    write_atomic(target, data.getbuffer())  # (a rename: a symlink at --out is replaced, not followed)


def _write_npz(target: Path, r, samples, which, attrs: dict) -> None:
    import numpy as np

    from sharedgan.storage.files import write_atomic
    name, values = _arrays(r, samples)
    data = io.BytesIO()
    np.savez_compressed(data, **{name: values, "generator": which, "round": np.int64(attrs["round"]),
                                 "seed": np.int64(attrs["seed"])})
    write_atomic(target, data.getbuffer())  # (a rename: a symlink at --out is replaced, not followed)


def _write_csv(target: Path, r, samples, which, attrs: dict) -> None:
    from sharedgan.storage.files import write_atomic
    text = io.StringIO()
    rows = csv.writer(text)
    rows.writerow(["x", "y", "generator"])
    for (x, y), k in zip(samples.numpy().tolist(), which.tolist()):
        rows.writerow([repr(x), repr(y), k])
    write_atomic(target, text.getvalue())


def _write_png_folder(target: Path, r, samples, which, attrs: dict) -> None:
    """One PNG per image, in a folder made whole beside --out and then renamed into place."""
    from PIL import Image

    from sharedgan.data.images import to_uint8
    images = to_uint8(samples)
    parent = target.parent.resolve()  # (beside --out itself, even when --out is a link)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        count = [0] * r.config.k
        with open(staging / "generators.csv", "w", newline="") as listing:
            rows = csv.writer(listing)
            rows.writerow(["file", "generator"])
            for image, k in zip(images, which.tolist()):
                name = f"g{k}-{count[k]:06d}.png"
                count[k] += 1
                Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(staging / name)
                rows.writerow([name, k])
        os.chmod(staging, 0o755)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


WRITERS = {"h5": _write_h5, "npz": _write_npz, "csv": _write_csv, "png": _write_png_folder}


def _sample_picture(r, samples, which, png) -> None:
    from sharedgan.plots import save_image_grid, scatter_samples
    if not r.config.images:
        scatter_samples(samples.numpy(), which.numpy(), r.dataset.centers.numpy(), r.config.k, png)
        return
    import numpy as np

    from sharedgan.data.images import to_uint8
    pictures = to_uint8(samples)
    rows = [pictures[(which == k).numpy()][:8] for k in range(r.config.k)]
    width = max(len(row) for row in rows)
    blank = np.full((width, *pictures.shape[1:]), 255, np.uint8)
    grid = np.concatenate([np.concatenate([row, blank[len(row):]]) for row in rows])
    save_image_grid(grid, png, columns=width)
