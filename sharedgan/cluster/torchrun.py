"""One run's processes as the ranks of a torchrun job: who is who, and what they agree on at start.

torchrun (c10d rendezvous, elastic restarts) starts every process; this module turns its
environment into a :class:`Cluster`: the gloo process group, the map from rank to role, the run's
config and token, the run directory every rank must see, and the ZeroMQ address of every inbox.
Everything is decided on rank 0 (the runner) and handed out over the process group, so every
rank refuses a bad start with the same one line.

Rank → role, by default: rank 0 the runner, then D, C, the teacher when there is one, then
generator-0 … generator-(K−1), in rank order. ``--roles-here A,B`` on a node's command places
those roles on that node's ranks (in local-rank order); the roles nobody placed fill the ranks
left, in the default order.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import zmq

from sharedgan.errors import ConfigError
from sharedgan.storage.files import write_atomic

START_TIMEOUT = 300.0  # seconds the ranks wait for each other before the config is known
NONCE = ".cluster-nonce"  # written by rank 0 in the run directory, read by every rank
MARK = "cluster.json"  # in the run directory: which torchrun job made it (a restart of that job may resume it)


@dataclass(frozen=True)
class Environment:
    """What torchrun tells each process (its environment variables)."""
    rank: int
    world: int
    local_rank: int
    node: int  # GROUP_RANK: the node's number in this rendezvous
    restart: int  # TORCHELASTIC_RESTART_COUNT: how many times the group was restarted
    master: str  # MASTER_ADDR: where the process group's store is (and the default interface to bind)
    master_port: int

    @classmethod
    def read(cls) -> "Environment":
        env = os.environ
        if "TORCHELASTIC_RUN_ID" not in env or "RANK" not in env:
            raise ConfigError("--transport distributed runs under torchrun: torchrun --standalone --nproc-per-node "
                              "K+3 -m sharedgan launch --transport distributed ... (docs/cluster.md)")
        return cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]), int(env.get("GROUP_RANK", 0)),
                   int(env.get("TORCHELASTIC_RESTART_COUNT", 0)), env.get("MASTER_ADDR", "127.0.0.1"),
                   int(env.get("MASTER_PORT", 29500)))


def default_interface(master: str, port: int) -> str:
    """The address of the interface that reaches the rendezvous host: the one peers reach us by."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((master, port))  # (UDP: no packet is sent; this only picks the route)
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def place_roles(processes: list[str], ranks: list[tuple[int, int, tuple[str, ...]]]) -> dict[str, int]:
    """Rank of every process. ``ranks``: (node, local rank, that node's --roles-here) for every
    rank, by rank; rank 0 is the runner. Raises ConfigError (the same on every rank) when the
    placement cannot work."""
    order = ["discriminator", "classifier", "teacher"]
    default = [p for p in order if p in processes] + [p for p in processes if p not in order]
    if len(ranks) != len(processes) + 1:
        raise ConfigError(f"this run has {len(processes)} roles ({', '.join(default)}) and a runner: start "
                          f"{len(processes) + 1} processes in all (torchrun --nproc-per-node × --nnodes), "
                          f"not {len(ranks)}")
    placed: dict[str, int] = {"runner": 0}
    for node in sorted({n for n, _, _ in ranks}):
        here = [r for r, (n, _, _) in enumerate(ranks) if n == node and r != 0]
        here.sort(key=lambda r: ranks[r][1])
        wanted = next(w for n, _, w in ranks if n == node)
        for name in wanted:
            if name not in processes:
                raise ConfigError(f"--roles-here names {name!r}, which is not a role of this run "
                                  f"(its roles: {', '.join(default)})")
            if name in placed:
                raise ConfigError(f"--roles-here places {name} twice; give each role to one node")
        if len(wanted) > len(here):
            raise ConfigError(f"--roles-here gives node {node} {len(wanted)} roles but it runs {len(here)} "
                              "role processes; raise its --nproc-per-node or place fewer roles there")
        placed.update(zip(wanted, here))
    free = [r for r in range(1, len(ranks)) if r not in placed.values()]
    placed.update(zip([p for p in default if p not in placed], free))
    return placed


def _job_id() -> dict:
    """This torchrun job: its rendezvous id and rank 0's agent (the process that restarts the group)."""
    return {"rdzv_id": os.environ.get("TORCHELASTIC_RUN_ID", ""), "agent": [socket.gethostname(), os.getppid()]}


def made_by_this_job(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / MARK).read_text()) == _job_id()
    except (OSError, ValueError):
        return False


def mark_run_dir(run_dir: Path) -> None:
    """Rank 0, once the run directory is prepared: it is this job's (a restart of the job resumes it)."""
    write_atomic(run_dir / MARK, json.dumps(_job_id()))


class Cluster:
    """This process's place in the job. Rank 0 calls :meth:`agree` (or :meth:`refuse`), then
    :meth:`share_run_dir` and :meth:`connect`; the other ranks :meth:`follow` and :meth:`connect`."""

    def __init__(self, roles_here: tuple[str, ...] = (), bind: str | None = None):
        import torch.distributed as dist
        self.env = Environment.read()
        self.roles_here = tuple(roles_here)
        if bind in ("0.0.0.0", "::", "*"):
            raise ConfigError(f"--bind {bind} is every interface, which peers cannot connect to; give the address of "
                              "the one they reach this node by")
        self.bind = bind or default_interface(self.env.master, self.env.master_port)
        if not dist.is_initialized():
            # the store of this attempt only: torch's own env:// start reads the first attempt's gloo
            # addresses again after torchrun restarted the group (connection refused; torch 2.13)
            timeout = datetime.timedelta(seconds=START_TIMEOUT)
            agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
            store = dist.TCPStore(self.env.master, self.env.master_port, self.env.world,
                                  is_master=self.env.rank == 0 and not agent, timeout=timeout)
            store = dist.PrefixStore(f"sharedgan/attempt-{self.env.restart}", store)
            dist.init_process_group("gloo", store=store, rank=self.env.rank, world_size=self.env.world,
                                    timeout=timeout)
        self.ranks: dict[str, int] = {}
        self.addresses: dict[str, str] = {}
        self.token = b""
        self.name = "runner" if self.env.rank == 0 else ""
        self.agreed = False  # rank 0: the config went out (a refusal after that is each rank's own)
        self.started: dict = {}

    @property
    def rank(self) -> int:
        return self.env.rank

    def _broadcast(self, obj=None):
        import torch.distributed as dist
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _gather(self, obj) -> list:
        import torch.distributed as dist
        out = [None] * self.env.world
        dist.all_gather_object(out, obj)
        return out

    # ---- the start: config, roles, run directory ---------------------------------------------
    def refuse(self, message: str) -> None:
        """Rank 0 could not start the run (before :meth:`agree`, or before :meth:`share_run_dir`):
        every rank exits with ``message``."""
        self._broadcast({"error": message})

    def agree(self, config, restore: Path | None) -> None:
        """Rank 0: hand out the config, the checkpoint to start from and the token; every rank
        checks the placement of the roles."""
        from sharedgan.roles.build import model_spec
        self.token = secrets.token_bytes(16)
        self.started = {"config": config.to_json(), "processes": config.processes, "token": self.token,
                        "sample_shape": tuple(model_spec(config).sample_shape),
                        "restore": str(restore) if restore else None}
        self._broadcast(self.started)
        self.agreed = True
        self._place(config.processes)

    def follow(self) -> dict:
        """A role's rank: the config rank 0 agreed on (ConfigError: the run was refused)."""
        got = self._broadcast()
        if "error" in got:
            raise ConfigError(got["error"])
        self.token, self.started = got["token"], got
        self._place(got["processes"])
        return got

    def _place(self, processes: list[str]) -> None:
        placements = self._gather((self.env.node, self.env.local_rank, self.roles_here))
        self.ranks = place_roles(processes, placements)
        self.name = {r: n for n, r in self.ranks.items()}[self.rank]

    def share_run_dir(self, run_dir: Path) -> None:
        """Rank 0: check that every rank sees the run directory (checkpoints and logs are written
        there by every rank), by a nonce file only a shared file system shows them."""
        nonce = secrets.token_hex(16)
        (run_dir / NONCE).write_text(nonce)
        try:
            self._broadcast({"run_dir": str(run_dir), "nonce": nonce})
            self._check_seen(self._gather(True), run_dir)
        finally:
            (run_dir / NONCE).unlink(missing_ok=True)

    def see_run_dir(self) -> Path:
        """A role's rank: the run directory, checked as rank 0 shared it."""
        got = self._broadcast()
        if "error" in got:
            raise ConfigError(got["error"])
        run_dir = Path(got["run_dir"])
        try:
            seen = (run_dir / NONCE).read_text() == got["nonce"]
        except OSError:
            seen = False
        self._check_seen(self._gather(seen), run_dir)
        return run_dir

    def _check_seen(self, seen: list, run_dir: Path) -> None:
        blind = [r for r, ok in enumerate(seen) if not ok]
        if blind:
            names = {r: n for n, r in self.ranks.items()}
            raise ConfigError(f"{run_dir} is not visible from rank{'s' * (len(blind) > 1)} "
                              f"{', '.join(f'{r} ({names[r]})' for r in blind)}: put --out on a file system every "
                              "node sees (NFS, a cluster file system)")

    # ---- the control plane -----------------------------------------------------------------------
    def inbox_address(self) -> str:
        return f"tcp://{self.bind}:*"

    def connect(self, bound_at: str) -> None:
        """Every rank: exchange the inbox addresses (``bound_at``: this rank's, as bound)."""
        pairs = self._gather((self.name, bound_at))
        self.addresses = dict(pairs)

    def address(self, name: str) -> str:
        """The Endpoints interface (:class:`~sharedgan.runtime.messages.Outbox` asks it)."""
        return self.addresses[name]

    def close(self) -> None:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def bind_inbox(context: zmq.Context, cluster: Cluster, token: bytes, watchdog=None):
    """This rank's inbox, bound on the cluster's interface at a free port."""
    from sharedgan.runtime.messages import Mailbox
    return Mailbox(context, cluster.inbox_address(), token, watchdog)
