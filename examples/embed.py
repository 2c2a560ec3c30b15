"""Embedding sharedgan in your own script: your own generator, the API, and sampling afterwards.

    python examples/embed.py

Model factories travel to the spawned processes by name, so they must be importable functions
(here: `examples/my_models.py`, found because this script's folder is on sys.path), and the
script must guard its entry point with `if __name__ == "__main__":` (the spawn start method
imports the main module in every child).
"""
from sharedgan import TrainConfig, load_run, train
from sharedgan.eval.modes import format_report


def main():
    config = TrainConfig(
        k=4,
        dataset="ring8",
        ring_modes=4,           # a 4-mode ring for a quick demo
        rounds=1500,
        eval_every=500,
        generator_factory="my_models:residual_generator",
        out="runs/embed-demo",
    )
    result = train(config, force=True, progress=True)
    print(f"{result.status}: {result.rounds_completed} rounds, {result.train_seconds:.1f} s, metrics {result.metrics}")

    run = load_run(result.run_dir)
    samples, generator = run.sample(1000, seed=0)  # tensors: [1000, 2] and [1000]
    print(format_report(run.evaluate(2500)))


if __name__ == "__main__":
    main()
