"""``run.h5``, the run file: its schema, written and read here and nowhere else.

One process writes it (the sequential engine itself, or the parallel engine's runner, through
:class:`sharedgan.engines.recorder.RunRecorder`), always whole: built in memory, then renamed
into place, so a reader never sees half a file.

run.h5, schema version 2 (every array's first axis is the round, 0-based; NaN where not recorded)
--------------------------------------------------------------------------------------------------
attributes   schema_version, status (running | complete | interrupted | failed), error, config (JSON),
             engine, k, rounds_planned, rounds_completed, startup_seconds, train_seconds,
             eval_seconds, threads_per_process, software versions (sharedgan, python, torch, numpy,
             pyzmq, libzmq, h5py), host, platform, cpu_count, started_at, finished_at,
             slot_buffer_bytes, peak_rss/<process> (bytes: the runner's and every child's peak
             resident memory, read by the runner from /proc and reported by each process when it
             finishes; the max over a respawned role's lives),
             peak_cuda/<process> (bytes, runs on a GPU: PyTorch's peak CUDA allocation of each process,
             summed over its devices, reported by the process itself when it finishes),
             served/<process> (async: slots each D and C process served),
             sent_bytes/<process> (--transport distributed: bytes it sent point to point)
loss/discriminator  [R]     −J^D, mean over D's K updates of the round
loss/classifier     [R]     −J^C head losses, mean over C's K updates (NaN when K = 1)
loss/generator      [R, K]  J^{G_k} = D term + β_k · C term (+ γ · T term with a teacher)
beta                [R, K]  β_k
term/discriminator  [R, K]  D's term of J^{G_k}: E[1 − min(d, logit t)]
term/classifier     [R, K]  C's term without β: E[softplus(c_k)]
loss/teacher        [R]     (--teacher-weight > 0) T's NLL of the round's real batch before its step: nats per
                    sample (2-D), bits/dim (images); NaN for a fixed teacher (--teacher), which takes no step
loss/distiller      [R]     D_T's loss, mean over its K updates (NaN for --teacher-term likelihood)
term/teacher        [R, K]  T's term of J^{G_k} without γ
time/round          [R]     wall seconds from the end of the previous round to the end of this one
time/<role>/compute, time/<role>/wait, time/<role>/copy   [R, K] for generator, [R] for discriminator and
                    classifier (and teacher): seconds of the round that role spent computing, waiting for a signal,
                    and copying into or out of slots (the sequential engine never waits)
eval/round          [E]     rounds after which an evaluation ran (0-based)
eval/train_seconds  [E]     training wall time up to that evaluation, evaluation time excluded
eval/seconds        [E]     time the evaluation took (fresh samples + metrics)
eval/modes_covered, eval/modes_covered_lenient, eval/high_quality, eval/kl_uniform   [E]
eval/mode_histogram [E, M]  high-quality samples per mode
eval/generator_table [E, K, M+1]  high-quality samples per (generator, mode); last column low quality
eval/samples        [E, N, *sample_shape] float32, eval/generator [E, N] int16: the evaluated samples
data/centers        [M, *sample_shape], attribute std
                    (the eval/ arrays from modes_covered to data/centers: 2-D runs)
eval/images         [E, K, g, H, W, C] uint8: image runs, each generator's first g ≤ 8 evaluated samples
eval/spread         [E, K]  image runs: each generator's spread (``eval.spread``: near 0 when collapsed);
                    absent from files written before it existed (read as NaN)
eval/precision, eval/recall, eval/density, eval/coverage   [E, K]  image runs on labelled data: each
                    generator's realness (``eval.realness``: PRDC in the coverage classifier's features;
                    precision < 0.5 = unreal); NaN where not measured (no labels, --realness off)
eval/mixture_precision, eval/mixture_recall, eval/mixture_density, eval/mixture_coverage   [E]  the mixture's
attributes          realness_k, realness_samples (M per group), realness_reference (real images),
                    realness_real_<metric>: held-out real images judged like a generator (the target)
attributes          data_name, data_cache: image runs, the data set and its HDF5 cache
events/round, events/seconds, events/role, events/what   [V]  what happened besides training: a
                    resume, a role lost and restarted (round: the last round completed before it;
                    seconds: since this process started); strings are UTF-8
A resumed run continues the same file: rounds up to the checkpoint come from the earlier part,
train_seconds adds up every part.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

SCHEMA_VERSION = 2


TIME_PARTS = ("compute", "wait", "copy")  # where a role's round goes: time/<role>/<part>
COMPRESSED = ("eval/images", "eval/samples", "eval/generator")


def software_versions() -> dict:
    import zmq

    from sharedgan.version import __version__
    return {"sharedgan": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": np.__version__, "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "h5py": h5py.__version__}


def decode_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_run_file(path: Path) -> dict:
    """run.h5 as a dict of numpy arrays plus ``attrs`` (used by ``sharedgan eval`` and plots)."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        if int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
            raise ValueError(f"{path} has run-file schema {f.attrs.get('schema_version')}, expected {SCHEMA_VERSION}")
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    for name in ("events/role", "events/what"):
        if name in out:
            out[name] = [decode_text(v) for v in out[name]]
    out["config"] = json.loads(out["attrs"]["config"])
    return out


def format_time_breakdown(data: dict) -> str:
    """Where each role's rounds went (run.h5's time/<role>/*): mean milliseconds per round spent
    computing, waiting for a signal and copying slots, and each as a share of the role's round."""
    lines = ["where the time goes (mean per round; share of that role's round):",
             f"{'role':<15}" + "".join(f"{part:>18}" for part in TIME_PARTS)]
    for role in ("generator", "discriminator", "classifier", "teacher"):
        parts = [data.get(f"time/{role}/{part}") for part in TIME_PARTS]
        if any(p is None for p in parts) or not all(np.isfinite(p).any() for p in parts):
            continue
        means = [float(np.nanmean(p)) for p in parts]
        total = sum(means) or 1.0
        label = f"{role} (each)" if role == "generator" else role
        lines.append(f"{label:<15}" + "".join(f"{m * 1e3:11.2f} ms {m / total:4.0%}" for m in means))
    memory = format_memory(data.get("attrs", {}))
    return "\n".join(lines + ([memory] if memory else []))


def format_memory(attrs: dict) -> str:
    """Each process's peak resident memory (run.h5's ``peak_rss/<process>`` attributes; generators
    as a range) and the slot buffer's size, then on a second line the peak CUDA memory
    (``peak_cuda/<process>``) of a run on a GPU; empty for a run that recorded none."""
    line = _peaks(attrs, "peak_rss/", "peak resident memory", "pages they share counted in each")
    if not line:
        return ""
    buffer = attrs.get("slot_buffer_bytes")
    line += f"; slot buffer {buffer / 2**20:,.2f} MB" if buffer else ""
    cuda = _peaks(attrs, "peak_cuda/", "peak CUDA memory", "each process's own allocations")
    return line + (f"\n{cuda}" if cuda else "")


def _peaks(attrs: dict, prefix: str, what: str, summed: str) -> str:
    peaks = {name.split("/", 1)[1]: int(v) for name, v in attrs.items() if name.startswith(prefix)}
    if not peaks:
        return ""
    mb = lambda b: f"{b / 2**20:,.0f} MB"  # noqa: E731
    gens = [v for name, v in peaks.items() if name.startswith("generator-")]
    others = sorted((name for name in peaks if not name.startswith("generator-")), key=lambda n: (n != "runner", n))
    parts = [f"{name} {mb(peaks[name])}" for name in others]
    if gens:
        low = f"{min(gens) / 2**20:,.0f}–" if mb(min(gens)) != mb(max(gens)) else ""
        parts.append(f"generators {low}{mb(max(gens))}" + (" each" if len(gens) > 1 else ""))
    line = f"{what}: {', '.join(parts)}"
    return line + (f"; {mb(sum(peaks.values()))} in all ({summed})" if len(peaks) > 1 else "")


def write_run_file(target, attrs: dict, data: dict, events: list[dict]) -> None:
    """Write the run file to ``target`` (a path or a file object): ``attrs`` as attributes (the
    schema version, host and software versions added here), every array of ``data`` as a dataset
    (``name@attr`` entries become attributes of dataset ``name``), ``events`` as the events/ group."""
    with h5py.File(target, "w") as f:
        f.attrs.update({"schema_version": SCHEMA_VERSION, "host": socket.gethostname(), "platform": platform.platform(),
                        "cpu_count": os.cpu_count() or 0, **attrs,
                        **{f"version_{k}": str(v) for k, v in software_versions().items()}})
        for name, values in data.items():
            if "@" not in name:
                f.create_dataset(name, data=values, compression="gzip" if name in COMPRESSED else None)
        for name, value in data.items():
            if "@" in name:
                dataset, _, attr = name.partition("@")
                f[dataset].attrs[attr] = value
        text = h5py.string_dtype()
        f.create_dataset("events/round", data=np.array([e["round"] for e in events], dtype=np.int64))
        f.create_dataset("events/seconds", data=np.array([e["seconds"] for e in events], dtype=np.float64))
        f.create_dataset("events/role", data=[e["role"] for e in events], dtype=text)
        f.create_dataset("events/what", data=[e["what"] for e in events], dtype=text)
