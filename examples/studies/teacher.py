"""HGAN's teacher on the 2-D mixtures: does distilling an explicit likelihood model drop fewer modes?

    python examples/studies/teacher.py [--seeds 1,2,3,4,5] [--jobs 1] [--only ring8-k1-none,...]
                                       [--runs runs/teacher] [--out docs/teacher]

First trains one fixed teacher per data set (`sharedgan teacher`'s code, 20000 steps) and reports
its held-out NLL beside the true mixture's (the floor). Then each row trains K generators for 3000
rounds (sequential engine, one thread; the engines give the same numbers) with and without the
teacher's term, for each seed, and reports the final evaluation (2,500 fresh samples): modes
covered, % high quality, KL(p̂ ‖ uniform), as mean ± std, and the seconds per round, to price the
teacher. Finished runs keep a result.json and are not trained again, so a cut-off study resumes.
Writes <out>/results.md and <out>/final_samples.png.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reproduce_2d import final_samples, summary_cells, train_all  # noqa: E402 - the 2-D study's cells and picture

TEACHER_STEPS = 20_000
FIXED = "fixed"  # a row's teacher: the study's trained-before one, for its data set
ROWS = {  # name: (what, settings)
    "ring8-k1-none": ("K = 1 on ring8, no teacher (the baseline)", dict(k=1)),
    "ring8-k1-adversarial": ("K = 1 on ring8, γ = 1, D_T's term, fixed teacher",
                             dict(k=1, teacher_weight=1.0, teacher=FIXED)),
    "ring8-k1-likelihood": ("K = 1 on ring8, γ = 1, −log p_T, fixed teacher",
                            dict(k=1, teacher_weight=1.0, teacher_term="likelihood", teacher=FIXED)),
    "ring8-k1-online": ("K = 1 on ring8, γ = 1, D_T's term, the teacher trained in the run",
                        dict(k=1, teacher_weight=1.0)),
    "grid25-k1-none": ("K = 1 on grid25, no teacher", dict(k=1, dataset="grid25")),
    "grid25-k1-adversarial": ("K = 1 on grid25, γ = 1, D_T's term, fixed teacher",
                              dict(k=1, dataset="grid25", teacher_weight=1.0, teacher=FIXED)),
    "grid25-k1-likelihood": ("K = 1 on grid25, γ = 1, −log p_T, fixed teacher",
                             dict(k=1, dataset="grid25", teacher_weight=1.0, teacher_term="likelihood",
                                  teacher=FIXED)),
    "ring8-k4-none": ("K = 4 on ring8, no teacher", dict(k=4)),
    "ring8-k4-adversarial": ("K = 4 on ring8, γ = 1, D_T's term, fixed teacher",
                             dict(k=4, teacher_weight=1.0, teacher=FIXED)),
}


def fixed_teacher(runs: Path, dataset: str) -> dict:
    """The study's teacher for ``dataset``: trained once, then read back with its report."""
    from sharedgan import TrainConfig
    from sharedgan.teaching import train_teacher
    path, report_path = runs / "teachers" / f"{dataset}.pt", runs / "teachers" / f"{dataset}.json"
    if not report_path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        config = TrainConfig(dataset=dataset, teacher_weight=1.0, engine="sequential").validate()
        r = train_teacher(config, TEACHER_STEPS, path)
        report_path.write_text(json.dumps(dict(dataset=dataset, nll=r.nll, floor=r.floor, steps=r.steps,
                                               seconds=r.seconds, path=str(path))))
    return json.loads(report_path.read_text())


def run_one(job):
    name, seed, run_dir, teacher_path = job
    import h5py

    from sharedgan import TrainConfig, train
    settings = dict(ROWS[name][1])
    if settings.get("teacher") == FIXED:
        settings["teacher"] = teacher_path
    config = TrainConfig(engine="sequential", threads=1, seed=seed, out=str(run_dir), **settings)
    start = time.monotonic()
    train(config, force=True)
    wall = time.monotonic() - start
    with h5py.File(Path(run_dir) / "run.h5") as f:
        rounds = int(f.attrs["rounds_planned"])
        result = dict(name=name, seed=seed, rounds=rounds, wall_seconds=wall,
                      train_seconds=float(f.attrs["train_seconds"]), modes=int(f["eval/modes_covered"][-1]),
                      num_modes=len(f["data/centers"]), high_quality=float(f["eval/high_quality"][-1]),
                      kl=float(f["eval/kl_uniform"][-1]), dataset=config.dataset)
    (Path(run_dir) / "result.json").write_text(json.dumps(result))
    return result


def tables(teachers: dict, results: dict) -> str:
    lines = ["| teacher | steps | held-out NLL (nats) | true mixture's NLL (the floor) | train s |",
             "|---|---|---|---|---|"]
    lines += [f"| {t['dataset']} | {t['steps']} | {t['nll']:.3f} | {t['floor']:.3f} | {t['seconds']:.0f} |"
              for t in teachers.values()]
    lines += ["", "| row | what | rounds | seeds | modes covered | high quality % | KL(p̂‖uniform) | goal reached "
              "| ms / round |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {ROWS[name][0]} | {summary_cells(rows)} | "
              f"{1e3 * statistics.mean(r['train_seconds'] / r['rounds'] for r in rows):.1f} |"
              for name, rows in results.items() if rows]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--only", default="", help="comma-separated row names (default: all, in the order above)")
    ap.add_argument("--runs", default="runs/teacher")
    ap.add_argument("--out", default="docs/teacher")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        sys.exit(f"error: unknown row {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    runs, out = Path(args.runs), Path(args.out)
    datasets = sorted({ROWS[n][1].get("dataset", "ring8") for n in names})
    teachers = {d: fixed_teacher(runs, d) for d in datasets}
    results, jobs = {n: [] for n in names}, []
    for name in names:
        for seed in (int(s) for s in args.seeds.split(",")):
            saved = runs / name / f"seed{seed}" / "result.json"
            if saved.is_file():
                results[name].append(json.loads(saved.read_text()))
            else:
                path = teachers[ROWS[name][1].get("dataset", "ring8")]["path"]
                jobs.append((name, seed, runs / name / f"seed{seed}", path))
    train_all(run_one, jobs, results, args.jobs)
    out.mkdir(parents=True, exist_ok=True)
    shown = final_samples(results, runs, out / "final_samples.png", columns=3)
    text = ("# HGAN's teacher on the 2-D mixtures\n\nProduced by `python examples/studies/teacher.py` (sequential "
            "engine, one thread per run).\n\n" + tables(teachers, results) + "\n"
            + ("\n![final samples](final_samples.png)\n" if shown else ""))
    (out / "results.md").write_text(text)
    print("\n" + tables(teachers, results), flush=True)


if __name__ == "__main__":
    main()
