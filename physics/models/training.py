"""One-step supervised training of a simulator, with resumable checkpoints.

Each sample is a state graph and the next positions (:mod:`physics.models.data`);
the loss is the next-position error in units of the target's std (equal to the
normalised-acceleration MSE of GNS).  With ``rollout_steps`` K > 1 each sample holds
K future frames and the loss averages the errors of a K-step rollout of the model
on its own predictions (:meth:`DynamicsModel.loss`), which trains rollout stability.  Adam with an exponential learning-rate decay.

Files written to ``out_dir`` (all atomically):

    checkpoint.pt   latest epoch: weights (normalisation buffers included), optimizer
                    state, epoch, history, model name/config, train config, metadata
    model.pt        the weights of the epoch with the lowest validation loss, with
                    name/config/metadata (what ``load_model`` and the benchmarks read)
    loss.jsonl      one JSON line per epoch: epoch, train_loss, valid_loss, lr, seconds
    TensorBoard events under ``tb/`` when the ``tensorboard`` package is installed

``resume=True`` continues from ``checkpoint.pt``; shuffling and noise are seeded
per epoch, so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.loader import DataLoader
from tqdm import tqdm

from physics.errors import CheckpointError, ConfigError
from physics.graph.builder import GraphBuilder
from physics.io import PathLike, atomic_torch_save, atomic_write_text, torch_load
from physics.models.base import DynamicsModel
from physics.models.config import config_to_dict
from physics.models.data import make_samples
from physics.models.resolver import save_model
from physics.trajectory import Trajectory

__all__ = ["TrainConfig", "train", "resolve_device"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the CLI makes one flag per field)."""

    epochs: int = field(default=20, metadata={"help": "passes over the training samples"})
    batch_size: int = field(default=16, metadata={"help": "graphs per batch"})
    lr: float = field(default=1e-3, metadata={"help": "initial Adam learning rate"})
    lr_final: float = field(default=1e-4, metadata={"help": "learning rate at the last epoch (exponential decay)"})
    max_samples: int = field(default=3000, metadata={"help": "one-step training samples drawn from the trajectories"})
    valid_samples: int = field(default=400, metadata={"help": "one-step validation samples"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient norm clip (0: none)"})
    rollout_steps: int = field(
        default=1, metadata={"help": "train on K-step rollouts of the model's own predictions (1: one-step targets)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of initialisation, sampling, shuffling and noise"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    device: str = field(default="auto", metadata={"help": "auto (cuda when present), cpu, cuda, cuda:N"})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_samples", "threads", "rollout_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.lr_final > 0):
            raise ConfigError(f"learning rates must be positive, got lr={self.lr}, lr_final={self.lr_final}")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else is checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return dev


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tb"))


@torch.no_grad()
def _evaluate(model: DynamicsModel, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        total += float(model.loss(batch)) * batch.num_graphs
        count += batch.num_graphs
    return total / max(count, 1)


def train(
    model: DynamicsModel,
    train_trajs: list[Trajectory],
    valid_trajs: list[Trajectory],
    out_dir: PathLike,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` one step ahead; returns a summary (final/best losses, wall time, files).

    Raises:
        CheckpointError: ``resume`` with a checkpoint of another model or config.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    builder = GraphBuilder(model.config.graph)
    k = config.rollout_steps
    train_graphs = make_samples(train_trajs, builder, config.max_samples, seed=config.seed, horizon=k)
    valid_graphs = make_samples(valid_trajs, builder, config.valid_samples, seed=config.seed + 1, horizon=k) if valid_trajs else []
    meta = dict(meta or {})

    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gamma = (config.lr_final / config.lr) ** (1.0 / max(config.epochs - 1, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    history: list[dict[str, Any]] = []
    start_epoch, best, elapsed = 0, float("inf"), 0.0
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        ckpt = torch_load(ckpt_path, "training checkpoint")
        if ckpt.get("model") != model.name or ckpt.get("config") != config_to_dict(model.config):
            raise CheckpointError(
                f"{ckpt_path} was trained as {ckpt.get('model')!r} with another config; "
                "use a fresh --out folder or the same --model and settings"
            )
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, history, best = int(ckpt["epoch"]), list(ckpt["history"]), float(ckpt["best"])
        elapsed = float(ckpt.get("seconds", 0.0))
    else:
        model.fit_normalizers(train_graphs)
    model.to(device)
    valid_loader = DataLoader(valid_graphs, batch_size=config.batch_size * 4) if valid_graphs else None
    writer = _tensorboard(out)

    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        loader = DataLoader(train_graphs, batch_size=config.batch_size, shuffle=True, generator=gen)
        model.train()
        run_loss, seen = 0.0, 0
        bar = tqdm(loader, desc=f"{model.name} epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for batch in bar:
            batch = batch.to(device)
            loss = model.loss(batch, generator=gen)
            opt.zero_grad()
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            run_loss += float(loss.detach()) * batch.num_graphs
            seen += batch.num_graphs
            bar.set_postfix(loss=f"{run_loss / seen:.4g}")
        lr = opt.param_groups[0]["lr"]
        sched.step()
        train_loss = run_loss / max(seen, 1)
        valid_loss = _evaluate(model, valid_loader, device) if valid_loader else train_loss
        elapsed += time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid_loss, "lr": lr, "seconds": round(elapsed, 2)}
        history.append(row)
        if writer is not None:
            for key in ("train_loss", "valid_loss", "lr"):
                writer.add_scalar(key, row[key], epoch + 1)
        info = {**meta, "epoch": epoch + 1, "valid_loss": valid_loss, "train_seconds": round(elapsed, 2),
                "train_config": dataclasses.asdict(config)}
        if valid_loss < best:
            best = valid_loss
            save_model(out / "model.pt", model, info)
        atomic_torch_save(
            ckpt_path,
            {
                "format": "nesy-dynamics-1",
                "model": model.name,
                "config": config_to_dict(model.config),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "best": best,
                "seconds": elapsed,
                "meta": info,
            },
        )
        atomic_write_text(out / "loss.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        if progress:
            tqdm.write(f"{model.name} epoch {epoch + 1}: train {train_loss:.4g} valid {valid_loss:.4g} ({elapsed:.0f} s)")
    if writer is not None:
        writer.close()
    return {
        "model": model.name,
        "epochs": config.epochs,
        "history": history,
        "best_valid_loss": best,
        "train_seconds": elapsed,
        "train_samples": len(train_graphs),
        "files": {"checkpoint": str(ckpt_path), "model": str(out / "model.pt"), "loss": str(out / "loss.jsonl")},
    }
