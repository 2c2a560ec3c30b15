"""Class coverage on real images with no download: the handwritten digits bundled with scikit-learn.

    pip install scikit-learn
    python examples/real_digits.py [--k 4] [--rounds 2000] [--width 16] [--seeds 1,2]
                                   [--runs runs/digits] [--out docs/real-digits]

CIFAR-10 and MNIST must be downloaded; scikit-learn's wheel carries the UCI handwritten digits
(1,797 real 8 × 8 images in ten classes). This script scales them to 32 × 32 (bilinear, as the
papers scale MNIST), writes them as your-own-data ``digits32.npz`` (``images`` [N, 32, 32, 1]
uint8, ``labels`` [N]), and then does what a user does with any labelled data set:

1. ``sharedgan launch --dataset digits32.npz --k K`` and the same with a single generator (K = 1),
   for each seed (sequential engine; the engines give the same numbers);
2. ``sharedgan eval``'s class coverage on each: the coverage classifier is trained once on the
   digits' own labels and measured on the 10% kept aside; its accuracy is in the table.

Writes <out>/results.md (classes covered, confident share, KL(p̂ ‖ uniform), classifier accuracy,
training seconds, mean ± std over the seeds) and <out>/samples-k<K>.png, one row per generator.
Finished runs are not trained again, so a cut-off study resumes.
"""
import argparse
import json
import shutil
import statistics
from pathlib import Path

import numpy as np


def write_digits(path: Path) -> Path:
    """The bundled digits as uint8 [N, 32, 32, 1] with their labels."""
    from sklearn.datasets import load_digits
    from sharedgan.image_data import resize
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]  # 0..16 → 0..255
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=resize(images, 32), labels=digits.target.astype(np.int64))
    return path


def train_and_judge(data: Path, k: int, seed: int, rounds: int, width: int, run_dir: Path) -> dict:
    from sharedgan import TrainConfig, load_run, train
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    config = TrainConfig(dataset=str(data), data_dir=str(data.parent), k=k, seed=seed, rounds=rounds, width=width,
                         engine="sequential", out=str(run_dir), eval_every=max(1, rounds // 5))
    result = train(config, force=True)
    report = load_run(run_dir).class_coverage(n=2500, seed=seed)
    out = dict(k=k, seed=seed, train_seconds=result.train_seconds,
               **report.summary(), held_out=report.held_out, generator_table=report.generator_table.tolist())
    done.write_text(json.dumps(out))
    return out


def _mean_std(values, fmt):
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=4, help="generators of the mixture (a K = 1 run is the baseline)")
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--width", type=int, default=16, help="DCGAN base width (64 is the papers'; 16 suits a CPU)")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--runs", default="runs/digits", help="where the data file, its caches and the run directories go")
    ap.add_argument("--out", default="docs/real-digits", help="where results.md and the sample grids go")
    args = ap.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    data = runs / "digits32.npz"
    if not data.exists():
        write_digits(data)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    for k in (args.k, 1):
        for seed in seeds:
            r = train_and_judge(data, k, seed, args.rounds, args.width, runs / f"k{k}-seed{seed}")
            print(f"K={k} seed {seed}: {r['classes_covered']}/{r['num_classes']} classes, "
                  f"{r['confident']:.1%} confident, KL {r['kl_uniform']:.3f}, {r['train_seconds']:.0f} s", flush=True)
            rows.setdefault(k, []).append(r)
    out.mkdir(parents=True, exist_ok=True)
    for k in rows:  # the first seed's final grid, one row per generator
        shutil.copyfile(runs / f"k{k}-seed{seeds[0]}" / "samples.png", out / f"samples-k{k}.png")
    first = rows[args.k][0]
    lines = [
        "# Class coverage on real handwritten digits (scikit-learn's bundled UCI digits, 32 × 32)",
        "",
        f"`python examples/real_digits.py --k {args.k} --rounds {args.rounds} --width {args.width} --seeds {args.seeds}`: "
        f"{args.rounds} rounds, DCGAN width {args.width}, sequential engine, seeds {args.seeds}. The coverage "
        f"classifier is right on {first['classifier_accuracy']:.1%} of {first['held_out']} held-out real digits.",
        "",
        "| generators | classes covered | confident | KL(p̂ ‖ uniform) | train s |",
        "|---|---|---|---|---|",
    ]
    for k, rs in rows.items():
        lines.append(f"| K = {k} | {_mean_std([r['classes_covered'] for r in rs], '.1f')} / {rs[0]['num_classes']} "
                     f"| {_mean_std([100 * r['confident'] for r in rs], '.1f')}% | {_mean_std([r['kl_uniform'] for r in rs], '.3f')} "
                     f"| {_mean_std([r['train_seconds'] for r in rs], '.0f')} |")
    lines += ["", f"Generator × predicted class, K = {args.k}, seed {seeds[0]} (2,500 samples):", "",
              "| gen | " + " | ".join(str(c) for c in range(first["num_classes"])) + " |",
              "|---" * (first["num_classes"] + 1) + "|"]
    lines += [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in enumerate(first["generator_table"])]
    lines += ["", f"![K = {args.k}](samples-k{args.k}.png) ![K = 1](samples-k1.png)", ""]
    (out / "results.md").write_text("\n".join(lines))
    print(f"wrote {out / 'results.md'}")


if __name__ == "__main__":
    main()
