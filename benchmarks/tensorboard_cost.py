"""What the TensorBoard mirror costs a round: the same training with --tensorboard on and off,
in alternating pairs, medians of seconds per round and their ratio.

    python benchmarks/tensorboard_cost.py [--k 8] [--rounds 400] [--pairs 3] [--out runs/tb-cost]
"""
import argparse
import statistics

from sharedgan import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", default="runs/tb-cost")
    args = parser.parse_args()
    seconds = {"on": [], "off": []}
    for pair in range(args.pairs):
        for mode in ("on", "off") if pair % 2 == 0 else ("off", "on"):  # neither always goes first
            result = train(TrainConfig(k=args.k, rounds=args.rounds, eval_every=args.rounds // 4,
                                       checkpoint_every=args.rounds, engine="sequential", seed=pair,
                                       tensorboard=mode, out=f"{args.out}/{mode}-{pair}"), force=True)
            seconds[mode].append(result.train_seconds / result.rounds_completed)
    on, off = statistics.median(seconds["on"]), statistics.median(seconds["off"])
    print(f"| K | rounds | s/round on | s/round off | on ÷ off |\n|---|---|---|---|---|\n"
          f"| {args.k} | {args.rounds} | {on:.4f} | {off:.4f} | {on / off:.2f} |")


if __name__ == "__main__":
    main()
