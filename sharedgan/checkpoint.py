"""Checkpoints: one directory per round, one file per role, made whole before it is visible.

Each role writes ``checkpoints/round-NNNNNNN.partial/<role>.pt`` itself (a temporary file, then
rename). When every role's file is there, the main process writes ``manifest.json`` and renames
the directory to ``round-NNNNNNN``: a directory without ``.partial`` is always complete. Only the
last ``keep`` complete checkpoints are kept. Files hold plain state dicts and load with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

PREFIX = "round-"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def partial_dir(run_dir: Path, round_index: int) -> Path:
    return checkpoint_root(run_dir) / f"{PREFIX}{round_index:07d}.partial"


def save_role(run_dir: Path, round_index: int, role: str, state: dict) -> Path:
    folder = partial_dir(run_dir, round_index)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{role}.pt"
    tmp = folder / f".{role}.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def finalize(run_dir: Path, round_index: int, roles: list[str], keep: int) -> Path:
    """Publish round ``round_index`` once every role's file is in place; prune older ones."""
    folder = partial_dir(run_dir, round_index)
    missing = [r for r in roles if not (folder / f"{r}.pt").exists()]
    if missing:
        raise RuntimeError(f"checkpoint of round {round_index} lacks {', '.join(missing)}")
    manifest = {"round": round_index, "roles": roles, "format": 1,
                "rng": "counter-based: every stream is derived from (seed, purpose, role, round)"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    final = checkpoint_root(run_dir) / f"{PREFIX}{round_index:07d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(folder, final)
    for old in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in checkpoint_root(run_dir).glob(f"{PREFIX}*.partial"):  # left by an aborted run
        if int(stale.name[len(PREFIX):-len(".partial")]) < round_index:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and p.name.startswith(PREFIX) and "." not in p.name and (p / "manifest.json").exists())


def latest(run_dir: Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def load_role(checkpoint: Path, role: str) -> dict:
    return torch.load(Path(checkpoint) / f"{role}.pt", map_location="cpu", weights_only=True)
