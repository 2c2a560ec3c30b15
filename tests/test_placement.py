"""--pin-roles: the core plan by hand, and a pinned run that runs where the plan says and still
equals the sequential one."""
import os

import pytest

from helpers.runs import assert_same_run
from sharedgan import TrainConfig, train
from sharedgan.errors import ConfigError
from sharedgan.runtime.placement import core_plan, cpu_list, describe
from sharedgan.storage.rundir import log_path


def _processes(k, **options):
    return TrainConfig(k=k, engine="parallel", **options).processes


def test_k8_on_two_cpus_puts_the_last_served_generators_beside_c():
    """The placement measured in docs/results.md: C + generators 6, 7 on the first CPU."""
    plan = core_plan(_processes(8), 8, [9, 4])  # (any two CPUs: the lower holds C)
    assert describe(plan) == ("CPU 4: classifier, generator-6, generator-7; CPU 9: discriminator, generator-0, "
                              "generator-1, generator-2, generator-3, generator-4, generator-5")


def test_the_late_share_rounds_up_and_the_rest_is_dealt_d_first():
    plan = core_plan(_processes(10), 10, [0, 1, 2])  # ⌈10/4⌉ = 3 late generators
    assert [n for n, c in plan.items() if c == (0,)] == ["classifier", "generator-7", "generator-8", "generator-9"]
    assert plan["discriminator"] == (1,) and plan["generator-0"] == (2,) and plan["generator-1"] == (1,)
    assert sorted(plan) == sorted(_processes(10))  # every process placed once


def test_no_cpu_idles_while_c_has_company():
    """One CPU short of one each: only one generator joins C; every CPU is used."""
    processes = _processes(8)  # 10
    plan = core_plan(processes, 8, list(range(9)))
    assert [n for n, c in plan.items() if c == (0,)] == ["classifier", "generator-7"]
    assert set(plan.values()) == {(c,) for c in range(9)}
    alone = core_plan(processes, 8, list(range(6, 16)))  # as many CPUs as processes: one each
    assert sorted(plan) == sorted(alone) and len(set(alone.values())) == len(alone)


def test_each_process_gets_a_block_of_threads_cpus():
    plan = core_plan(_processes(4), 4, list(range(5)), threads=2)  # blocks (0, 1) and (2, 3); CPU 4 unused
    assert plan["classifier"] == plan["generator-3"] == (0, 1)
    assert {plan[n] for n in ("discriminator", "generator-0", "generator-1", "generator-2")} == {(2, 3)}
    assert core_plan(_processes(4), 4, [0, 1, 2], threads=2) == {}  # one block: nothing to place
    assert cpu_list((4, 5, 6, 7)) == "4-7" and cpu_list((0, 3)) == "0,3"


def test_one_cpu_places_nothing_and_shared_trunk_puts_d_where_c_would_be():
    assert core_plan(_processes(4), 4, [3]) == {} and core_plan(_processes(4), 4, []) == {}
    plan = core_plan(_processes(4, shared_trunk=True), 4, [0, 1])
    assert plan == {"discriminator": (0,), "generator-3": (0,), "generator-0": (1,), "generator-1": (1,),
                    "generator-2": (1,)}


@pytest.mark.parametrize("options", [dict(engine="sequential"), dict(engine="async"),
                                     dict(engine="parallel", transport="distributed")])
def test_only_the_parallel_engine_on_one_machine_is_pinned(options):
    with pytest.raises(ConfigError, match="--pin-roles places the processes of --engine parallel"):
        TrainConfig(k=2, pin_roles=True, **options).validate()


def test_a_pinned_run_runs_where_the_plan_says_and_equals_the_sequential_one(tmp_path, leak_check):
    processes = _processes(3)
    plan = core_plan(processes, 3, sorted(os.sched_getaffinity(0)))
    base = dict(k=3, rounds=20, eval_every=10, eval_samples=200, batch_size=32, hidden=16, seed=5, threads=1)
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **base))
    par = train(TrainConfig(engine="parallel", pin_roles=True, out=str(tmp_path / "par"), **base))
    assert_same_run(seq.run_dir, par.run_dir, TrainConfig(**base).roles)  # the math is unchanged
    if not plan:
        pytest.skip("one CPU: nothing to pin")
    for name in processes:  # every thread of every child (ZeroMQ's too) on the child's CPU
        cpus = cpu_list(plan[name])
        said = f"{name} pinned to CPU {cpus}; its threads run on CPU {cpus}\n"
        assert said in log_path(par.run_dir, name).read_text(), name
