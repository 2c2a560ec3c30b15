"""The entry point of every child process of the multi-process engines (parallel and async): it
builds its role (from a checkpoint when resuming or respawned), connects to the control plane,
runs its role's loop (:mod:`sharedgan.engines.parallel.loops` or
:mod:`sharedgan.engines.asynchronous.loops`) and reports how it ended (FINISHED, DIVERGED,
WRITE_FAILED, or an exit code the runner names)."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import zmq

from sharedgan.config import TrainConfig
from sharedgan.engines.asynchronous import loops as async_loops
from sharedgan.engines.parallel.links import FINAL_LINGER_MS, Links
from sharedgan.engines.parallel.loops import classifier_loop, discriminator_loop, generator_loop, teacher_loop
from sharedgan.errors import Diverged
from sharedgan.roles.base import RoleState
from sharedgan.roles.build import dataset_of, model_spec
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.roles.discriminator import DiscriminatorRole
from sharedgan.roles.generator import GeneratorRole, make_body
from sharedgan.roles.teacher import TeacherRole
from sharedgan.runtime import devices, placement
from sharedgan.runtime.buffer import ParameterRegion, SlotBuffer
from sharedgan.runtime.memory import peak_cuda, peak_rss
from sharedgan.runtime.messages import Aborted, Endpoints, Kind, Mailbox, Outbox, PeerLost, Role
from sharedgan.runtime.procgroup import prepare_child
from sharedgan.storage import checkpoint
from sharedgan.storage.rundir import log_path

log = logging.getLogger("sharedgan")


EXIT_ABORTED, EXIT_DIVERGED, EXIT_WRITE_FAILED = 3, 4, 5


def _build(name: str, config: TrainConfig, device: torch.device,
           regions: dict) -> tuple[RoleState, Callable, Role, int, list[str]]:
    """The role object, its loop, and whom it talks to."""
    generators = [f"generator-{j}" for j in range(config.k)]
    classifier = ["classifier"] if "classifier" in config.processes else []
    teacher = ["teacher"] if "teacher" in config.processes else []
    asynchronous = config.engine == "async"
    if name.startswith("generator-"):
        k = int(name.split("-")[1])
        spec = model_spec(config)
        if "generator-body" not in regions:
            role = GeneratorRole(config, spec, k, device, newest_gaps=asynchronous)
            if asynchronous:
                return role, async_loops.generator_loop, Role.GENERATOR, k, ["runner"]
            return role, generator_loop, Role.GENERATOR, k, ["runner", "discriminator"] + classifier + teacher
        # --share-generator-body: the body's parameters are views of the buffer's parameter region
        values, version, grads = regions["generator-body"]
        body = make_body(config, spec).to(device)
        ParameterRegion(values, version, buffers=False).bind(body)
        role = GeneratorRole(config, spec, k, device, body)
        peers = generators if k == 0 else ["generator-0"]
        return (role, partial(generator_loop, body_grads=grads), Role.GENERATOR, k,
                ["runner", "discriminator"] + classifier + teacher + peers)
    if name == "teacher":
        dataset = dataset_of(config)
        return (TeacherRole(config, model_spec(config, dataset), dataset, device), teacher_loop, Role.TEACHER, -1,
                ["runner"] + generators)
    if name.startswith("discriminator"):
        dataset = dataset_of(config)
        spec = model_spec(config, dataset)
        role, kind, loop, peers = (DiscriminatorRole(config, spec, dataset, device), Role.DISCRIMINATOR,
                                   discriminator_loop, ["runner"] + generators + classifier + teacher)
        if config.shared_trunk and config.k > 1:
            role.partner = ClassifierRole(config, spec, device, role.net)
    else:
        role, kind, loop, peers = (ClassifierRole(config, model_spec(config), device), Role.CLASSIFIER,
                                   classifier_loop, ["runner"] + generators)
    if not asynchronous:
        return role, loop, kind, -1, peers
    replica, region = async_loops.build_server(name, config, role, regions.get(name.partition("-")[0]))

    def serve(config, run_dir, buf, links, role):
        async_loops.server_loop(config, run_dir, buf, links, role, replica, region)
    return role, serve, kind, replica if replica else -1, ["runner"] + generators


def role_main(name: str, config_json: str, run_dir: str, buffer_handle: tuple, endpoint_spec: tuple,
              token: bytes, parent_pid: int, restore: str | None, epoch: int, regions: dict,
              stop_flag: torch.Tensor | None = None) -> None:
    """Entry point of every child process. ``restore``: a checkpoint to load this role's state
    from (a replica loads its primary's); ``epoch``: the resync it joins (0 at the start of a run);
    ``regions``: the parameter regions of replicated D and C (engine async), by role."""
    config = TrainConfig.from_dict(json.loads(config_json))
    stopping = (lambda: bool(stop_flag[0])) if stop_flag is not None else None
    watchdog = prepare_child(str(log_path(run_dir, name)), parent_pid, config.threads, stopping)
    log.info("%s started, pid %d%s", name, os.getpid(), f", restoring {restore}" if restore else "")
    pinned = placement.pin(name, config.processes, config.k, config.threads) if config.pin_roles else None
    context = zmq.Context()
    endpoints = Endpoints(*endpoint_spec)
    try:
        inbox = Mailbox(context, endpoints.address(name), token, watchdog)
    except BaseException:  # noqa: BLE001 - every failure must reach the log, then the runner
        traceback.print_exc()
        context.term()
        sys.exit(1)
    if pinned is not None:  # (said once ZeroMQ's threads exist too: they inherit the pin)
        log.info("%s pinned to CPU %s; its threads run on CPU %s", name, placement.cpu_list(pinned),
                 " and ".join(sorted(placement.thread_affinities())))
    code = play(name, config, Path(run_dir), Wiring(context, inbox, endpoints, token, watchdog),
                lambda: SlotBuffer.attach(buffer_handle), restore, epoch, regions)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


@dataclass
class Wiring:
    """A role's ends of the control plane: its context, its bound inbox, where the others are."""
    context: zmq.Context
    inbox: Mailbox
    endpoints: object  # address(name) of every peer: Endpoints (ipc) or the cluster's tcp ones
    token: bytes
    watchdog: Callable[[], None]
    transport: Callable[[SlotBuffer], object] | None = None  # None: the buffer is shared memory


def play(name: str, config: TrainConfig, run_dir: Path, wiring: Wiring, buffer: Callable[[], SlotBuffer],
         restore: str | None, epoch: int, regions: dict) -> int:
    """Build ``name``'s role, run its loop, report how it ended; return the exit code. Closes the
    wiring's sockets and context."""
    mailbox, outbox = wiring.inbox, None
    code, linger = 0, 0
    try:
        device = devices.role_device(config, name)
        devices.prepare(config, device)
        role, loop, kind, slot, peers = _build(name, config, device, regions)
        outbox = Outbox(wiring.context, wiring.token, kind, slot, wiring.endpoints, peers)
        buf = buffer()
        links = Links(mailbox, outbox, config, wiring.watchdog,
                      wiring.transport(buf) if wiring.transport is not None else None)
        links.devices = (device, devices.buffer_device(config))
        links.epoch = epoch
        if restore:
            for r in (role, role.partner) if getattr(role, "partner", None) else (role,):
                state = checkpoint.load_role(Path(restore),
                                             r.name if r.name in config.roles else r.name.partition("-")[0])
                r.load_state_dict(state)
            torch.set_rng_state(state["torch_rng"])
        links.send("runner", Kind.READY, slot)
        try:
            loop(config, run_dir, buf, links, role)
        except Diverged as exc:
            log.error("%s", exc)
            signer = Role.CLASSIFIER if exc.role == "classifier" else None  # C in D's process (--shared-trunk)
            links.send("runner", Kind.DIVERGED, slot, exc.round, (exc.code,), as_role=signer)
            code, linger = EXIT_DIVERGED, FINAL_LINGER_MS
        except checkpoint.WriteFailed as exc:
            log.error("%s", exc)
            links.send("runner", Kind.WRITE_FAILED, slot, exc.round, (exc.errno,))
            code, linger = EXIT_WRITE_FAILED, FINAL_LINGER_MS
        else:
            cuda, rss = peak_cuda(), peak_rss()  # (only this process can read them on another machine)
            links.send("runner", Kind.FINISHED, slot, values=(-1.0 if cuda is None else float(cuda),
                                                               float(links.transport.bytes_sent), float(rss or 0)))
            mailbox.wait_for(Kind.DISMISSED, Role.RUNNER, timeout=config.signal_timeout)
            linger = FINAL_LINGER_MS  # its last signals (FINAL, VALIDATION_READY) reach peers still reading
            links.transport.close()
            log.info("%s finished", name)
    except Aborted:
        log.info("%s aborted by the runner", name)
        code = EXIT_ABORTED
    except PeerLost as exc:  # (--transport distributed) a peer died with data on its way here
        log.error("%s", exc)
        code = 1
    except BaseException:  # noqa: BLE001 - every failure must reach the log, then the runner
        traceback.print_exc()
        code, linger = 1, 0
    finally:
        mailbox.close()
        if outbox is not None:
            outbox.close(linger_ms=linger)
        wiring.context.term()
    return code
