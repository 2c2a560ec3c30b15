"""Checkpoints: one directory per round, one file per role, made whole before it is visible.

Each role writes ``checkpoints/round-NNNNNNN.partial/<role>.pt`` itself (a temporary file, then
rename). When every role's file is there, the main process writes ``manifest.json`` (the SHA-256 of
every file, the fingerprint of the config that made it, the training seconds so far) and renames
the directory to ``round-NNNNNNN``: a directory without ``.partial`` is complete. Only the last
``keep`` complete checkpoints are kept. Files hold plain state dicts and load with
``torch.load(weights_only=True)``.

A checkpoint is *intact* when its manifest parses and every file matches its checksum; readers
(``--resume``, ``sharedgan sample``/``eval``, a respawned role) take the newest intact one, so a
file damaged after the fact costs one checkpoint interval, never the run.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
from pathlib import Path

import torch

from sharedgan.errors import CheckpointError, WriteFailed
from sharedgan.models.spec import canonical_factory
from sharedgan.runtime import faults
from sharedgan.storage.files import file_hash, write_atomic, write_file

PREFIX = "round-"


FORMAT = 2


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def partial_dir(run_dir: Path, round_index: int) -> Path:
    return checkpoint_root(run_dir) / f"{PREFIX}{round_index:07d}.partial"


# a checkpoint folder's name, exactly: a copy or a backup beside it ("round-0000019 (copy)",
# "round-0000019.bak") is not one of them and is never read, pruned or deleted
NAME = re.compile(r"round-(\d{7,})(\.partial)?")
ROLE_NAME = re.compile(r"[a-z]+(-\d{1,6})?")


def round_of(folder: Path) -> int:
    return int(NAME.fullmatch(folder.name).group(1))


def save_role(run_dir: Path, round_index: int, role: str, state: dict) -> Path:
    folder = partial_dir(run_dir, round_index)
    path = folder / f"{role}.pt"
    tmp = folder / f".{role}.pt.tmp"
    data = io.BytesIO()
    torch.save(state, data)  # in memory first: torch.save turns a failed write into an opaque error
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_file(tmp, data.getbuffer())
        faults.point("checkpoint-write", role, round_index)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(role, round_index, exc) from exc
    return path


def finalize(run_dir: Path, round_index: int, roles: list[str], keep: int, info: dict | None = None) -> Path:
    """Publish round ``round_index`` once every role's file is in place; prune older ones."""
    folder = partial_dir(run_dir, round_index)
    missing = [r for r in roles if not (folder / f"{r}.pt").exists()]
    if missing:
        raise RuntimeError(f"checkpoint of round {round_index} lacks {', '.join(missing)}")
    manifest = {"format": FORMAT, "round": round_index, "roles": roles,
                "sha256": {r: file_hash(folder / f"{r}.pt") for r in roles}, **(info or {}),
                "rng": "counter-based: every stream is derived from (seed, purpose, role, round)"}
    write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2))
    faults.point("checkpoint-rename", "runner", round_index)
    final = checkpoint_root(run_dir) / f"{PREFIX}{round_index:07d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(folder, final)
    for old in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    remove_partials(run_dir, below=round_index)
    return final


def remove_partials(run_dir: Path, below: int | None = None, above: int | None = None) -> None:
    """Delete ``.partial`` folders (left by an aborted run) older than ``below`` or newer than ``above``."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return
    for stale in root.glob(f"{PREFIX}*.partial"):
        if not NAME.fullmatch(stale.name) or stale.is_symlink():
            continue
        n = round_of(stale)
        if (below is not None and n < below) or (above is not None and n > above):
            shutil.rmtree(stale, ignore_errors=True)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if (m := NAME.fullmatch(p.name)) and not m.group(2) and p.is_dir() and not p.is_symlink()
                  and (p / "manifest.json").exists())


def read_manifest(folder: Path) -> dict:
    """The manifest of an intact checkpoint; :class:`CheckpointError` says what is wrong otherwise."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        _check_manifest(manifest)
        roles, sums, round_index = manifest["roles"], manifest["sha256"], manifest["round"]
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise CheckpointError(f"{folder} has no readable manifest") from None
    if round_index != round_of(folder):
        raise CheckpointError(f"{folder}: its manifest is for round {round_index}")
    for role in roles:
        path = folder / f"{role}.pt"
        if not path.exists():
            raise CheckpointError(f"{folder} lacks {role}.pt")
        if file_hash(path) != sums.get(role):
            raise CheckpointError(f"{path} does not match its checksum (damaged after it was written)")
    return manifest


def _check_manifest(m) -> None:
    """Every field a reader uses, as strictly as the command line's (types, ranges, finiteness)."""
    number = (int, float)
    assert isinstance(m, dict) and m.get("format") == FORMAT
    assert isinstance(m["round"], int) and not isinstance(m["round"], bool) and 0 <= m["round"] < 2**62
    assert isinstance(m["roles"], list) and 0 < len(m["roles"]) <= 4096
    assert all(isinstance(r, str) and ROLE_NAME.fullmatch(r) for r in m["roles"])
    assert isinstance(m["sha256"], dict) and all(isinstance(v, str) for v in m["sha256"].values())
    seconds = m.get("train_seconds", 0.0)
    assert isinstance(seconds, number) and not isinstance(seconds, bool) and math.isfinite(seconds) and seconds >= 0
    assert isinstance(m.get("fingerprint", {}), dict)


def latest(run_dir: Path, skipped: list[str] | None = None) -> Path | None:
    """The newest intact checkpoint; the reasons newer ones were passed over go to ``skipped``."""
    found = latest_with_manifest(run_dir, skipped)
    return None if found is None else found[0]


def latest_with_manifest(run_dir: Path, skipped: list[str] | None = None) -> tuple[Path, dict] | None:
    """:func:`latest` and its manifest, read (and every file hashed) once."""
    for folder in reversed(complete_checkpoints(run_dir)):
        try:
            return folder, read_manifest(folder)
        except CheckpointError as exc:
            if skipped is not None:
                skipped.append(str(exc))
    return None


def check_compatible(folder: Path, fingerprint: dict, roles: list[str]) -> dict:
    """The manifest, after checking that the checkpoint was made by a config with the same tensors
    (``fingerprint``: the settings they depend on) and holds ``roles``."""
    manifest = read_manifest(folder)
    made_by = manifest.get("fingerprint", {})
    if not isinstance(made_by, dict):
        raise CheckpointError(f"{folder} has no readable manifest")
    for name, value in fingerprint.items():
        if canonical_factory(made_by.get(name)) != canonical_factory(value):
            flag = "--" + name.replace("_", "-")
            raise CheckpointError(f"checkpoint {folder} was made with {flag} {made_by.get(name)!r}, this run has "
                                  f"{value!r}; resume with the run's own settings or start a new run")
    if manifest["roles"] != roles:
        raise CheckpointError(f"checkpoint {folder} holds roles {', '.join(map(str, manifest['roles']))}, expected "
                              f"{', '.join(roles)}")
    return manifest


def load_role(folder: Path, role: str) -> dict:
    try:
        return torch.load(Path(folder) / f"{role}.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise CheckpointError(f"cannot load {Path(folder) / f'{role}.pt'}: {exc}".splitlines()[0]) from None

