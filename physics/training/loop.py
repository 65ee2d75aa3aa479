"""One training loop for every model: rounds of optimiser steps, checkpointed and resumable.

A trainer supplies the model, the optimiser, a :class:`~physics.training.schedule.Schedule`,
the batches of each round and a step function returning the loss; the loop sets
the learning rate of every step, runs backward / gradient clipping / the
optimiser step, and after every round (an epoch, or a block of steps) writes a
checkpoint atomically and one JSON line (plus TensorBoard scalars when installed).

What a checkpoint's ``train_state`` holds, so that a run killed at any moment
resumes from its last round exactly as if it had never stopped (bit for bit):

    round, step, seconds, history   where the run is and what it logged
    optimizer                       the optimiser's state (Adam moments)
    rng                             torch / CUDA / numpy / Python generators and the
                                    trainer's named torch.Generators
    flags                           the training flags the run was started with
    command                         the command line that reproduces the run
    schedule                        the learning-rate schedule's name and parameters
    extra                           trainer-specific state (e.g. a reward baseline)

A resume whose flags differ from the stored ones is refused, naming each flag,
except the flags the trainer lists as ``may_change`` (resources such as
``threads`` and ``device``, which do not change what is computed) and
``may_grow`` (flags that may only increase, such as a number of steps taken at
a constant rate; the stored flags and command then take the new value).

The checkpoint file itself is the trainer's own format: ``payload()`` returns
its entries (weights under ``weights_key``, config, metadata) and the loop adds
``train_state``; every file is written with :func:`physics.io.atomic_torch_save`,
which stores the digest of its weights.

Under ``torchrun`` (:mod:`~physics.training.distributed`) a trainer that passes
``distributed=True`` gives each process its share of every global batch; the
loop wraps the step in :class:`~torch.nn.parallel.DistributedDataParallel`
(gradients averaged across processes, each share's loss weighted by its share
of the batch so that the average is the whole batch's gradient), sums each
round's logged values over the processes, and only rank 0 shows progress,
writes checkpoints and logs.  The checkpoint's ``train_state`` then records
``world_size`` and every rank's generator states (``rng_ranks``); a resume must
use the same number of processes.  A single-process run is unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike, atomic_torch_save, require_fields, torch_load
from physics.training.distributed import WorldInfo, world_info
from physics.training.log import RunLog
from physics.training.rng import rng_state, set_rng_state
from physics.training.schedule import Schedule

__all__ = ["TrainLoop", "flag_name"]

StepFn = Callable[[Any], Mapping[str, Any]]


def flag_name(field: str) -> str:
    """``lr_final`` -> ``--lr-final`` (how the CLI spells a config field)."""
    return "--" + field.replace("_", "-")


class TrainLoop:
    """Checkpointed, resumable optimisation of one model.

    Args:
        model: The module trained (its ``state_dict`` is saved under ``weights_key``).
        optimizer: Its optimiser; the loop sets every group's ``lr`` before each step.
        schedule: Rate of each step.
        path: Checkpoint file, rewritten after every round.
        flags: The run's training flags (a config dataclass as a dict); a resume must match them.
        command: The command line that reproduces the run.
        payload: Entries of the checkpoint besides ``train_state`` (default: ``{weights_key: weights}``).
        weights_key: Where ``payload`` puts the weights.
        generators: Named ``torch.Generator`` objects the step function draws from.
        grad_clip: Clip the gradient norm to this (0: no clipping).
        log: Where each round's record goes (``None``: nowhere).
        tags: Entries added to every record (e.g. ``{"stage": "proposal"}``).
        unit: ``"epoch"`` (records carry ``epoch``) or ``"step"`` (rounds are blocks of steps).
        may_change, may_grow: Flags a resume may change (see the module docstring).
        extra_state, load_extra: Save and restore trainer state (JSON-like values and tensors).
        desc: Progress-bar label.
        progress: Show a progress bar.
        loss_key: The entry of the step function's result that is minimised.
        distributed: The trainer feeds each process its share of every batch (see the
            module docstring); without it a run under torchrun is refused.
        world: The process group's ranks (default: :func:`~physics.training.distributed.world_info`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule,
        path: PathLike | None,
        *,
        flags: Mapping[str, Any],
        command: str = "",
        payload: Callable[[], dict[str, Any]] | None = None,
        weights_key: str = "model",
        generators: Mapping[str, torch.Generator] | None = None,
        grad_clip: float = 0.0,
        log: RunLog | None = None,
        tags: Mapping[str, Any] | None = None,
        unit: str = "epoch",
        may_change: Iterable[str] = (),
        may_grow: Iterable[str] = (),
        extra_state: Callable[[], dict[str, Any]] | None = None,
        load_extra: Callable[[dict[str, Any]], None] | None = None,
        desc: str = "train",
        progress: bool = True,
        loss_key: str = "loss",
        distributed: bool = False,
        world: WorldInfo | None = None,
    ) -> None:
        if unit not in ("epoch", "step"):
            raise ConfigError(f"TrainLoop unit must be 'epoch' or 'step', got {unit!r}")
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.path = Path(path) if path is not None else None
        self.flags, self.command = dict(flags), command
        self.payload = payload or (lambda: {weights_key: _weights(model)})
        self.weights_key = weights_key
        self.generators = dict(generators or {})
        self.grad_clip, self.log, self.tags, self.unit = grad_clip, log, dict(tags or {}), unit
        self.may_change, self.may_grow = set(may_change), set(may_grow)
        self.extra_state, self.load_extra = extra_state, load_extra
        self.desc, self.progress, self.loss_key = desc, progress, loss_key
        self.round, self.step, self.seconds = 0, 0, 0.0
        self.history: list[dict[str, Any]] = []
        self.world = world or world_info()
        # torchrun's WORLD_SIZE counts too: a trainer that never joined the group would train N copies
        launched = self.world.size if world is not None else max(self.world.size, int(os.environ.get("WORLD_SIZE", "1")))
        if launched > 1 and not distributed:
            raise ConfigError(
                f"the {desc!r} trainer does not split its batches across processes; run it without "
                f"torchrun (this run has {launched} processes)"
            )
        if not self.world.is_main:
            self.progress, self.log = False, None

    # ------------------------------------------------------------------ state
    def train_state(self) -> dict[str, Any]:
        """Everything needed to continue the run (see the module docstring).

        Under torchrun every rank must call it (it gathers the ranks' generator states).
        """
        state = {
            "round": self.round,
            "step": self.step,
            "seconds": self.seconds,
            "history": list(self.history),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(self.generators),
            "flags": dict(self.flags),
            "command": self.command,
            "schedule": self.schedule.describe(),
            "extra": self.extra_state() if self.extra_state else {},
            "world_size": self.world.size,
        }
        if self.world.size > 1:
            ranks: list[Any] = [None] * self.world.size
            torch.distributed.all_gather_object(ranks, state["rng"])
            state["rng_ranks"] = ranks
        return state

    def save(self) -> None:
        """Write the checkpoint (atomic, with the weights digest); rank 0 only under torchrun."""
        if self.path is None:
            return
        state = self.train_state()
        if self.world.is_main:
            atomic_torch_save(self.path, {**self.payload(), "train_state": state})
        if self.world.size > 1:
            torch.distributed.barrier()  # nobody reads the file before it is whole

    def resume(self, *, check: Callable[[dict[str, Any]], None] | None = None) -> bool:
        """Continue from ``path`` if it exists; returns whether it did.

        Args:
            check: Called with the loaded checkpoint before anything is restored
                (e.g. to refuse another model's file); raises to refuse.

        Raises:
            CheckpointError: the file is damaged, of the wrong structure (not a dict,
                no ``train_state``: e.g. a finished model file), or does not fit the model.
            ConfigError: the run was started with other flags (each one named).
        """
        if self.path is None or not self.path.is_file():
            return False
        where = str(self.path)
        ckpt = require_fields(torch_load(self.path, "training checkpoint"), where, "training checkpoint",
                              {self.weights_key: dict})
        if not isinstance(ckpt.get("train_state"), dict):
            raise CheckpointError(f"{where} is not a resumable training checkpoint: it has no 'train_state' "
                                  "(a finished model file?); choose a fresh output")
        state = require_fields(ckpt["train_state"], where, "training checkpoint's train_state", {
            "round": int, "step": int, "history": list, "optimizer": dict, "rng": dict, "flags": dict,
            "command": str, "schedule": dict, "extra": dict})
        if check is not None:
            check(ckpt)
        self._check_flags(state["flags"], where)
        stored_world = state.get("world_size", 1)
        if stored_world != self.world.size:
            raise ConfigError(
                f"{where} was trained by {stored_world} process(es), this run has {self.world.size}; "
                f"resume with torchrun --nproc_per_node {stored_world} (or plain nesy for 1) or choose a fresh output"
            )
        if state["schedule"] != self.schedule.describe() and not self._grown(state["flags"]):
            raise ConfigError(f"{where} was trained with the schedule {state['schedule']}, this run asks "
                              f"{self.schedule.describe()}; resume with the run's flags or choose a fresh output")
        try:
            self.model.load_state_dict(ckpt[self.weights_key])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{where}: cannot resume, the stored weights do not fit the model ({exc})") from None
        rng = state["rng"]
        if self.world.size > 1:
            ranks = state.get("rng_ranks")
            if not isinstance(ranks, list) or len(ranks) != self.world.size:
                raise CheckpointError(f"{where}: the generator states of its {self.world.size} processes are missing")
            rng = ranks[self.world.rank]
        set_rng_state(rng, self.generators, where)
        self.round, self.step = state["round"], state["step"]
        self.seconds = float(state.get("seconds", 0.0))
        self.history = list(state["history"])
        if not self._grown(state["flags"]):
            self.command = state["command"] or self.command
        if self.load_extra is not None:
            self.load_extra(state["extra"])
        return True

    def _grown(self, stored: Mapping[str, Any]) -> bool:
        return any(stored.get(k) != self.flags.get(k) for k in self.may_grow)

    def _check_flags(self, stored: Mapping[str, Any], where: str) -> None:
        changed = []
        for key in sorted(set(stored) | set(self.flags)):
            old, new = stored.get(key), self.flags.get(key)
            if old == new or key in self.may_change:
                continue
            if key in self.may_grow and isinstance(old, int) and isinstance(new, int) and new > old:
                continue
            # a flag stored only when on (ema_decay, keep_epochs, ...) is absent when off: "not given", not "None"
            was, now = (v if key in d else "not given" for v, d in ((old, stored), (new, self.flags)))
            changed.append(f"{flag_name(key)} {was} (now {now})")
        if changed:
            allowed = sorted(self.may_change) + [f"{k} (larger only)" for k in sorted(self.may_grow)]
            raise ConfigError(
                f"{where} was trained with {', '.join(changed)}; a resume must use the run's flags "
                f"(only {', '.join(flag_name(k) for k in allowed) or 'none'} may change) or a fresh output"
            )

    # ------------------------------------------------------------------ loop
    def fit(
        self,
        rounds: int,
        batches: Callable[[int], Iterable[Any]],
        step_fn: StepFn,
        *,
        end_round: Callable[[int, dict[str, Any]], Mapping[str, Any] | None] | None = None,
        steps_in: Callable[[int], int] | None = None,
    ) -> list[dict[str, Any]]:
        """Run rounds ``self.round .. rounds - 1``; returns the whole history.

        Args:
            rounds: Total rounds of the run.
            batches: Round -> its batches (derive their order from the seed and the round,
                never from state carried over between rounds).
            step_fn: Batch -> ``{loss_key: scalar tensor, other: number, "weight": n}``; the
                other entries are averaged over the round (weighted by ``weight``, default 1).
            end_round: Called after each round with its record (validation, best-model
                files); what it returns is added to the record.
            steps_in: Round -> number of its batches, for the progress bar.
        """
        self.model.train()
        engine = _ddp_step(self.model, step_fn) if self.world.size > 1 else step_fn
        for r in range(self.round, rounds):
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            seen, first_lr = 0.0, None
            total = steps_in(r) if steps_in else None
            label = f"{self.desc} {self.unit} {r + 1}/{rounds}" if self.unit == "epoch" else self.desc
            bar = tqdm(batches(r), total=total, desc=label, disable=not self.progress, leave=False)
            for batch in bar:
                lr = self.schedule.lr(r, self.step)
                first_lr = lr if first_lr is None else first_lr
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                parts = dict(engine(batch))
                weight = float(parts.pop("weight", 1.0))
                loss = parts[self.loss_key]
                self.optimizer.zero_grad()
                if self.world.size > 1:
                    # DDP averages the ranks' gradients; weighting each by its share of the
                    # global batch makes that average the whole batch's gradient
                    whole = torch.tensor([weight], dtype=torch.float64, device=loss.device)
                    torch.distributed.all_reduce(whole)
                    loss = loss * (weight * self.world.size / float(whole))
                loss.backward()
                if self.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                self.optimizer.step()
                self.step += 1
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value) * weight
                seen += weight
                bar.set_postfix(loss=f"{sums[self.loss_key] / seen:.4g}")
            bar.close()
            if self.world.size > 1:
                seen, sums = _sum_over_ranks(seen, sums, next(self.model.parameters()).device)
            self.seconds += time.perf_counter() - t0
            record: dict[str, Any] = dict(self.tags)
            if self.unit == "epoch":
                record["epoch"] = r + 1
            record["step"] = self.step
            record.update({k: v / max(seen, 1e-12) for k, v in sums.items()})
            record["lr"] = first_lr if first_lr is not None else self.schedule.lr(r, self.step)
            if end_round is not None:
                record.update(end_round(r, record) or {})
                self.model.train()
            record["seconds"] = round(self.seconds, 2)
            self.history.append(record)
            self.round = r + 1
            self.save()
            if self.log is not None:
                self.log.write(self.history, self.desc)
        self.model.eval()
        return self.history


class _Step(torch.nn.Module):
    """A step function as a module, so that DDP sees the call that computes the loss."""

    def __init__(self, model: torch.nn.Module, step_fn: StepFn) -> None:
        super().__init__()
        self.model, self.step_fn = model, step_fn

    def forward(self, batch: Any) -> Mapping[str, Any]:
        return self.step_fn(batch)


def _ddp_step(model: torch.nn.Module, step_fn: StepFn) -> torch.nn.Module:
    """``step_fn`` wrapped in DistributedDataParallel (one device per process)."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(_Step(model, step_fn), device_ids=[device] if device.type == "cuda" else None)


def _sum_over_ranks(seen: float, sums: dict[str, float], device: torch.device) -> tuple[float, dict[str, float]]:
    """A round's weight and weighted sums, added up over the processes (every rank has the same keys)."""
    keys = sorted(sums)
    values = torch.tensor([seen] + [sums[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    return float(values[0]), {k: float(v) for k, v in zip(keys, values[1:].tolist(), strict=True)}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
