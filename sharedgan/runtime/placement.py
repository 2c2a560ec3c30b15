"""``--pin-roles``: which core each process of the lock-step parallel engine runs on.

A lock-step round ends when C has served its K slots in order (one C step each) and the
generator it served last has stepped and written its next batch. While C works, the cores are
crowded: every generator steps as soon as C (and D) validated it. C's last steps are the round's
tail, and once C is done its core sits idle until the next round's batches arrive. So the plan puts
C together with the generators it serves last on the first core (they step when C has just left
it), and D with the other generators on the rest. On 2 cores, K = 8, this brought the parallel
round from 0.71 to 0.64 of the sequential engine's (docs/results.md), where C alone on a core of
its own, or the generators C serves first beside it, brought nothing.

Every child computes the same plan from the same inputs (the run's processes, K, and the cores
the runner may use, which every child inherits), so the runner need not send it.
"""

from __future__ import annotations

import logging
import math
import os

log = logging.getLogger("sharedgan")

LATE_SHARE = 4  # ⌈K / 4⌉ generators, the ones C serves last, share C's core (2 of 8 measured best)


def core_plan(processes: list[str], k: int, cores: list[int]) -> dict[str, int]:
    """Process name → core. ``processes``: the run's child processes (TrainConfig.processes);
    ``cores``: the cores the run may use. One core, or none: no plan (nothing to place). As many
    cores as processes: one each. Otherwise the first core holds C (D where C runs in D's process,
    --shared-trunk) and the ⌈K/4⌉ generators C serves last; D, the teacher and the other
    generators are dealt in turn over the remaining cores, D first."""
    cores = sorted(set(cores))
    if len(cores) < 2:
        return {}
    if len(cores) >= len(processes):
        return dict(zip(processes, cores))
    head = "classifier" if "classifier" in processes else "discriminator"
    late = [f"generator-{j}" for j in range(k - math.ceil(k / LATE_SHARE), k)]
    plan = {name: cores[0] for name in [head] + late if name in processes}
    rest = [p for p in processes if p not in plan]
    rest = [p for p in rest if not p.startswith("generator-")] + [p for p in rest if p.startswith("generator-")]
    for i, name in enumerate(rest):
        plan[name] = cores[1 + i % (len(cores) - 1)]
    return plan


def describe(plan: dict[str, int]) -> str:
    """'core 0: classifier, generator-6, generator-7; core 1: discriminator, ...' (for the run's log)."""
    by_core: dict[int, list[str]] = {}
    for name, core in plan.items():
        by_core.setdefault(core, []).append(name)
    return "; ".join(f"core {core}: {', '.join(names)}" for core, names in sorted(by_core.items()))


def pin(name: str, processes: list[str], k: int) -> int | None:
    """Pin this process (every thread it has so far; later ones inherit it) to its core in the plan
    over the cores it may use now. Returns the core, or None where there is nothing to place."""
    core = core_plan(processes, k, sorted(os.sched_getaffinity(0))).get(name)
    if core is None:
        return None
    for tid in os.listdir("/proc/self/task"):  # (an affinity is per thread: torch may already have a pool)
        try:
            os.sched_setaffinity(int(tid), {core})
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
    return core
