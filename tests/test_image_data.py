"""Image data sets from their official formats into the HDF5 cache; bad data is refused in one
line and nothing is half-written into the cache."""
import h5py
import numpy as np
import pytest

from helpers.data_files import CIFAR_BATCHES, cifar_archive, cifar_batch, cifar_folder, mnist_files
from sharedgan.data.images import load, md5
from sharedgan.errors import DataError


def test_cifar10_from_the_extracted_folder(tmp_path):
    cifar_folder(tmp_path, n=6)
    d = load("cifar10", tmp_path)
    assert d.images.shape == (30, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.test_images.shape == (6, 32, 32, 3) and len(d.classes) == 10
    # the official layout is three 1024-byte colour planes per row: pixel (0, 0) is bytes 0, 1024, 2048
    first = np.frombuffer(__import__("pickle").loads(cifar_batch(6, 0))[b"data"][0].tobytes(), dtype=np.uint8)
    assert list(d.images[0, 0, 0]) == [first[0], first[1024], first[2048]]
    assert isinstance(d.images, np.memmap)  # mapped from the cache, not copied


def test_cifar10_archive_is_checked_against_its_md5(tmp_path):
    archive = cifar_archive(tmp_path, n=4)
    with pytest.raises(DataError, match="not the published c58f30108f718f92721af3b95e74349a"):
        load("cifar10", tmp_path, download=False)
    assert not (tmp_path / "cache").exists()
    d = load("cifar10", tmp_path, verify_md5=False)  # a re-packed copy, accepted on request
    assert d.images.shape == (20, 32, 32, 3)
    with h5py.File(d.cache) as f:
        assert f.attrs["source_id"] == md5(archive)


@pytest.mark.parametrize("damage, says", [
    (lambda a: a.write_bytes(a.read_bytes()[: len(a.read_bytes()) // 2]), "not a readable .tar.gz"),
    (lambda a: a.write_bytes(b"not a tarball"), "not a readable .tar.gz"),
])
def test_damaged_cifar10_archive(tmp_path, damage, says):
    archive = cifar_archive(tmp_path, n=4)
    damage(archive)
    with pytest.raises(DataError, match=says):
        load("cifar10", tmp_path, verify_md5=False)
    assert not list((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True


def test_cifar10_archive_missing_a_batch(tmp_path):
    cifar_archive(tmp_path, drop="data_batch_3")
    with pytest.raises(DataError, match="lacks data_batch_3"):
        load("cifar10", tmp_path, verify_md5=False)


def test_cifar10_batch_of_the_wrong_shape(tmp_path):
    folder = cifar_folder(tmp_path)
    import pickle
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(DataError, match=r"expected uint8 data \[n, 3072\]"):
        load("cifar10", tmp_path)


def test_cifar10_pickle_that_would_run_code_is_refused(tmp_path):
    folder = cifar_folder(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    import pickle
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="builtins.print is not allowed"):
        load("cifar10", tmp_path)


def test_missing_cifar10_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="put cifar-10-python.tar.gz .* or pass --data-dir"):
        load("cifar10", tmp_path, download=False)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_scaled_to_32(tmp_path, gz):
    mnist_files(tmp_path, n=12, gz=gz)
    if gz:
        with pytest.raises(DataError, match="not the published"):
            load("mnist", tmp_path, download=False)
    d = load("mnist", tmp_path, verify_md5=False)
    assert d.images.shape == (12, 32, 32, 1) and d.test_images.shape == (12, 32, 32, 1)
    assert d.labels.shape == (12,) and d.labels.max() <= 9


def test_mnist_truncated_and_mismatched(tmp_path):
    root = mnist_files(tmp_path / "a", gz=False)
    path = root / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated or damaged"):
        load("mnist", root)
    root = mnist_files(tmp_path / "b", n=12, gz=False, labels_for=11)
    with pytest.raises(DataError, match="12 images but 11 labels"):
        load("mnist", root)


def test_own_h5_npy_npz_and_folder(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 2, 0])
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f["images"], f["labels"] = images, labels
    np.save(tmp_path / "arr.npy", images[..., 0])
    np.savez(tmp_path / "z.npz", images=images, labels=labels)
    from PIL import Image
    for i, im in enumerate(images):
        (tmp_path / "pics" / f"class{labels[i]}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(tmp_path / "pics" / f"class{labels[i]}" / f"{i}.png")
    cache = tmp_path / "cache"
    h5 = load(str(tmp_path / "mine.h5"), cache_dir=cache)
    assert np.array_equal(h5.images, images) and np.array_equal(h5.labels, labels)
    assert load(str(tmp_path / "arr.npy"), cache_dir=cache).images.shape == (5, 8, 8, 1)
    assert np.array_equal(load(str(tmp_path / "z.npz"), cache_dir=cache).labels, labels)
    folder = load(str(tmp_path / "pics"), cache_dir=cache)
    assert folder.classes == ["class0", "class1", "class2"] and folder.images.shape == (5, 8, 8, 3)
    assert sorted(folder.labels.tolist()) == sorted(labels.tolist())


@pytest.mark.parametrize("make, says", [
    (lambda p: np.save(p / "f.npy", np.zeros((3, 8, 8, 3), np.float32)), "images must be uint8"),
    (lambda p: np.save(p / "f.npy", np.zeros((3, 8), np.uint8)), r"uint8 \[N, H, W, C\]"),
    (lambda p: np.save(p / "f.npy", np.zeros((3, 8, 8, 4), np.uint8)), "C = 1 or 3"),
    (lambda p: np.savez(p / "f.npz", images=np.zeros((3, 8, 8, 3), np.uint8), labels=np.zeros(2, int)),
     "3 images but labels of shape"),
    (lambda p: np.savez(p / "f.npz", pictures=np.zeros((3, 8, 8, 3), np.uint8)), "has no 'images' array"),
    (lambda p: (p / "f.npy").write_bytes(b"\x93NUMPY garbage"), "cannot be read"),
    (lambda p: (p / "f.txt").write_text("hello"), "unknown data file type"),
])
def test_bad_own_data(tmp_path, make, says):
    make(tmp_path)
    (path,) = [p for p in tmp_path.iterdir() if p.name.startswith("f.")]
    with pytest.raises(DataError, match=says):
        load(str(path), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_cache_is_reused_and_rebuilt_when_the_source_changes(tmp_path):
    cifar_folder(tmp_path)
    first = load("cifar10", tmp_path).cache
    stamp = first.stat().st_mtime_ns
    assert load("cifar10", tmp_path).cache.stat().st_mtime_ns == stamp  # reused
    (tmp_path / "cifar-10-batches-py" / CIFAR_BATCHES[0]).write_bytes(cifar_batch(6, 99))
    assert load("cifar10", tmp_path).cache.stat().st_mtime_ns != stamp  # source changed: rebuilt
