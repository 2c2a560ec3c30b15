"""Writing files so that a reader never sees half of one, and hashing them."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # (read once, at import: the process's umask, which os.umask can only read by setting)


def write_file(path: Path, data) -> None:
    """Write and flush to the disk, so a full disk shows up here as an OSError, not later."""
    # O_NOFOLLOW: a symlink planted at the name is refused, never written through
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def user_cache() -> Path:
    """The user's own cache folder for sharedgan ($XDG_CACHE_HOME/sharedgan, else ~/.cache/sharedgan):
    where commands that only read a run keep what they compute once (the coverage classifier, the
    real images' Inception statistics), since they write nothing where a run directory points."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sharedgan"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` through a hidden temporary file of its own (a unique name,
    created exclusively: two writers never share one, and a link planted there is never followed),
    flushed, then renamed: readers see the old file or the new one, never half of one; a failed
    write leaves nothing. A symbolic link at ``path`` itself is replaced, not followed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # (mkstemp makes 0600; a file here is as open() would make it)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

