"""Randomised fault-injection trials: kill, terminate, stop or interrupt a random process of a
running training at a random moment (or at a named critical point), then check what the
reliability promises say (docs/failures.md):

* SIGKILL / SIGTERM of a role: the run ends within 5 s, exit code 1, the error names the role and
  the signal, no traceback;
* SIGSTOP of a role: the heartbeat finds it within --heartbeat-timeout + 5 s, same as a crash;
* SIGINT to one role alone: ignored, the run finishes;
* SIGKILL of the runner: every child exits by itself within 5 s;
* every time: no process, /dev/shm entry or socket left; the latest checkpoint loads; and
  `sharedgan launch --resume` finishes the run (or, with no checkpoint yet, refuses with exit 2).

    python examples/studies/fault_trials.py --trials 50 [--seed 0] [--out runs/faults]

Prints one line per trial and a table of counts; exits 1 if any trial broke a promise.
"""
import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from helpers.leaks import Snapshot, alive, wait_clean  # noqa: E402
from sharedgan.storage import checkpoint  # noqa: E402

K, ROUNDS, HEARTBEAT = 3, 800, 3.0
ARGS = ["--k", str(K), "--rounds", str(ROUNDS), "--batch-size", "32", "--hidden", "16", "--eval-samples", "200",
        "--eval-every", "200", "--checkpoint-every", "50", "--heartbeat-timeout", str(HEARTBEAT), "--quiet"]
ROLES = [f"generator-{k}" for k in range(K)] + ["discriminator", "classifier"]
POINTS = [("generator-1", "slot-write"), ("discriminator", "validation-write"), ("classifier", "checkpoint-write"),
          ("generator-0", "checkpoint-write"), ("runner", "checkpoint-rename")]


def launch(out: Path, *args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sharedgan", "launch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)


def wait_started(proc: subprocess.Popen, out: Path, timeout: float = 120.0) -> bool:
    log = out / "logs" / "runner.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and "training started" in log.read_text():
            return True
        time.sleep(0.02)
    return False


def trial(rng: random.Random, out: Path) -> tuple[str, str, list[str], float]:
    """One trial: (what was done, outcome, broken promises, seconds from fault to end)."""
    before = Snapshot.take()
    problems: list[str] = []
    env, victim, sig, delay = None, None, None, 0.0
    if rng.random() < 0.3:  # a named critical point, at a random round
        victim, point = rng.choice(POINTS)
        rnd = rng.randrange(49, 400, 50) if "checkpoint" in point else rng.randrange(1, 400)
        sig = signal.SIGKILL if victim == "runner" or rng.random() < 0.5 else signal.SIGTERM
        env = {"SHAREDGAN_FAULT": f"{victim}:{point}:{rnd}:{sig.name}"}
        what = f"{sig.name} {victim} at {point} of round {rnd}"
    else:
        victim = rng.choice(ROLES + ["runner"])
        choices = [signal.SIGKILL] if victim == "runner" else [signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP,
                                                                signal.SIGINT]
        sig, delay = rng.choice(choices), rng.uniform(0.0, 4.0)
        what = f"{sig.name} {victim} {delay:.1f} s into training"
    proc = launch(out, "--out", str(out), "--force", *ARGS, env=env)
    if not wait_started(proc, out):
        proc.kill()
        proc.wait()
        return what, "did not start", ["start-up failed: " + proc.communicate()[1][-300:]], 0.0
    pids = json.loads((out / "processes.json").read_text())
    children = [p for n, p in pids.items() if n != "runner"]
    sent = time.monotonic()
    if env is None:
        time.sleep(delay)
        if proc.poll() is not None:
            return what, "finished before the fault", [], 0.0
        os.kill(pids[victim], sig)
        sent = time.monotonic()
    limit = 5.0 + (HEARTBEAT if sig == signal.SIGSTOP else 0.0)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        problems.append("the run did not end within 120 s")
    took = time.monotonic() - sent
    code = proc.returncode
    if sig == signal.SIGINT:
        outcome = "ignored, run finished" if code == 0 else f"exit {code}"
        if code != 0:
            problems.append(f"SIGINT to {victim} alone ended the run ({code}): {err.strip()[-200:]}")
    elif victim == "runner":
        while any(alive(p) for p in children) and time.monotonic() - sent < 5.0:
            time.sleep(0.02)
        took = time.monotonic() - sent  # for the runner: until its last child is gone
        outcome = "runner killed"
        if code == 0:
            outcome = "finished before the fault"
        elif any(alive(p) for p in children):
            problems.append("children outlived the runner by 5 s")
    else:
        outcome = f"exit {code}"
        if code == 0:
            outcome = "finished before the fault"
        else:
            expected = "stopped making progress" if sig == signal.SIGSTOP else f"{victim} was killed by {sig.name}"
            if code != 1 or expected not in err or "Traceback" in err:
                problems.append(f"expected exit 1 naming {victim} and {sig.name}, got {code}: {err.strip()[-300:]}")
            if env is None and took > limit:
                problems.append(f"took {took:.1f} s to end (limit {limit:g} s)")
    leaks = wait_clean(before, timeout=5.0)
    if leaks:
        problems.append(f"left behind: {leaks}")
    latest = checkpoint.latest(out)
    if latest is not None:
        for role in ROLES:
            try:
                checkpoint.load_role(latest, role)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"latest checkpoint does not load: {exc}")
    if code not in (0,) and sig != signal.SIGINT:
        again = launch(out, "--resume", str(out), "--quiet")
        _, rerr = again.communicate(timeout=300)
        if latest is None:
            if again.returncode != 2 or "no intact checkpoint" not in rerr:
                problems.append(f"resume without a checkpoint: exit {again.returncode}: {rerr.strip()[-200:]}")
            outcome += ", nothing to resume"
        elif again.returncode != 0:
            problems.append(f"resume failed ({again.returncode}): {rerr.strip()[-300:]}")
        else:
            outcome += f", resumed from {latest.name} to the end"
        leaks = wait_clean(before, timeout=5.0)
        if leaks:
            problems.append(f"resume left behind: {leaks}")
    return what, outcome, problems, took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/faults")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts = collections.Counter()
    failed = 0
    times = collections.defaultdict(list)
    for i in range(args.trials):
        what, outcome, problems, took = trial(rng, Path(args.out) / f"trial-{i:03d}")
        counts[(what.split()[0], outcome.split(",")[0])] += 1
        if (" exit" in f" {outcome}" or "killed" in outcome) and " at " not in what:  # a named point has no send time
            times[what.split()[0]].append(took)
        failed += bool(problems)
        timing = "" if " at " in what else f" ({took:.1f} s)"
        print(f"{i:3d} {'FAIL' if problems else 'ok  '} {what}: {outcome}{timing}", flush=True)
        for p in problems:
            print(f"      {p}", flush=True)
    print(f"\n{args.trials} trials, {args.trials - failed} kept every promise, {failed} did not "
          f"(machine: {os.cpu_count()} cores)")
    print(f"{'signal':>8} {'outcome':>28} {'trials':>6}")
    for (sig, outcome), n in sorted(counts.items()):
        print(f"{sig:>8} {outcome:>28} {n:6d}")
    for sig, values in sorted(times.items()):
        values.sort()
        print(f"{sig}: fault to end of run (runner killed: to its last child's exit), "
              f"median {values[len(values) // 2]:.2f} s, max {values[-1]:.2f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
