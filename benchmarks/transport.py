"""Seconds per round on shared memory against the distributed transport, side by side in one run;
and what one slot exchange costs on each.

    python benchmarks/transport.py [--cases ring8:4,ring8:8,images32:2] [--rounds 200] [--repeats 3]
                                   [--width 64] [--exchanges 2000]

Each case is DATASET:K (ring8: the MLPs; images32: the DCGAN models at --width on generated random
images, no download). The parallel engine trains each case with ``--transport shm`` and under
``torchrun --standalone --nproc-per-node K+3 ... --transport distributed``, alternately, so drift of
a shared machine hits both alike; training time excludes start-up and evaluation. Prints a Markdown
table: median seconds per round of each, the median of the per-pair ratios distributed / shm, and
the bytes the distributed transport moved per round (from run.h5's ``sent_bytes/*``, evaluations
included) beside the layout's arithmetic (:func:`sharedgan.runtime.transport.traffic`).

Then the exchange micro-benchmark: two ranks pass one slot back and forth as a generator and D do
(SAMPLE_READY with the batch, VALIDATION_READY with D's regions) for --exchanges round trips, over
ZeroMQ ipc alone (shm: the regions stay in the shared buffer) and over ZeroMQ tcp with the regions
sent point to point (distributed); median and p99 microseconds per round trip.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import h5py  # noqa: E402
from engines import generated_images  # noqa: E402 - the random image set the engine benchmark uses

from sharedgan import TrainConfig, train  # noqa: E402
from sharedgan.runtime.buffer import fields_of  # noqa: E402
from sharedgan.runtime.transport import traffic  # noqa: E402


def _settings(dataset: str, k: int, args, root: str) -> dict:
    images = dataset.startswith("images")
    extra = (dict(dataset=generated_images(root, dataset), width=args.width, data_dir=os.path.join(root, "data"),
                  eval_samples=8) if images else dict(dataset=dataset, eval_samples=500))
    return dict(engine="parallel", k=k, rounds=args.rounds, threads=1, eval_every=args.rounds,
                checkpoint_every=args.rounds, tensorboard="off", **extra)


def _flags(settings: dict) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]


def run_shm(settings: dict, out: str) -> float:
    return train(TrainConfig(out=out, **settings), force=True).train_seconds / settings["rounds"]


def run_distributed(settings: dict, out: str) -> tuple[float, int, int]:
    """Seconds per round, bytes sent in all, and evaluations, of a torchrun job on this machine."""
    world = len(TrainConfig(**settings).validate().processes) + 1
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}", "-m",
           "sharedgan", "launch", "--transport", "distributed", "--quiet", "--force", "--out", out, *_flags(settings)]
    job = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if job.returncode != 0:
        raise SystemExit(f"the distributed run failed:\n{job.stdout}{job.stderr}")
    with h5py.File(Path(out) / "run.h5") as f:
        seconds = float(f.attrs["train_seconds"]) / settings["rounds"]
        sent = sum(int(v) for name, v in f.attrs.items() if name.startswith("sent_bytes/"))
        evals = len(f["eval/round"])
    return seconds, sent, evals


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="ring8:4,ring8:8,images32:2", help="DATASET:K, comma-separated ('': none)")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=64, help="DCGAN base width (image cases)")
    ap.add_argument("--exchanges", type=int, default=2000, help="round trips of the micro-benchmark (0: skip it)")
    ap.add_argument("--exchange-worker", choices=("shm", "distributed"), help=argparse.SUPPRESS)
    ap.add_argument("--batch-shape", default="128,2", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.exchange_worker:
        return exchange_worker(args)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; parallel engine, "
          f"{args.rounds} rounds, 1 thread per process, {args.repeats} alternating pairs\n")
    print("| case | K | shm s/round | distributed s/round | distributed / shm (median of pairs) | bytes/round sent | "
          "by the layout |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for case in filter(None, args.cases.split(",")):
            dataset, k = case.split(":")
            settings = _settings(dataset, int(k), args, root)
            shm, dist, ratios = [], [], []
            for _ in range(args.repeats):
                shm.append(run_shm(settings, os.path.join(root, "shm")))
                seconds, sent, evals = run_distributed(settings, os.path.join(root, "dist"))
                dist.append(seconds)
                ratios.append(dist[-1] / shm[-1])
            config = TrainConfig(**settings).validate()
            shape = (3, 32, 32) if dataset.startswith("images") else (2,)
            per_round, per_eval = traffic(fields_of(config, shape), int(k))
            counted = sent / settings["rounds"]
            arithmetic = (settings["rounds"] * per_round + evals * per_eval) / settings["rounds"]
            print(f"| {dataset} | {k} | {statistics.median(shm):.4f} | {statistics.median(dist):.4f} | "
                  f"{statistics.median(ratios):.2f} | {counted:,.0f} | {arithmetic:,.0f} |", flush=True)
    if args.exchanges:
        print(f"\none slot exchange (SAMPLE_READY with a batch of {args.batch_shape.replace(',', ' × ')} float32, "
              f"VALIDATION_READY with D's regions), {args.exchanges} round trips between two processes:\n")
        print("| transport | median µs | p99 µs |")
        print("|---|---|---|")
        for transport in ("shm", "distributed"):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", __file__,
                   f"--exchange-worker={transport}", f"--exchanges={args.exchanges}",
                   f"--batch-shape={args.batch_shape}"]
            job = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            line = next((x for x in job.stdout.splitlines() if x.startswith("{")), None)
            if line is None:
                raise SystemExit(f"the exchange benchmark failed:\n{job.stdout}{job.stderr}")
            got = json.loads(line)
            print(f"| {transport} | {got['median']:.0f} | {got['p99']:.0f} |")


def exchange_worker(args) -> None:
    """Rank 1 plays generator 0, rank 0 plays D: signal, (regions), answer, (regions), repeat."""
    import zmq

    from sharedgan.cluster.torchrun import Cluster
    from sharedgan.runtime.buffer import SlotBuffer, slot_fields
    from sharedgan.runtime.messages import Kind, Mailbox, Outbox, Role, private_folder
    from sharedgan.runtime.transport import PointToPoint, SharedMemory
    shape = tuple(int(v) for v in args.batch_shape.split(","))
    cluster = Cluster()
    cluster.ranks = {"discriminator": 0, "generator-0": 1}
    cluster.name = "discriminator" if cluster.rank == 0 else "generator-0"
    me, peer = cluster.name, ("generator-0" if cluster.rank == 0 else "discriminator")
    buf = SlotBuffer.allocate(slot_fields(shape[0], shape[1:], 1), 1, "cpu", shared=False)
    context = zmq.Context()
    if args.exchange_worker == "distributed":
        inbox = Mailbox(context, cluster.inbox_address(), b"t" * 16)
        transport = PointToPoint(buf, cluster.ranks)
    else:
        folder = cluster._broadcast(private_folder() if cluster.rank == 0 else None)
        inbox = Mailbox(context, f"ipc://{folder}/{me}", b"t" * 16)
        transport = SharedMemory()
    cluster.connect(inbox.address)
    role = Role.DISCRIMINATOR if cluster.rank == 0 else Role.GENERATOR
    outbox = Outbox(context, b"t" * 16, role, 0, cluster, [peer])
    inbox.arrival = transport.arrived

    def send(kind: Kind, n: int) -> None:
        outbox.send(peer, kind, 0, n)
        transport.sent(peer, kind, role, 0)

    times = []
    for n in range(args.exchanges):
        if cluster.rank == 1:
            start = time.perf_counter()
            send(Kind.SAMPLE_READY, n)
            inbox.wait_for(Kind.VALIDATION_READY, Role.DISCRIMINATOR, 0, n, timeout=60)
            times.append(time.perf_counter() - start)
        else:
            inbox.wait_for(Kind.SAMPLE_READY, Role.GENERATOR, 0, n, timeout=60)
            send(Kind.VALIDATION_READY, n)
    transport.close()
    inbox.close()
    outbox.close()
    context.term()
    if cluster.rank == 1:
        times.sort()
        print(json.dumps({"median": 1e6 * times[len(times) // 2], "p99": 1e6 * times[int(0.99 * (len(times) - 1))]}))
    if args.exchange_worker == "shm" and cluster.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
    cluster.close()


if __name__ == "__main__":
    main()
