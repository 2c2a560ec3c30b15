"""Image data sets: CIFAR-10, MNIST and your own, each converted once into an HDF5 cache.

Sources, read in their official formats:

* ``cifar10``: the Python archive ``cifar-10-python.tar.gz`` (checked against its published MD5)
  or the extracted ``cifar-10-batches-py/`` folder, in ``--data-dir``; downloaded from the
  official address when it is missing and the network allows.
* ``mnist``: the four IDX files (gzipped, checked against their published MD5s, or not), scaled
  to 32 × 32 as the PGAN paper does.
* your own: an ``.h5`` file (``images`` [N, H, W, C] uint8, optional ``labels`` [N] integers), an
  ``.npy`` array [N, H, W, C] (or [N, H, W]) uint8, an ``.npz`` with ``images`` (and ``labels``),
  or a folder of PNG/JPEG files of one size (class labels from sub-folder names, if any).

Cache schema (one file per source, written atomically, so a failed conversion leaves nothing):
``images`` [N, H, W, C] uint8 and ``labels`` [N] int64 (−1: unlabelled), stored contiguous and
uncompressed so readers map them without copying; ``test_images`` / ``test_labels`` where the
source has a held-out split; attributes ``format``, ``name``, ``classes`` (JSON), ``source``
(what it was made from) and ``source_id`` (its checksum, or for a folder its listing and sizes).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from sharedgan.errors import DataError
from sharedgan.math.seeding import stream
from sharedgan.storage.files import file_hash, write_atomic

FORMAT = 1


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # the mirror torchvision uses; yann.lecun.com refuses robots


MNIST_FILES = {  # name: published MD5 of the gzipped file
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_CLASSES = 100_000  # labels beyond this are a mistake, not classes (a list of names is built)
MAX_DATA_BYTES = 64 * 2**30  # a data set's images, built into a cache in memory
MAX_IMAGE_PIXELS = 16_777_216  # one image of a folder: 4096 × 4096 (PIL's bomb check is far above)


@dataclass
class ImageData:
    images: np.ndarray  # [N, H, W, C] uint8, read-only, mapped from the cache
    labels: np.ndarray  # [N] int64, −1 where unlabelled
    classes: list[str]
    name: str
    cache: Path
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    source_id: str = ""  # what the cache was made from (a checksum): other caches keyed on the data use it

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


class ImageDataset:
    """Real images for D: uniform draws from the mapped cache (no copy of the data set per
    process or per round), as float [n, C, H, W] in [−1, 1] like the generators' tanh output."""

    centers = None  # no modes: image runs are judged by pictures and class coverage

    def __init__(self, data: ImageData):
        self.data = data

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        h, w, c = self.data.shape
        return (c, h, w)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.data.images), (n,), generator=generator).numpy()
        return from_uint8(self.data.images[idx])


def from_uint8(images) -> torch.Tensor:
    """uint8 images [N, H, W, C] → float [N, C, H, W] in [−1, 1], the generators' range (a copy:
    the mapped cache is read-only)."""
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def real_subset(images, n: int, seed: int, purpose: str) -> np.ndarray:
    """Up to n real images (uint8 [N, H, W, C], an array or the mapped cache) picked at random from
    the stream ``purpose`` of ``seed``; read in file order, which h5py and the page cache prefer."""
    pick = torch.randperm(len(images), generator=stream(seed, purpose))[:n]
    return np.asarray(images[np.sort(pick.numpy())])


def to_uint8(samples) -> np.ndarray:
    """Generator output [N, C, H, W] in [−1, 1] → uint8 images [N, H, W, C]."""
    x = ((samples.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


# ---- the cache ------------------------------------------------------------------------------------
def load(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
         verify_md5: bool = True, download: bool = True, on_build=None, may_build: bool = True) -> ImageData:
    """The data set ``name`` (cifar10, mnist, or a path to your own data), from its cache, which
    is built first if it is missing or stale (``on_build(cache_path)`` is told so first;
    ``may_build=False``: refused instead, so that reading a run never writes where it says)."""
    data_dir = Path(data_dir or "data")
    cache_dir = Path(cache_dir or data_dir / "cache")
    if name == "cifar10":
        source, source_id = _cifar10_source(data_dir, verify_md5, download)
        build = lambda: _read_cifar10(source)  # noqa: E731
    elif name == "mnist":
        source, source_id = _mnist_source(data_dir, verify_md5, download)
        build = lambda: _read_mnist(source)  # noqa: E731
    else:
        source = Path(name)
        if not source.exists():
            raise DataError(f"no data set {name!r}: use cifar10, mnist, or the path of an .h5, .npy or .npz file "
                            "or a folder of PNG/JPEG images")
        source_id = _fingerprint(source)
        build = lambda: _read_own(source)  # noqa: E731
        name = source.stem
    cache = cache_dir / f"{name}.h5"
    if not _cache_matches(cache, source_id):
        if not may_build:
            raise DataError(f"the cache of {name} ({cache}) is missing or out of date; build it first with "
                            f"'sharedgan data {name} --data-dir {data_dir}'")
        if on_build is not None:
            on_build(cache)
        parts = build()
        _write_cache(cache, name, str(source), source_id, *parts)
    return open_cache(cache)


def _cache_matches(cache: Path, source_id: str) -> bool:
    try:
        with h5py.File(cache, "r") as f:
            return int(f.attrs["format"]) == FORMAT and f.attrs["source_id"] == source_id
    except (OSError, KeyError, ValueError):
        return False


def _write_cache(cache: Path, name: str, source: str, source_id: str, images, labels, classes, test=None) -> None:
    _check_images(images, labels, source)
    data = io.BytesIO()
    with h5py.File(data, "w") as f:
        f.create_dataset("images", data=images)  # contiguous, uncompressed: readers map it
        f.create_dataset("labels", data=labels.astype(np.int64))
        if test is not None:
            f.create_dataset("test_images", data=test[0])
            f.create_dataset("test_labels", data=test[1].astype(np.int64))
        f.attrs.update({"format": FORMAT, "name": name, "classes": json.dumps(classes), "source": source,
                        "source_id": source_id})
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, data.getbuffer())
    except OSError as exc:
        raise DataError(f"cannot write the data cache {cache}: {exc.strerror or exc}; pass a writable --cache-dir") from None


def open_cache(cache: Path) -> ImageData:
    """The cached data set, its arrays mapped read-only from the file (no copy, shared by every
    process that opens it)."""
    with h5py.File(cache, "r") as f:
        maps = {key: _map(cache, f[key]) for key in ("images", "labels", "test_images", "test_labels") if key in f}
        classes, name = json.loads(f.attrs["classes"]), str(f.attrs["name"])
        source_id = str(f.attrs["source_id"])
    return ImageData(maps["images"], maps["labels"], classes, name, cache, maps.get("test_images"),
                     maps.get("test_labels"), source_id)


def _map(path: Path, ds: h5py.Dataset) -> np.ndarray:
    offset = ds.id.get_offset()
    if offset is None or ds.size == 0:  # an empty or chunked dataset: read it instead
        return ds[()]
    return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)


def _check_images(images, labels, source: str) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        shape = getattr(images, "shape", None)
        raise DataError(f"{source}: images must be uint8 [N, H, W, C] with C = 1 or 3, got "
                        f"{getattr(images, 'dtype', type(images).__name__)} {list(shape) if shape else ''}".rstrip())
    if len(images) == 0:
        raise DataError(f"{source} holds no images")
    if labels.shape != (len(images),):
        raise DataError(f"{source}: {len(images)} images but labels of shape {list(labels.shape)}; give one label per image")


def _fingerprint(path: Path) -> str:
    """A cheap identity of your own data: for a file its size and mtime, for a folder every
    image's relative path, size and mtime."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(f"{p.relative_to(path) if path.is_dir() else p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def md5(path: Path) -> str:
    return file_hash(path, "md5")


def _fetch(url: str, target: Path) -> None:
    """Download ``url`` to ``target`` (a temporary name first), or say how to get it by hand."""
    tmp = target.with_name(f".{target.name}.download")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as f:
            while block := response.read(1 << 20):
                f.write(block)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise DataError(f"cannot download {url} ({reason}); download it yourself into {target.parent} "
                        "and pass --data-dir") from None


# ---- CIFAR-10 -------------------------------------------------------------------------------------
def _cifar10_source(data_dir: Path, verify_md5: bool, download: bool) -> tuple[Path, str]:
    folder, archive = data_dir / "cifar-10-batches-py", data_dir / "cifar-10-python.tar.gz"
    if folder.is_dir():
        return folder, _fingerprint_files(folder)
    if not archive.exists():
        if not download:
            raise DataError(f"CIFAR-10 not found in {data_dir}: put cifar-10-python.tar.gz (from {CIFAR10_URL}) or "
                            "its extracted cifar-10-batches-py/ there, or pass --data-dir")
        _fetch(CIFAR10_URL, archive)
    digest = md5(archive)
    if verify_md5 and digest != CIFAR10_MD5:
        raise DataError(f"{archive} has MD5 {digest}, not the published {CIFAR10_MD5}: it is damaged or not the "
                        f"official archive; download it again from {CIFAR10_URL}")
    return archive, digest


def _fingerprint_files(folder: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file():
            digest.update(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches and nothing else: only numpy's array reconstruction may be
    called, so a tampered archive cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")


def _cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where} is not a CIFAR-10 batch ({exc}); get the official archive from {CIFAR10_URL}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataError(f"{where}: expected uint8 data [n, 3072] and n labels, got {data.dtype} {list(data.shape)} "
                        f"and {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels  # planes R, G, B → [n, 32, 32, 3]


def _read_cifar10(source: Path):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    raw: dict[str, bytes] = {}
    if source.is_dir():
        for n in names:
            if not (source / n).is_file():
                raise DataError(f"{source} lacks {n}; extract the official archive ({CIFAR10_URL}) again")
            raw[n] = (source / n).read_bytes()
    else:
        try:
            with tarfile.open(source, "r:gz") as tar:
                for member in tar:
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in names:
                        raw[base] = tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{source} is not a readable .tar.gz ({exc}); download it again from {CIFAR10_URL}") from None
        missing = [n for n in names if n not in raw]
        if missing:
            raise DataError(f"{source} lacks {', '.join(missing)}; download it again from {CIFAR10_URL}")
    train = [_cifar_batch(raw[n], f"{source}:{n}") for n in names[:5]]
    test = _cifar_batch(raw["test_batch"], f"{source}:test_batch")
    images = np.ascontiguousarray(np.concatenate([b[0] for b in train]))
    return images, np.concatenate([b[1] for b in train]), CIFAR10_CLASSES, (np.ascontiguousarray(test[0]), test[1])


# ---- MNIST ----------------------------------------------------------------------------------------
def _mnist_source(data_dir: Path, verify_md5: bool, download: bool) -> tuple[dict, str]:
    found, ids = {}, []
    for stem, published in MNIST_FILES.items():
        plain, packed = data_dir / stem, data_dir / f"{stem}.gz"
        if plain.is_file():
            found[stem] = plain
            ids.append(f"{stem}:{plain.stat().st_size}:{plain.stat().st_mtime_ns}")
            continue
        if not packed.is_file():
            if not download:
                raise DataError(f"MNIST not found in {data_dir}: put the four IDX files ({stem}.gz etc., from "
                                f"{MNIST_URL}) there, or pass --data-dir")
            _fetch(MNIST_URL + f"{stem}.gz", packed)
        digest = md5(packed)
        if verify_md5 and digest != published:
            raise DataError(f"{packed} has MD5 {digest}, not the published {published}: it is damaged; download it "
                            f"again from {MNIST_URL}")
        found[stem] = packed
        ids.append(f"{stem}:{digest}")
    return found, hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _idx(path: Path, magic: int, dims: int) -> np.ndarray:
    """An IDX array (big-endian header: magic, then one uint32 per dimension, then uint8 data)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} cannot be read ({exc}); download it again from {MNIST_URL}") from None
    head = 4 + 4 * dims
    if len(raw) < head or struct.unpack(">I", raw[:4])[0] != magic:
        raise DataError(f"{path} is not an IDX file of {dims} dimension(s) (magic {magic}); download it again from {MNIST_URL}")
    shape = struct.unpack(f">{dims}I", raw[4:head])
    expected = head + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path} holds {len(raw)} bytes, its header promises {expected}: it is truncated or damaged")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def _mnist_split(found: dict, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = _idx(found[f"{prefix}-images-idx3-ubyte"], 2051, 3)
    labels = _idx(found[f"{prefix}-labels-idx1-ubyte"], 2049, 1).astype(np.int64)
    if len(labels) != len(images):
        raise DataError(f"MNIST {prefix}: {len(images)} images but {len(labels)} labels; the files do not belong together")
    return resize(images[..., None], 32), labels


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, C] → [N, size, size, C], bilinear (the papers scale MNIST to 32 × 32)."""
    if images.shape[1:3] == (size, size):
        return np.ascontiguousarray(images)
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float()  # a writable copy
    out = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _read_mnist(found: dict):
    images, labels = _mnist_split(found, "train")
    return images, labels, [str(d) for d in range(10)], _mnist_split(found, "t10k")


# ---- your own data --------------------------------------------------------------------------------
def _read_own(path: Path):
    if path.is_dir():
        return _read_folder(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".h5", ".hdf5"):
            with h5py.File(path, "r") as f:
                if not isinstance(f.get("images"), h5py.Dataset):
                    raise DataError(f"{path} has no 'images' dataset; see the schema in 'sharedgan data --help'")
                if "labels" in f and not isinstance(f["labels"], h5py.Dataset):
                    raise DataError(f"{path}: 'labels' is a group, not a dataset of one integer per image")
                _check_size(path, f["images"].shape, f["images"].dtype)
                images = f["images"][()]
                labels = f["labels"][()] if "labels" in f else None
        elif suffix == ".npy":
            images, labels = np.load(path, allow_pickle=False, mmap_mode="r"), None
            _check_size(path, images.shape, images.dtype)
            images = np.asarray(images)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "images" not in z:
                    raise DataError(f"{path} has no 'images' array; save it with np.savez(path, images=..., labels=...)")
                images = z["images"]
                labels = z["labels"] if "labels" in z else None
        else:
            raise DataError(f"{path}: unknown data file type {suffix!r}; use .h5, .npy, .npz or a folder of images")
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path} cannot be read ({str(exc).splitlines()[0]}); is it complete?") from None
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[..., None]  # [N, H, W] grey
    if not isinstance(images, np.ndarray) or images.ndim == 0:
        raise DataError(f"{path}: images must be an array uint8 [N, H, W, C], got "
                        f"{type(images).__name__ if not isinstance(images, np.ndarray) else 'a scalar'}")
    if labels is None:
        labels = np.full(len(images), -1, dtype=np.int64)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be integers, one per image, got {labels.dtype} {list(labels.shape)}")
    if len(labels) and labels.max() >= MAX_CLASSES:
        raise DataError(f"{path}: labels go up to {int(labels.max())}; classes are numbered 0.. (at most "
                        f"{MAX_CLASSES}), -1 for unlabelled")
    classes = [str(c) for c in range(int(labels.max()) + 1)] if len(labels) and labels.max() >= 0 else []
    return images, labels.astype(np.int64), classes


def _check_size(path: Path, shape, dtype) -> None:
    """Refuse, before reading it, a data set too large to hold in memory (a cache is built in RAM)."""
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    if nbytes > MAX_DATA_BYTES:
        raise DataError(f"{path}: its images take {nbytes / 2**30:.1f} GiB, more than sharedgan caches "
                        f"({MAX_DATA_BYTES / 2**30:.0f} GiB); give a smaller data set")


def _read_folder(folder: Path):
    from PIL import Image, UnidentifiedImageError
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no .png or .jpg images")
    subfolders = sorted({p.parent.relative_to(folder).as_posix() for p in files})
    labelled = "." not in subfolders
    images, labels = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{p} is {im.width} × {im.height} pixels; images larger than "
                                    f"{MAX_IMAGE_PIXELS} pixels are refused before they are decoded")
                array = np.asarray(im.convert("L" if im.mode in ("1", "L", "I;16") else "RGB"))
        except Image.DecompressionBombError:
            raise DataError(f"{p} is larger than {MAX_IMAGE_PIXELS} pixels; such images are refused before they "
                            "are decoded") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{p} is not a readable image ({exc})") from None
        if images and array.shape != images[0].shape:
            raise DataError(f"{p} is {list(array.shape)}, {files[0]} is {list(images[0].shape)}: every image must have "
                            "the same size and colour mode")
        images.append(array)
        labels.append(subfolders.index(p.parent.relative_to(folder).as_posix()) if labelled else -1)
    stack = np.stack(images)
    return (stack[..., None] if stack.ndim == 3 else stack), np.array(labels, dtype=np.int64), \
        (subfolders if labelled else [])

