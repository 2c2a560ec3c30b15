"""Choose defaults by measurement: a grid of settings × seeds on ring8, one process per run.

    python examples/studies/sweep_defaults.py --grid beta_schedule=time,combined threshold=0.9,0.99 \
        --seeds 1,2,3,4 --jobs 16 [--set k=8 rounds=3000]

Each run uses the sequential engine with one thread (the parallel engine gives the same numbers),
so --jobs runs fit on --jobs cores. Prints, per setting: final modes covered (min over seeds),
final high-quality share (mean and min over seeds), and the worst high-quality share of any
evaluation after the first third of training (how steady it stays).
"""
import argparse
import itertools
import json
import os
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed

import h5py


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def one(job):
    settings, seed, root = job
    from sharedgan import TrainConfig, train
    out = os.path.join(root, json.dumps(settings, sort_keys=True).replace('"', "").replace(" ", "") + f"-s{seed}")
    train(TrainConfig(engine="sequential", threads=1, seed=seed, out=out, **settings), force=True)
    with h5py.File(os.path.join(out, "run.h5")) as f:
        rounds, hq, modes = f["eval/round"][()], f["eval/high_quality"][()], f["eval/modes_covered"][()]
        late = hq[rounds >= f.attrs["rounds_planned"] / 3]
        return int(modes[-1]), float(hq[-1]), float(late.min()), float(f.attrs["train_seconds"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", nargs="+", default=["beta_schedule=time,combined"], help="field=v1,v2 ...")
    ap.add_argument("--set", nargs="*", default=[], help="field=value fixed for every run")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    args = ap.parse_args()
    fixed = {kv.split("=", 1)[0]: _value(kv.split("=", 1)[1]) for kv in args.set}
    axes = [(kv.split("=", 1)[0], [_value(v) for v in kv.split("=", 1)[1].split(",")]) for kv in args.grid]
    settings = [dict(fixed, **dict(zip([a for a, _ in axes], combo)))
                for combo in itertools.product(*[v for _, v in axes])]
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as root, ProcessPoolExecutor(args.jobs) as pool:
        jobs = [(s, seed, root) for s in settings for seed in seeds]
        futures = {pool.submit(one, job): job for job in jobs}
        for done in as_completed(futures):  # one line per run as it ends, so a cut-off sweep still reports
            settings_, seed, _ = futures[done]
            print(f"run {settings_} seed {seed}: modes, final hq, late min hq, train s = {done.result()}", flush=True)
        results = [f.result() for f in futures]  # in job order
    print(f"{len(seeds)} seeds each; fixed: {fixed or 'defaults'}\n")
    print("| " + " | ".join(a for a, _ in axes)
          + " | modes (min) | high q final (mean / min) | high q late (min) | train s |")
    print("|" + "---|" * (len(axes) + 4))
    for i, s in enumerate(settings):
        rows = results[i * len(seeds):(i + 1) * len(seeds)]
        print("| " + " | ".join(str(s[a]) for a, _ in axes)
              + f" | {min(r[0] for r in rows)} | {statistics.mean(r[1] for r in rows):.1%}"
                f" / {min(r[1] for r in rows):.1%}"
              + f" | {min(r[2] for r in rows):.1%} | {statistics.mean(r[3] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
