"""``--pin-roles``: which cores each process of the lock-step parallel engine runs on.

A lock-step round ends when C has served its K slots in order (one C step each) and the
generator it served last has stepped and written its next batch. While C works, the cores are
crowded: every generator steps as soon as C (and D) validated it. C's last steps are the round's
tail, and once C is done its core sits idle until the next round's batches arrive. So the plan puts
C together with the generators it serves last on the first core (they step when C has just left
it), and D with the other generators on the rest. On 2 cores, K = 8, this brought the parallel
round from 0.72 to 0.67 of the sequential engine's (docs/results.md), where C alone on a core of
its own, or the generators C serves first beside it, brought nothing.

A "core" here is a block of ``--threads`` CPUs, so that a process's torch threads have a CPU each.
Every child computes the same plan from the same inputs (the run's processes, K, --threads and the
CPUs it may use, which every child inherits from the fork server), so nobody needs to send it.
"""

from __future__ import annotations

import logging
import math
import os

log = logging.getLogger("sharedgan")

LATE_SHARE = 4  # ⌈K / 4⌉ generators, the ones C serves last, share C's core (2 of 8 measured best)


def core_plan(processes: list[str], k: int, cpus: list[int], threads: int = 1) -> dict[str, tuple[int, ...]]:
    """Process name → the CPUs it may run on. ``processes``: the run's child processes
    (TrainConfig.processes); ``cpus``: the CPUs the run may use, cut into blocks of ``threads``
    (a "core" each; leftover CPUs unused). Fewer than two blocks: no plan (nothing to place).
    Otherwise the first block holds C (D where C runs in D's process, --shared-trunk) and the
    generators C serves last, ⌈K/4⌉ of them or as few as leave no block empty; D, the teacher and
    the other generators are dealt in turn over the remaining blocks, D first (one process per
    block where there are as many blocks as processes)."""
    cpus = sorted(set(cpus))
    blocks = [tuple(cpus[i:i + threads]) for i in range(0, len(cpus) - threads + 1, threads)]
    if len(blocks) < 2:
        return {}
    head = "classifier" if "classifier" in processes else "discriminator"
    late_count = max(0, min(math.ceil(k / LATE_SHARE), len(processes) - len(blocks)))
    late = [f"generator-{j}" for j in range(k - late_count, k)]
    plan = {name: blocks[0] for name in [head] + late if name in processes}
    rest = [p for p in processes if p not in plan]
    rest = [p for p in rest if not p.startswith("generator-")] + [p for p in rest if p.startswith("generator-")]
    for i, name in enumerate(rest):
        plan[name] = blocks[1 + i % (len(blocks) - 1)]
    return plan


def cpu_list(cpus) -> str:
    """'0', '0,3' or '4-7'."""
    cpus = sorted(cpus)
    if len(cpus) > 2 and cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}"
    return ",".join(map(str, cpus))


def describe(plan: dict[str, tuple[int, ...]]) -> str:
    """'CPU 0: classifier, generator-6, generator-7; CPU 1: discriminator, ...' (for the run's log)."""
    by_block: dict[tuple[int, ...], list[str]] = {}
    for name, block in plan.items():
        by_block.setdefault(block, []).append(name)
    return "; ".join(f"CPU {cpu_list(block)}: {', '.join(names)}" for block, names in sorted(by_block.items()))


def pin(name: str, processes: list[str], k: int, threads: int) -> tuple[int, ...] | None:
    """Pin this process (every thread it has so far; later ones inherit it) to its CPUs in the plan
    over the CPUs it may use now. Returns them, or None where there is nothing to place or the
    system refused (pinning only saves time: a process that cannot be pinned runs unpinned)."""
    cpus = core_plan(processes, k, sorted(os.sched_getaffinity(0)), threads).get(name)
    if cpus is None:
        return None
    try:
        _each_thread(lambda tid: os.sched_setaffinity(tid, cpus))  # (per thread: torch may already have a pool)
    except OSError as exc:
        log.warning("%s: cannot pin to CPU %s (%s); running unpinned", name, cpu_list(cpus), exc)
        return None
    return cpus


def thread_affinities() -> set[str]:
    """The distinct CPU sets of this process's threads, as cpu_list strings (what the log says)."""
    return {cpu_list(cpus) for cpus in _each_thread(os.sched_getaffinity) if cpus is not None}


def _each_thread(action) -> list:
    """``action(tid)`` for every thread of this process; None for a thread that ended meanwhile."""
    results = []
    for tid in os.listdir("/proc/self/task"):
        try:
            results.append(action(int(tid)))
        except ProcessLookupError:
            results.append(None)
    return results
