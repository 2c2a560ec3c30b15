"""``sharedgan bench``: the timing study of the engines against the sequential baseline.

For every K and repeat the engines run one after another in the same order (so a shared machine's
drift hits them alike); each run is a normal training in ``OUT/runs``. Per cell (engine, K):

* seconds per round and generator updates per second (training time: start-up and evaluation
  excluded), median over repeats;
* speedup = sequential seconds per round ÷ the engine's; efficiency (multi-process engines) =
  speedup ÷ the cores the engine can use (min(cores, its processes × threads));
* start-up seconds (process start to the first round);
* time to quality: training seconds until an evaluation first reaches the target (2-D: every mode
  covered and ≥ ``quality`` high-quality samples; images: no generator collapsed or unreal and the
  mixture's precision ≥ ``quality`` × real held-out images'), median over the repeats that reached it;
* from the time breakdown: the share of a round the roles spent copying slots and waiting, and
  the engine's limit (:func:`round_limit`: the round's work over the cores, or its busiest
  process's, whichever is longer) — how far the engine is from what its own work allows;
* every process's peak resident memory, summed.

Threads: the in-process engines (sequential, batched) get every core (what one process would use), or
``--in-process-threads`` (small models can run faster on one thread than on several); each
process of the multi-process engines (K + 2, plus the async engine's replicas) gets max(1, cores //
processes), so they never oversubscribe. Engines may carry settings: ``async:b8:r2`` (see
:func:`engine_settings`).
Outputs: ``bench.h5`` (one row per run), ``bench.md`` (the table) and ``bench.png`` (wall time per
round relative to the sequential engine against K, with the 1/K limit drawn).
"""

from __future__ import annotations

import io
import os
import platform
import signal
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from sharedgan.config import ENGINES, REPLICA_SYNCS, TrainConfig
from sharedgan.errors import ConfigError
from sharedgan.runtime.interrupts import StopSignals
from sharedgan.storage.files import write_atomic
from sharedgan.storage.runfile import read_run_file

IN_PROCESS = ("sequential", "batched")  # one process: it gets every core


FIELDS = ("k", "repeat", "seconds_per_round", "updates_per_second", "startup_seconds", "time_to_quality",
          "copy_share", "wait_share", "threads", "processes", "peak_rss_mb", "peak_cuda_mb", "limit_seconds_per_round")


@dataclass
class BenchPlan:
    ks: list[int]
    engines: list[str]
    dataset: str = "ring8"
    rounds: int = 300
    repeats: int = 2
    eval_every: int = 25
    quality: float = 0.9  # the target: high-quality share (2-D), share of real images' precision (images)
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    base: dict = field(default_factory=dict)  # further TrainConfig fields for every run
    in_process_threads: int | None = None  # None: every core

    def threads(self, engine: str, k: int) -> int:
        if engine in IN_PROCESS:
            return self.in_process_threads or self.cores
        return max(1, self.cores // self.processes(engine, k))

    def processes(self, engine: str, k: int) -> int:
        return 1 if engine in IN_PROCESS else len(TrainConfig(k=k, **engine_settings(engine)).processes)


ENGINE_TAGS = {"b": "serve_batch", "d": "d_replicas", "c": "c_replicas", "s": "sync_every"}


def engine_settings(spec: str) -> dict:
    """An engine of the study and its settings: ``async:b8:r2:hogwild`` is the async engine with
    --serve-batch 8 (bauto: --serve-batch auto), 2 D and 2 C replicas (r; or d2, c2 apart),
    --replica-sync hogwild (or copy, with s10 for --sync-every 10); ``parallel:pin`` the parallel
    engine with --pin-roles."""
    engine, *tags = spec.split(":")
    if engine not in ENGINES or (tags and engine not in ("async", "parallel")):
        raise ConfigError(f"--engines: {spec!r} unknown; choose from {', '.join(ENGINES)} (async and parallel may "
                          "carry settings, e.g. async:b8:r2:hogwild, parallel:pin)")
    settings: dict = {"engine": engine}
    if engine == "parallel" and tags:
        if tags != ["pin"]:
            raise ConfigError(f"--engines: {spec!r}: parallel takes one setting, pin (--pin-roles)")
        return {**settings, "pin_roles": True}
    for tag in tags:
        if tag in REPLICA_SYNCS:
            settings["replica_sync"] = tag
        elif tag == "bauto":
            settings["serve_batch"] = "auto"
        elif tag[:1] in ENGINE_TAGS | {"r": None} and tag[1:].isdigit():
            for name in (("d_replicas", "c_replicas") if tag[0] == "r" else (ENGINE_TAGS[tag[0]],)):
                settings[name] = int(tag[1:])
        else:
            raise ConfigError(f"--engines: {spec!r}: {tag!r} is not a setting "
                              "(bN, bauto, rN, dN, cN, sN, copy, hogwild)")
    return settings


def parse_list(text: str, what: str, cast=int) -> list:
    try:
        values = [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list, e.g. 2,4,8; got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty")
    return values


def time_to_quality(run: dict, quality: float) -> float:
    """Training seconds at the first evaluation that reaches the target; NaN if none did (or the
    run has no metrics for it). 2-D: every mode covered and ≥ quality high quality. Images (on
    labelled data, where realness is measured): no generator collapsed or unreal, and the mixture's
    precision ≥ quality × that of real held-out images."""
    if "eval/modes_covered" in run:
        modes = run["eval/mode_histogram"].shape[1]
        hit = (run["eval/modes_covered"] >= modes) & (run["eval/high_quality"] >= quality)
    elif "eval/precision" in run and "realness_real_precision" in run.get("attrs", {}):
        from sharedgan.eval.realness import UNREAL
        from sharedgan.eval.spread import COLLAPSED
        real = float(run["attrs"]["realness_real_precision"])
        hit = ((run["eval/spread"] >= COLLAPSED).all(axis=1) & (run["eval/precision"] >= UNREAL).all(axis=1)
               & (run["eval/mixture_precision"] >= quality * real))
    else:
        return float("nan")
    return float(run["eval/train_seconds"][np.argmax(hit)]) if hit.any() else float("nan")


def time_shares(run: dict, seconds_per_round: float) -> tuple[float, float]:
    """(copy, wait) seconds per round, averaged over roles, as shares of a round's wall time."""
    copies, waits = [], []
    for key in run:
        if key.startswith("time/") and key.endswith("/copy"):
            copies.append(np.nanmean(run[key]))
            waits.append(np.nanmean(run[key[:-len("copy")] + "wait"]))
    if not copies or not seconds_per_round:
        return float("nan"), float("nan")
    return float(np.mean(copies) / seconds_per_round), float(np.mean(waits) / seconds_per_round)


def round_limit(run: dict, engine: str, cores: int) -> float:
    """The seconds per round an engine could reach from its own time breakdown: the work of a
    round (every role's compute and copy) spread over the cores, but no faster than its busiest
    process (in lock-step that is usually C, whose K steps follow one another). In one process
    (sequential, batched), the whole work. The median over rounds: round 0 (warm-up) is left out,
    and evaluation rounds, whose generators also draw the evaluation samples, do not weigh in."""
    try:
        work = {role: run[f"time/{role}/compute"][1:] + run[f"time/{role}/copy"][1:]
                for role in ("generator", "discriminator", "classifier")}
    except KeyError:
        return float("nan")
    gens, d, c = work["generator"], work["discriminator"], work["classifier"]
    t = (run["time/teacher/compute"][1:] + run["time/teacher/copy"][1:]) if "time/teacher/compute" in run \
        else np.zeros_like(d)
    total = gens.sum(axis=1) + d + np.nan_to_num(c) + t  # (K = 1: no C)
    if engine.split(":")[0] in IN_PROCESS:
        return float(np.nanmedian(total))
    config = run["config"]
    d_each, c_each = d / config.get("d_replicas", 1), np.nan_to_num(c) / config.get("c_replicas", 1)
    d_and_c = d_each + c_each if config.get("shared_trunk") else np.maximum(d_each, c_each)  # (one process, or two)
    busiest = np.maximum(np.maximum(gens.max(axis=1), d_and_c), t)  # (T: a process of its own)
    return float(np.nanmedian(np.maximum(total / cores, busiest)))


def one_run(plan: BenchPlan, engine: str, k: int, repeat: int, out: Path) -> dict:
    from sharedgan.api import train
    threads = plan.threads(engine, k)
    cfg = TrainConfig(**{**plan.base, **engine_settings(engine), "k": k, "dataset": plan.dataset, "rounds": plan.rounds,
                         "threads": threads, "eval_every": plan.eval_every, "checkpoint_every": plan.rounds,
                         "out": str(out / "runs" / f"{engine.replace(':', '-')}-k{k}-r{repeat}")})
    return measure(plan, engine, k, repeat, train(cfg, force=True))


def measure(plan: BenchPlan, engine: str, k: int, repeat: int, result) -> dict:
    """One run's row, from its result (an interrupted run's rounds count as far as they went)."""
    threads = plan.threads(engine, k)
    run = read_run_file(result.run_dir / "run.h5")
    per_round = result.train_seconds / max(result.rounds_completed, 1)
    copy, wait = time_shares(run, per_round)
    return {"k": k, "repeat": repeat, "seconds_per_round": per_round, "updates_per_second": k / per_round,
            "startup_seconds": result.startup_seconds, "time_to_quality": time_to_quality(run, plan.quality),
            "copy_share": copy, "wait_share": wait, "threads": threads, "processes": plan.processes(engine, k),
            "limit_seconds_per_round": round_limit(run, engine, plan.cores),
            # every process's peak resident memory, summed (the pages they share counted in each), and
            # on a GPU its peak CUDA memory, summed (NaN on the CPU)
            "peak_rss_mb": _summed_mb(run["attrs"], "peak_rss/"),
            "peak_cuda_mb": _summed_mb(run["attrs"], "peak_cuda/")}


def _summed_mb(attrs: dict, prefix: str) -> float:
    peaks = [float(v) for name, v in attrs.items() if name.startswith(prefix)]
    return sum(peaks) / 2**20 if peaks else float("nan")


class BenchInterrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP stopped the study; ``rows`` holds what its runs measured (written),
    the interrupted run's rounds included."""

    def __init__(self, rows: dict, signum: int, total: int):
        self.rows, self.signum = rows, signum
        done = sum(len(r) for r in rows.values())
        super().__init__(f"interrupted by {signal.Signals(signum).name} with {done} of {total} runs measured "
                         "(the interrupted one as far as it went)")


def run_bench(plan: BenchPlan, out: Path, on_run: Callable[[str, int, int, dict], None] | None = None) -> dict:
    """Every (K, repeat, engine) run; returns {engine: [row, ...]} and writes bench.h5/.md/.png.
    A stop signal ends the study after (or in) the current run: the finished runs are written
    all the same, then :class:`BenchInterrupted` says so."""
    from sharedgan.api import TrainingInterrupted
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {e: [] for e in plan.engines}
    total = len(plan.ks) * plan.repeats * len(plan.engines)
    signum = None
    with StopSignals() as stop:  # (between runs; a run's own handlers take over while it trains)
        for k, repeat, engine in _schedule(plan):
            if stop.requested:
                signum = stop.signum
                break
            try:
                row = one_run(plan, engine, k, repeat, out)
            except TrainingInterrupted as exc:
                signum = exc.signum
                if exc.result.rounds_completed > 0:
                    rows[engine].append(measure(plan, engine, k, repeat, exc.result))
                break
            rows[engine].append(row)
            if on_run:
                on_run(engine, k, repeat, row)
    write_h5(out / "bench.h5", plan, rows)
    (out / "bench.md").write_text(markdown(plan, rows) + "\n")
    plot(out / "bench.png", plan, rows)
    if signum is not None:
        raise BenchInterrupted(rows, signum, total)
    return rows


def _schedule(plan: BenchPlan):
    for k in plan.ks:
        for repeat in range(plan.repeats):
            order = plan.engines if repeat % 2 == 0 else plan.engines[::-1]  # neither always goes first
            for engine in order:
                yield k, repeat, engine


def cells(plan: BenchPlan, rows: dict) -> list[dict]:
    """One summary per (engine, K): medians over repeats, speedup against the sequential engine."""
    out = []
    for k in plan.ks:
        base = [r["seconds_per_round"] for r in rows.get("sequential", []) if r["k"] == k]
        base_median = statistics.median(base) if base else float("nan")
        for engine in plan.engines:
            mine = [r for r in rows[engine] if r["k"] == k]
            if not mine:  # (an interrupted study)
                continue
            med = lambda key: statistics.median(r[key] for r in mine)  # noqa: E731
            reached = [r["time_to_quality"] for r in mine if np.isfinite(r["time_to_quality"])]
            speedup = base_median / med("seconds_per_round")
            usable = min(plan.cores, mine[0]["processes"] * mine[0]["threads"])
            # efficiency is a multi-process engine's: an in-process engine is the baseline, not parallel work
            out.append({"engine": engine, "k": k, "seconds_per_round": med("seconds_per_round"),
                        "updates_per_second": med("updates_per_second"), "speedup": speedup,
                        "efficiency": float("nan") if engine in IN_PROCESS else speedup / usable,
                        "startup_seconds": med("startup_seconds"),
                        "time_to_quality": statistics.median(reached) if reached else float("nan"),
                        "reached": f"{len(reached)}/{len(mine)}", "copy_share": med("copy_share"),
                        "wait_share": med("wait_share"), "threads": mine[0]["threads"],
                        "peak_rss_mb": med("peak_rss_mb"), "peak_cuda_mb": med("peak_cuda_mb"),
                        "limit": med("limit_seconds_per_round")})
    return out


def _fmt(value: float, spec: str, missing: str = "—") -> str:
    return missing if not np.isfinite(value) else format(value, spec)


def target_text(plan: BenchPlan) -> str:
    if TrainConfig(dataset=plan.dataset).images:
        return (f"no generator collapsed or unreal, mixture precision ≥ {plan.quality:.0%} of real held-out "
                f"images'")
    return f"every mode covered with ≥ {plan.quality:.0%} high quality"


def markdown(plan: BenchPlan, rows: dict) -> str:
    lines = [
        f"{platform.node()}: {platform.machine()}, {plan.cores} cores, {platform.platform()}; {plan.dataset}, "
        f"{plan.rounds} rounds, {plan.repeats} repeat(s), evaluation every {plan.eval_every} rounds; "
        f"target: {target_text(plan)}",
        "",
        "| engine | K | threads | s/round | its limit | generator updates/s | speedup | efficiency | start-up s "
        "| time to quality s (reached) | copy % | wait % | peak RSS MB (all processes) "
        "| peak CUDA MB (all processes) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells(plan, rows):
        lines.append(
            f"| {c['engine']} | {c['k']} | {c['threads']} | {c['seconds_per_round']:.4f} | {_fmt(c['limit'], '.4f')} "
            f"| {c['updates_per_second']:.1f} "
            f"| {c['speedup']:.2f} | {_fmt(c['efficiency'], '.2f')} | {c['startup_seconds']:.1f} "
            f"| {_fmt(c['time_to_quality'], '.1f')} ({c['reached']}) | {_fmt(100 * c['copy_share'], '.1f')} "
            f"| {_fmt(100 * c['wait_share'], '.1f')} | {_fmt(c['peak_rss_mb'], ',.0f')} "
            f"| {_fmt(c['peak_cuda_mb'], ',.0f')} |")
    return "\n".join(lines)


def write_h5(path: Path, plan: BenchPlan, rows: dict) -> None:
    data = io.BytesIO()
    with h5py.File(data, "w") as f:
        f.attrs.update({"dataset": plan.dataset, "rounds": plan.rounds, "repeats": plan.repeats, "cores": plan.cores,
                        "quality": plan.quality, "platform": platform.platform(), "host": platform.node(),
                        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        for engine, engine_rows in rows.items():
            for name in FIELDS:
                f.create_dataset(f"{engine}/{name}", data=np.array([r[name] for r in engine_rows], dtype=np.float64))
    write_atomic(path, data.getbuffer())


def plot(path: Path, plan: BenchPlan, rows: dict) -> None:
    from sharedgan.plots import plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = np.array(plan.ks)
    summary = cells(plan, rows)
    for engine in plan.engines:
        mine = [c for c in summary if c["engine"] == engine]
        ax.plot([c["k"] for c in mine], [1 / c["speedup"] for c in mine], "o-", label=engine)
    dense = np.linspace(ks.min(), ks.max(), 100)
    ax.plot(dense, 1 / dense, "k--", lw=1, label="1/K (the paper's limit)")
    ax.axhline(1 / plan.cores, color="grey", lw=1, ls=":", label=f"1/{plan.cores} (this machine's cores)")
    ax.set_xlabel("K (generators)")
    ax.set_ylabel("wall time per round ÷ sequential")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{plan.dataset}, {plan.cores} cores")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

