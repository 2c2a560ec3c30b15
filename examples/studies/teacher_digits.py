"""HGAN's teacher on real images: does a PixelCNN teacher keep image generators from dropping modes?

    pip install scikit-learn
    python examples/studies/teacher_digits.py [--k 1,4] [--seeds 1,2,3] [--rounds 1000] [--width 16]
                                              [--runs runs/teacher-digits] [--out docs/teacher] [--report-only]

The image half of examples/studies/teacher.py, on scikit-learn's bundled handwritten digits at
32 × 32 (examples/studies/real_digits.py says how they are made and judged). First trains one fixed
PixelCNN teacher on the digits (`sharedgan teacher`'s code: 1500 steps of 64 images, its held-out
NLL in bits/dim on 10% of the digits, and a pool of 2048 of its samples for D_T). Then, for each K
and seed, trains the mixture without and with the teacher's term (γ = 1, D_T's term, the teacher
fixed) and judges the final generators: classes covered, KL(p̂ ‖ uniform), collapsed and unreal
generators, the mixture's precision and recall, and seconds per round, to price the teacher.
Finished runs are not trained again, so a cut-off study resumes. Writes <out>/digits.md and
<out>/digits-k<K>-<row>.png (the first seed's final samples, one row per generator).
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from real_digits import _mean_std, summary, train_and_judge, write_digits  # noqa: E402 - the digits and their judges

STEPS, BATCH, POOL = 1500, 64, 2048  # the teacher: ~1 s a step and ~5 s per 64 pool samples on one CPU thread
# the papers' DCGAN, as this study was run before images defaulted to R1 and the resize generator
PAPERS = dict(r1=0.0, generator="standard")
ROWS = {"none": ("no teacher", PAPERS),
        "adversarial": ("γ = 1, D_T's term, the fixed PixelCNN teacher (its pool)", dict(PAPERS, teacher_weight=1.0))}


def fixed_teacher(runs: Path, data: Path) -> dict:
    """The study's teacher of the digits: trained once, then read back with its report."""
    from sharedgan import TrainConfig
    from sharedgan.teaching import train_teacher
    path, report_path = runs / "teacher.pt", runs / "teacher.json"
    if not report_path.is_file():
        config = TrainConfig(dataset=str(data), data_dir=str(data.parent), batch_size=BATCH, teacher_weight=1.0,
                             engine="sequential").validate()
        r = train_teacher(config, STEPS, path, pool=POOL)
        report_path.write_text(json.dumps(dict(nll=r.nll, unit=r.unit, steps=r.steps, seconds=r.seconds,
                                               pool=r.pool, pool_seconds=r.pool_seconds, width=config.teacher_width)))
    return json.loads(report_path.read_text()) | {"path": str(path.resolve())}


def independent_pixels_nll(data: Path) -> float:
    """Bits/dim on the teacher's held-out digits of the simplest density that sees the same data: each
    pixel its own 256-level histogram of the training digits (add-one smoothed), no pixel
    depending on another. What a PixelCNN gains over it is what its autoregression learned."""
    import numpy as np

    from sharedgan import TrainConfig
    from sharedgan.roles.build import dataset_of
    from sharedgan.teaching import image_split
    config = TrainConfig(dataset=str(data), data_dir=str(data.parent), teacher_weight=1.0).validate()
    images = dataset_of(config).data
    train_idx, held = image_split(images, config.seed)
    train = np.asarray(images.images[train_idx]).reshape(len(train_idx), -1)
    held = np.asarray(held).reshape(len(held), -1)
    counts = 1 + np.stack([np.bincount(column, minlength=256) for column in train.T])
    p = counts / counts.sum(1, keepdims=True)
    return float(-np.log2(p[np.arange(held.shape[1]), held]).mean())


def main():
    from sharedgan.eval.realness import unreal
    from sharedgan.eval.spread import collapsed
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", default="1,4", help="mixture sizes, comma-separated")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--width", type=int, default=16, help="DCGAN base width of the mixture's models")
    ap.add_argument("--report-only", action="store_true", help="train nothing: the table of the finished runs")
    ap.add_argument("--runs", default="runs/teacher-digits")
    ap.add_argument("--out", default="docs/teacher")
    args = ap.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    data = runs / "digits32.npz"
    if not data.exists():
        write_digits(data)
    teacher = fixed_teacher(runs, data)
    print(f"teacher: held-out NLL {teacher['nll']:.3f} {teacher['unit']} after {teacher['steps']} steps "
          f"({teacher['seconds']:.0f} s; pool of {teacher['pool']} in {teacher['pool_seconds']:.0f} s)", flush=True)
    ks, seeds = [int(k) for k in args.k.split(",")], [int(s) for s in args.seeds.split(",")]
    results = {}
    for k in ks:
        for row, (_, options) in ROWS.items():
            options = options | ({"teacher": teacher["path"]} if "teacher_weight" in options else {})
            for seed in seeds:
                run_dir = runs / f"k{k}-{row}-seed{seed}"
                if args.report_only and not (run_dir / "result.json").is_file():
                    continue
                r = train_and_judge(data, k, seed, args.rounds, args.width, options, run_dir)
                print(f"K={k} {row} seed {seed}: {summary(r)}", flush=True)
                results.setdefault((k, row), []).append(r)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# HGAN's teacher on real handwritten digits",
             "",
             f"`python examples/studies/teacher_digits.py --k {args.k} --seeds {args.seeds} --rounds {args.rounds} "
             f"--width {args.width}`: sequential engine, one thread per run, DCGAN width {args.width}, "
             f"{args.rounds} rounds, 2,500 samples judged per run (real_digits.py's judges: a generator is "
             f"collapsed when its spread is below 0.25, unreal when its precision is below 0.5).",
             "",
             f"The teacher: a gated PixelCNN of width {teacher['width']}, {teacher['steps']} maximum-likelihood steps "
             f"of {BATCH} digits ({teacher['seconds']:.0f} s), held-out NLL **{teacher['nll']:.3f} {teacher['unit']}** "
             f"on 10% of the digits (8 bits/dim is a uniform guess; an independent 256-level histogram per pixel "
             f"scores {independent_pixels_nll(data):.2f}); its pool of {teacher['pool']} samples took "
             f"{teacher['pool_seconds']:.0f} s.",
             "",
             "| K | teacher | seeds | classes covered | KL(p̂ ‖ uniform) | collapsed (per seed) | unreal (per seed) "
             "| mixture precision | mixture recall | s / round |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (k, row), rs in results.items():
        lines.append(f"| {k} | {ROWS[row][0]} | {len(rs)} | {_mean_std([r['classes_covered'] for r in rs], '.1f')}"
                     f" / {rs[0]['num_classes']} | {_mean_std([r['kl_uniform'] for r in rs], '.3f')} "
                     f"| {', '.join(str(len(collapsed(r['spread']))) for r in rs)} of {k} "
                     f"| {', '.join(str(len(unreal(r['precision']))) for r in rs)} of {k} "
                     f"| {_mean_std([r['mixture_precision'] for r in rs], '.2f')} "
                     f"| {_mean_std([r['mixture_recall'] for r in rs], '.2f')} "
                     f"| {_mean_std([r['train_seconds'] / args.rounds for r in rs], '.3f')} |")
        shutil.copyfile(runs / f"k{k}-{row}-seed{rs[0]['seed']}" / "samples.png", out / f"digits-k{k}-{row}.png")
    first = next(iter(results.values()))[0]
    lines += ["", f"Real held-out digits score precision {first['real_precision']:.2f} and recall "
                  f"{first['real_recall']:.2f} at that size. The first seed's final samples, one row per generator:",
              ""]
    lines += [f"![K = {k}, {row}](digits-k{k}-{row}.png)" for k, row in results]
    (out / "digits.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'digits.md'}")


if __name__ == "__main__":
    main()
