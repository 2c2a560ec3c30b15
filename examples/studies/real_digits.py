"""Class coverage on real images with no download: the handwritten digits bundled with scikit-learn.

    pip install scikit-learn
    python examples/studies/real_digits.py [--k 4] [--rounds 2000] [--width 16] [--seeds 1,2]
                                   [--variant NAME:KEY=VALUE,...] [--no-single] [--runs runs/digits]
                                   [--out docs/real-digits]

CIFAR-10 and MNIST must be downloaded; scikit-learn's wheel carries the UCI handwritten digits
(1,797 real 8 × 8 images in ten classes). This script scales them to 32 × 32 (bilinear, as the
papers scale MNIST), writes them as your-own-data ``digits32.npz`` (``images`` [N, 32, 32, 1]
uint8, ``labels`` [N]), and then does what a user does with any labelled data set:

1. ``sharedgan launch --dataset digits32.npz --k K`` and the same with a single generator (K = 1;
   ``--no-single`` skips it),
   for each seed (sequential engine unless a variant says otherwise; the sequential and parallel
   engines give the same numbers, the batched one steps D once per round);
2. ``sharedgan eval``'s class coverage on each: the coverage classifier is trained once on the
   digits' own labels and measured on the 10% kept aside; its accuracy is in the table;
3. each generator's spread (``sharedgan.eval.spread``): coverage cannot see a generator that draws
   one picture whatever its noise, spread can;
4. each generator's realness (``sharedgan.eval.realness``): precision, recall against real digits;
   a generator that draws noise is unreal, which neither coverage nor spread sees.

``--variant`` trains the K-generator runs again with other settings (repeatable), e.g.
``--variant mbd:minibatch_features=32``; each variant gets its own row.

Writes <out>/results.md (classes covered, confident share, KL(p̂ ‖ uniform), collapsed and unreal
generators, the mixture's precision and recall, classifier accuracy, training seconds, mean ± std
over the seeds) and <out>/samples-k<K>[-variant].png,
one row per generator.
Finished runs are not trained again, so a cut-off study resumes (a run is reused only if it trained
what the study would train today, today's defaults included).
"""
import argparse
import dataclasses
import json
import shutil
import statistics
from pathlib import Path

import numpy as np


def write_digits(path: Path) -> Path:
    """The bundled digits as uint8 [N, 32, 32, 1] with their labels."""
    from sklearn.datasets import load_digits

    from sharedgan.data.images import resize
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]  # 0..16 → 0..255
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")  # a second study started at once never reads half a file
    np.savez(partial, images=resize(images, 32), labels=digits.target.astype(np.int64))
    partial.replace(path)
    return path


FIXED = ("k", "seed", "rounds", "width", "dataset", "data_dir", "out", "eval_every")  # set by the study


def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (TrainConfig fields, e.g. minibatch_features=32)."""
    from sharedgan import TrainConfig
    name, _, settings = text.partition(":")
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(FIXED)
    options = {}
    items: list[str] = []
    for part in filter(None, settings.split(",")):  # a part without '=' continues a list value: augment=a,b
        if "=" not in part and items:
            items[-1] += "," + part
        else:
            items.append(part)
    for item in items:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in fields:
            raise SystemExit(f"--variant {text!r}: {key!r} is not a setting; write KEY=VALUE with KEY a TrainConfig "
                             f"field other than {', '.join(FIXED)}, e.g. {name}:minibatch_features=32")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a word, e.g. generator_loss=ns
    if name == "defaults" and options:
        raise SystemExit(f"--variant {text!r}: 'defaults' is the run with no settings; give the variant another name")
    return name, options


def _trained_as_asked(run_dir: Path, config) -> bool:
    """A run in ``run_dir`` is reused (judged, or resumed if cut off) only when it trained what
    ``config`` would train today: every setting that shapes the math, the defaults that depend on
    the data included (the image defaults changed once; a run of the old ones is not today's)."""
    from sharedgan import TrainConfig
    from sharedgan.config import RESUMABLE
    if not (run_dir / "config.json").is_file():
        return False
    saved = TrainConfig.from_file(run_dir / "config.json", run=True).validate(reading=True)
    return all(getattr(saved, f.name) == getattr(config, f.name) for f in dataclasses.fields(config)
               if f.name not in RESUMABLE)


def study_config(data: Path, k: int, seed: int, rounds: int, width: int, options: dict, run_dir: Path):
    """The launch of one run of the study (its data path absolute, as a run's config.json records it)."""
    from sharedgan import TrainConfig
    data = data.resolve()
    return TrainConfig(dataset=str(data), data_dir=str(data.parent), k=k, seed=seed, rounds=rounds, width=width,
                       out=str(run_dir), eval_every=max(1, rounds // 8), **{"engine": "sequential", **options})


def train_and_judge(data: Path, k: int, seed: int, rounds: int, width: int, options: dict, run_dir: Path) -> dict:
    from sharedgan import load_run, train
    from sharedgan.storage.runfile import read_run_file
    config = study_config(data, k, seed, rounds, width, options, run_dir)
    as_asked = _trained_as_asked(run_dir, dataclasses.replace(config).validate(reading=True))
    done = run_dir / "result.json"
    if done.exists() and as_asked:
        out = json.loads(done.read_text())
        if "spread" not in out:  # a result from before spread existed
            out["spread"] = load_run(run_dir).spread(n=2500, seed=seed).tolist()
            done.write_text(json.dumps(out))
        if "precision" not in out:  # a result from before realness existed
            out.update(_realness(load_run(run_dir), seed))
            done.write_text(json.dumps(out))
        return out
    cut_off = as_asked and any((run_dir / "checkpoints").glob("*"))
    attrs = read_run_file(run_dir / "run.h5")["attrs"] if cut_off else {}
    if attrs.get("status") == "complete":  # trained, not yet judged (the judging failed): judge it
        train_seconds = float(attrs["train_seconds"])
    else:  # a run cut off midway resumes from its last checkpoint (its train seconds carry over)
        train_seconds = (train(config, resume=True) if cut_off else train(config, force=True)).train_seconds
    run = load_run(run_dir)
    report = run.class_coverage(n=2500, seed=seed)
    out = dict(k=k, seed=seed, train_seconds=train_seconds, **report.summary(), held_out=report.held_out,
               generator_table=report.generator_table.tolist(), spread=run.spread(n=2500, seed=seed).tolist(),
               **_realness(run, seed))
    done.write_text(json.dumps(out))
    return out


def _realness(run, seed: int) -> dict:
    r = run.realness(n=2500, seed=seed)
    return dict(precision=r.generators["precision"].tolist(), recall=r.generators["recall"].tolist(),
                mixture_precision=r.mixture["precision"], mixture_recall=r.mixture["recall"],
                real_precision=r.real["precision"], real_recall=r.real["recall"], realness_m=r.m)


def summary(r: dict) -> str:
    """A judged run (``train_and_judge``'s result) in one line."""
    from sharedgan.eval.realness import unreal
    from sharedgan.eval.spread import collapsed
    return (f"{r['classes_covered']}/{r['num_classes']} classes, {r['confident']:.1%} confident, KL "
            f"{r['kl_uniform']:.3f}, {len(collapsed(r['spread']))} collapsed, {len(unreal(r['precision']))} unreal, "
            f"precision {r['mixture_precision']:.2f} recall {r['mixture_recall']:.2f}, {r['train_seconds']:.0f} s")


def tag_of(name: str) -> str:
    """A variant's part of its runs' and grids' names ("defaults" names no variant)."""
    return "" if name == "defaults" else f"-{name}"


def run_dir_of(runs: Path, name: str, k: int, seed: int) -> Path:
    """Where the study keeps one run."""
    return runs / f"k{k}{tag_of(name)}-seed{seed}"


def _evaluations_table(plan, rows, runs: Path) -> list[str]:
    """The mixture precision of each run's own evaluations during training (run.h5's
    ``eval/mixture_precision``, from the run's ``eval_samples`` per generator, so noisier than the
    final judging), on the planned rounds (an extra evaluation where a run was cut off is left out):
    whether precision was still rising when training ended."""
    from sharedgan.storage.runfile import read_run_file
    series = []
    for name, k, _ in plan:
        for r in rows[(name, k)]:
            data = read_run_file(run_dir_of(runs, name, k, r["seed"]) / "run.h5")
            if "eval/mixture_precision" not in data:  # a run from before realness existed
                continue
            every, last = data["config"]["eval_every"], data["config"]["rounds"] - 1
            kept = {int(n): float(v) for n, v in zip(data["eval/round"], data["eval/mixture_precision"])
                    if ((n + 1) % every == 0 or n == last) and np.isfinite(v)}
            if kept:  # (none where realness was off)
                series.append((name, k, r["seed"], kept, data["config"]["eval_samples"]))
    if not series:
        return []
    rounds = sorted({n for *_, by_round, _ in series for n in by_round})
    return ["", "Mixture precision at each evaluation during training (from the samples per generator of the "
                "last column, so noisier than the judging above):", "",
            "| setting | K | seed | " + " | ".join(f"{n + 1:,}" for n in rounds) + " | samples |",
            "|---|---|---|" + "---|" * (len(rounds) + 1)] + [
        f"| {name} | {k} | {seed} | " + " | ".join(f"{by_round[n]:.2f}" if n in by_round else "—" for n in rounds)
        + f" | {samples} |" for name, k, seed, by_round, samples in series]


def _mean_std(values, fmt):
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def main():
    from sharedgan.eval.realness import UNREAL, unreal
    from sharedgan.eval.spread import COLLAPSED, collapsed
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=4, help="generators of the mixture (a K = 1 run is the baseline)")
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--width", type=int, default=16, help="DCGAN base width (64 is the papers'; 16 suits a CPU)")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--variant", action="append", metavar="NAME[:KEY=VALUE,...]",
                    help="a setting of the K-generator runs, repeatable; KEY is a TrainConfig field "
                         "(e.g. --variant mbd:minibatch_features=32). Default: one variant, 'defaults'")
    ap.add_argument("--no-single", action="store_true", help="skip the single-generator (K = 1) baseline runs")
    ap.add_argument("--runs", default="runs/digits", help="where the data file, its caches and the run directories go")
    ap.add_argument("--out", default="docs/real-digits", help="where results.md and the sample grids go")
    args = ap.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [parse_variant(v) for v in args.variant or ["defaults"]]
    names = [name for name, _ in variants]
    if len(set(names)) < len(names):
        raise SystemExit(f"--variant: each variant needs its own name (got {', '.join(names)})")
    data = runs / "digits32.npz"
    if not data.exists():
        write_digits(data)
    plan = [(name, args.k, options) for name, options in variants]
    if not args.no_single and ("defaults", 1, {}) not in plan:  # (--k 1 with the defaults is the baseline itself)
        plan.append(("defaults", 1, {}))
    rows = {}
    for name, k, options in plan:
        for seed in seeds:
            r = train_and_judge(data, k, seed, args.rounds, args.width, options, run_dir_of(runs, name, k, seed))
            print(f"{name} K={k} seed {seed}: {summary(r)}", flush=True)
            rows.setdefault((name, k), []).append(r)
    out.mkdir(parents=True, exist_ok=True)
    for name, k, _ in plan:  # the first seed's final grid, one row per generator
        shutil.copyfile(run_dir_of(runs, name, k, seeds[0]) / "samples.png", out / f"samples-k{k}{tag_of(name)}.png")
    first = rows[(plan[0][0], args.k)][0]
    settings = "".join(f" --variant {v}" for v in args.variant or []) + (" --no-single" if args.no_single else "")
    lines = [
        "# Class coverage on real handwritten digits (scikit-learn's bundled UCI digits, 32 × 32)",
        "",
        f"`python examples/studies/real_digits.py --k {args.k} --rounds {args.rounds} --width {args.width} "
        f"--seeds {args.seeds}"
        f"{settings}`: {args.rounds} rounds, DCGAN width {args.width}, sequential engine, seeds {args.seeds}, 2,500 "
        f"samples per run. The coverage classifier is right on {first['classifier_accuracy']:.1%} of "
        f"{first['held_out']} held-out real digits. A generator is *collapsed* when its spread (mean distance "
        f"between its samples at 8 × 8, over that of real digits) is below {COLLAPSED:g}: the same picture "
        f"whatever its noise; *unreal* when its precision (the share of its samples among real digits, in the "
        f"classifier's features, k = 5, {first['realness_m']} samples) is below {UNREAL:g}. Real held-out digits "
        f"score precision {first['real_precision']:.2f} and recall {first['real_recall']:.2f} at that size.",
        "",
        "| setting | generators | classes covered | confident | KL(p̂ ‖ uniform) | collapsed generators "
        "| unreal generators | mixture precision | mixture recall | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, k, options in plan:
        rs = rows[(name, k)]
        setting = name + ("" if not options else " (" + ", ".join(f"{key} = {v}" for key, v in options.items()) + ")")
        lines.append(f"| {setting} | K = {k} | {_mean_std([r['classes_covered'] for r in rs], '.1f')} "
                     f"/ {rs[0]['num_classes']} | {_mean_std([100 * r['confident'] for r in rs], '.1f')}% "
                     f"| {_mean_std([r['kl_uniform'] for r in rs], '.3f')} "
                     f"| {' + '.join(str(len(collapsed(r['spread']))) for r in rs)} of {k} "
                     f"| {' + '.join(str(len(unreal(r['precision']))) for r in rs)} of {k} "
                     f"| {_mean_std([r['mixture_precision'] for r in rs], '.2f')} "
                     f"| {_mean_std([r['mixture_recall'] for r in rs], '.2f')} "
                     f"| {_mean_std([r['train_seconds'] for r in rs], '.0f')} |")
    lines += ["", "Each seed: the precision of every generator (unreal below the line), and the mixture's.", "",
              "| setting | K | seed | classes | KL | collapsed | precision per generator | mixture precision "
              "| mixture recall | train s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, k, _ in plan:
        lines += [f"| {name} | {k} | {r['seed']} | {r['classes_covered']} | {r['kl_uniform']:.3f} "
                  f"| {len(collapsed(r['spread']))} | {', '.join(f'{v:.2f}' for v in r['precision'])} "
                  f"| {r['mixture_precision']:.2f} | {r['mixture_recall']:.2f} | {r['train_seconds']:.0f} |"
                  for r in rows[(name, k)]]
    lines += _evaluations_table(plan, rows, runs)
    for name, k, _ in plan:
        if k == 1:
            continue
        r = rows[(name, k)][0]
        lines += ["",
                  f"{name}, K = {k}, seed {seeds[0]}: generator × predicted class, and each generator's spread:", "",
                  "| gen | " + " | ".join(str(c) for c in range(r["num_classes"])) + " | spread | precision |",
                  "|---" * (r["num_classes"] + 3) + "|"]
        lines += [f"| {g} | " + " | ".join(str(v) for v in row) + f" | {r['spread'][g]:.2f} | {r['precision'][g]:.2f} |"
                  for g, row in enumerate(r["generator_table"])]
    pictures = [f"![{name}, K = {k}](samples-k{k}{'' if name == 'defaults' else '-' + name}.png)"
                for name, k, _ in plan]
    lines += ["", "One row per generator, seed " + str(seeds[0]) + ": " + " ".join(pictures), ""]
    (out / "results.md").write_text("\n".join(lines))
    print(f"wrote {out / 'results.md'}")


if __name__ == "__main__":
    main()
