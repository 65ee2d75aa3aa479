"""Accuracy and speed of learned simulators against the ground-truth worlds.

:func:`evaluate_dynamics` rolls every model out on held-out trajectories (the
``test`` split, generated from its own seeds) and returns the result that
``nesy bench dynamics`` writes as JSON:

    world            world name
    data, split      data set folder and split used
    trajectories     number of held-out trajectories
    steps            recorded steps per trajectory
    horizons         the horizons reported in ``mse_at``
    wall_projection  the setting forced on every model (``--wall-projection``: true,
                     ``--no-wall-projection``: false), or null: each model as its checkpoint
                     declares (``ModelConfig.wall_projection``, default off); what each model
                     got is its own ``wall_projection`` below (``physics.models.rollout``; only
                     particle worlds with wall markers are affected)
    ground_truth     the simulator's speed: {"steps_per_s", "physics_steps_per_s",
                     "seconds", "steps", "nodes", ...} from
                     ``physics.worlds.dynamics.measure_sim_speed``, and under
                     "replay" the simulator re-run from each trajectory's seed with
                     its stored (float32) actions: {"mse_full", "mse_max",
                     "mse_per_trajectory", "seconds"} from
                     ``physics.worlds.dynamics.replay_errors``, a floor for "mse_full"
    models           {name: {
                        "checkpoint":    file the weights came from,
                        "wall_projection": whether its rollouts were projected back inside the
                                         container (forced, or as its checkpoint declares),
                        "mse_at":        {"1": MSE at the 1st predicted step, "5": ..., ...},
                        "mse_full":      MSE averaged over every predicted step,
                        "mse_curve":     MSE per predicted step (mean over trajectories),
                        "mse_per_trajectory": each trajectory's full-rollout MSE, in data
                                         order (``nesy bench compare`` pairs them),
                        "steps_per_s":   predicted steps per second (one trajectory at a time),
                        "speed_vs_simulator": steps_per_s / ground_truth steps_per_s,
                        "left_container": (particle worlds with wall markers) the fraction of
                                         the moving particles outside the container at the
                                         last predicted frame, averaged over trajectories
                                         (:func:`left_container`); the recording's is
                                         ``ground_truth["left_container"]``,
                        "rigidity_error": (particle worlds with rigid objects) the largest
                                         distance (m) of a predicted rigid particle from the
                                         rigid motion of its object's first-frame shape that
                                         fits best, over frames, objects and trajectories
                                         (``physics.models.rigidity_error``); the recorded
                                         ground truth's is ``ground_truth["rigidity_error"]``,
                        "trained":       the checkpoint's metadata (command, seed, epochs)}}
    figures          {"error_png": error against horizon, "rollout_gif": predicted beside true}

MSE is in squared scene units (m^2), over all nodes a model sees and the D
coordinates, averaged over trajectories.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physics.errors import CheckpointError, ConfigError
from physics.io import PathLike, atomic_write_bytes
from physics.models import MODELS, load_model, rigidity_error, rollout_errors
from physics.models.rollout import CONTAINER_MARGIN, outside_container
from physics.trajectory import Trajectory

__all__ = [
    "save_figure", "SHIPPED_CHECKPOINTS", "checkpoint_folder", "find_checkpoint", "evaluate_dynamics", "plot_errors", "rollout_gif",
    "gif_frame_ms", "rigid_groups", "worst_rigidity", "shipped_models", "left_container", "CONTAINER_MARGIN",
]

SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[1] / "physics" / "models" / "checkpoints"
GIF_FRAMES = 50  # frames kept in the rollout GIF (evenly spaced)
MIN_FRAME_MS = 40  # viewers show GIF delays under 20 ms as 100 ms; 40 ms is 25 frames/s


def checkpoint_folder(folder: PathLike | None) -> Path:
    """``folder`` (the shipped checkpoints when None), checked to be a folder.

    Raises:
        ConfigError: ``folder`` is missing or is a file (``--checkpoints FILE`` was reported as "no
            checkpoint ... under FILE", as if the file were an empty folder).
    """
    if not folder:
        return SHIPPED_CHECKPOINTS
    root = Path(folder)
    if root.is_file():
        raise ConfigError(f"--checkpoints names a folder of checkpoints (WORLD_MODEL.pt or WORLD_MODEL/model.pt); "
                          f"{root} is a file: put it in a folder as WORLD_MODEL.pt")
    if not root.is_dir():
        raise ConfigError(f"--checkpoints: no such folder {root}")
    return root


def find_checkpoint(world: str, model: str, folder: PathLike | None = None) -> Path:
    """``folder/<world>_<model>.pt`` or ``folder/<world>_<model>/model.pt`` (shipped folder by default)."""
    root = checkpoint_folder(folder)
    for cand in (root / f"{world}_{model}.pt", root / f"{world}_{model}" / "model.pt", root / model / "model.pt"):
        if cand.is_file():
            return cand
    raise CheckpointError(
        f"no checkpoint for model {model!r} on world {world!r} under {root} "
        f"(looked for {world}_{model}.pt and {world}_{model}/model.pt); train one with "
        f"`nesy train dynamics --world {world} --model {model} --data DIR`"
    )


def shipped_models(world: str, folder: PathLike | None = None) -> list[str]:
    """The registered models with a checkpoint for ``world`` in ``folder`` (shipped folder by default)."""
    checkpoint_folder(folder)  # a file or a missing folder is named, not taken for a folder without checkpoints
    found = []
    for name in MODELS.names():
        try:
            find_checkpoint(world, name, folder)
        except CheckpointError:
            continue
        found.append(name)
    return found


def rigid_groups(traj: Trajectory) -> np.ndarray | None:
    """Rigid-object id per node (-1: not rigid) of a particle trajectory, or None if it has no rigid particle."""
    materials = list(traj.meta.get("materials", ()))
    if "rigid" not in materials:
        return None
    rigid = traj.node_attr[:, materials.index("rigid")] == 1
    if not rigid.any():
        return None
    return np.where(rigid, traj.instance, -1)


def left_container(trajs: Sequence[Trajectory], positions: Sequence[np.ndarray], margin: float = CONTAINER_MARGIN,
                   ) -> float | None:
    """Mean over trajectories of the fraction of moving particles outside their container at the last frame.

    The container is what the wall markers (the prescribed nodes) outline in that
    frame: between their smallest and largest coordinate on every axis but the last,
    and above their lowest point on the last axis (up); its top is open.  A particle
    counts as outside when it lies more than ``margin`` (scene units) beyond that.

    Args:
        trajs: The trajectories (their wall markers and materials).
        positions: ``[T, N, D]`` per trajectory (recorded or predicted).
        margin: Tolerance beyond the markers.

    Returns:
        The mean fraction in [0, 1], or None when no trajectory has both wall markers and moving particles.
    """
    fractions = [f for traj, pos in zip(trajs, positions, strict=True)
                 if (f := outside_container(traj, pos, margin)) is not None]
    return float(np.mean(fractions)) if fractions else None


def worst_rigidity(trajs: Sequence[Trajectory], positions: Sequence[np.ndarray]) -> float | None:
    """The largest :func:`~physics.models.rigidity_error` over trajectories (None: no rigid objects)."""
    import torch

    errs = [rigidity_error(torch.from_numpy(np.asarray(p)), torch.from_numpy(g))
            for t, p in zip(trajs, positions, strict=True) if (g := rigid_groups(t)) is not None]
    return max(errs) if errs else None


def evaluate_dynamics(
    world: str,
    trajs: Sequence[Trajectory],
    models: Sequence[str],
    checkpoints: PathLike | None = None,
    horizons: Sequence[int] = (1, 5, 10, 20),
    sim_speed: dict[str, Any] | None = None,
    wall_projection: bool | None = None,
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """Roll each model out on ``trajs``; returns (result dict without figures, predictions per model).

    ``wall_projection`` is :func:`physics.models.rollout`'s: True or False the same for every
    model, None (the default) each model as its checkpoint declares (``ModelConfig.wall_projection``).
    """
    for m in models:
        MODELS.get(m)  # unknown: ConfigError naming the closest models and the choices
    result: dict[str, Any] = {
        "world": world,
        "trajectories": len(trajs),
        "steps": int(trajs[0].num_steps) if trajs else 0,
        "horizons": [int(h) for h in horizons],
        "wall_projection": None if wall_projection is None else bool(wall_projection),
        "ground_truth": sim_speed,
        "models": {},
    }
    rigidity = worst_rigidity(trajs, [t.positions for t in trajs])
    if rigidity is not None and sim_speed is not None:
        result["ground_truth"] = {**sim_speed, "rigidity_error": rigidity}
    outside = left_container(trajs, [t.positions for t in trajs])
    if outside is not None and sim_speed is not None:
        result["ground_truth"] = {**result["ground_truth"], "left_container": outside}
    preds: dict[str, list[np.ndarray]] = {}
    gt_speed = (sim_speed or {}).get("steps_per_s")
    for name in models:
        path = find_checkpoint(world, name, checkpoints)
        model, meta = load_model(path)
        if model.name != name:
            raise CheckpointError(f"{path} holds a {model.name!r} model, not {name!r}")
        projected = model.config.wall_projection if wall_projection is None else bool(wall_projection)
        r = rollout_errors(model, trajs, horizons, wall_projection=projected)
        preds[name] = r.pop("predictions")
        r["mse_at"] = {str(k): v for k, v in r["mse_at"].items()}
        r["checkpoint"] = str(path)
        r["wall_projection"] = bool(projected)
        r["speed_vs_simulator"] = r["steps_per_s"] / gt_speed if gt_speed else None
        rigidity = worst_rigidity(trajs, preds[name])
        if rigidity is not None:
            r["rigidity_error"] = rigidity
        outside = left_container(trajs, preds[name])
        if outside is not None:
            r["left_container"] = outside
        r["trained"] = {k: meta[k] for k in ("command", "seed", "epoch", "valid_loss", "train_seconds", "world") if k in meta}
        result["models"][name] = r
    return result, preds


def plot_errors(result: dict[str, Any], path: PathLike) -> None:
    """PNG: rollout MSE against horizon, one line per model (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    for name, r in result["models"].items():
        curve = np.asarray(r["mse_curve"])
        ax.plot(np.arange(1, len(curve) + 1), np.maximum(curve, 1e-12), label=f"{name} (full {r['mse_full']:.2e})")
    floor = ((result.get("ground_truth") or {}).get("replay") or {}).get("mse_full")
    if floor is not None and floor > 1e-12:  # below that the simulator replays its recording exactly
        ax.axhline(floor, color="gray", linestyle="--", linewidth=1, label=f"simulator replay (full {floor:.2e})")
    ax.set_yscale("log")
    ax.set_xlabel("horizon (predicted steps)")
    ax.set_ylabel("position MSE (m$^2$)")
    ax.set_title(f"{result['world']}: rollout error, {result['trajectories']} held-out trajectories")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def save_figure(fig: Any, path: PathLike) -> None:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _view_axes(positions: np.ndarray) -> tuple[int, int]:
    """The two coordinates that move most (x-z for the cradle, x-y for pushing)."""
    if positions.shape[2] < 3:
        return 0, 1
    spread = positions.reshape(-1, positions.shape[2]).std(0)
    a, b = sorted(np.argsort(spread)[-2:].tolist())
    return a, b


def gif_frame_ms(dt: float, steps_per_frame: float) -> int:
    """Milliseconds each GIF frame shows so the GIF plays in real time (at least 40 ms).

    GIF delays count in hundredths of a second, and viewers show delays under 20 ms
    as 100 ms, so short delays are raised to 40 ms (the GIF then plays slower
    than real time rather than at a viewer's whim).
    """
    return max(MIN_FRAME_MS, int(round(1000.0 * dt * max(steps_per_frame, 1.0) / 10.0)) * 10)


def rollout_gif(truth: Trajectory, preds: dict[str, np.ndarray], path: PathLike, frames: int = GIF_FRAMES) -> None:
    """GIF: the true rollout beside each model's, as scatter plots sharing axes.

    Fixed relations (the cradle's strings, the rope's links) are drawn as grey
    lines between their nodes, in every panel at that panel's positions; each
    frame lasts :func:`gif_frame_ms` so the GIF plays in real time.
    """
    import imageio.v2 as imageio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    t = min([truth.num_steps] + [p.shape[0] for p in preds.values()])
    panels = {"ground truth": truth.positions[:t]} | {k: v[:t] for k, v in preds.items()}
    a, b = _view_axes(truth.positions)
    allpos = np.concatenate([p[:, :, [a, b]].reshape(-1, 2) for p in panels.values()])
    allpos = allpos[np.isfinite(allpos).all(1)]
    lo, hi = np.percentile(allpos, 0.5, axis=0), np.percentile(allpos, 99.5, axis=0)
    pad = 0.1 * (hi - lo).max() + 1e-6
    colors = truth.instance % 10
    edges = np.asarray(truth.edges).T  # [E, 2] sender, receiver
    steps = np.linspace(0, t - 1, min(frames, t)).astype(int)
    images = []
    for k in steps:
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.6), dpi=70)
        for ax, (title, pos) in zip(np.atleast_1d(axes), panels.items(), strict=True):
            xy = pos[k][:, [a, b]]
            if len(edges):
                ax.add_collection(LineCollection(xy[edges], colors="0.55", linewidths=1.0, zorder=1))
            ax.scatter(xy[:, 0], xy[:, 1], c=colors, cmap="tab10", vmin=0, vmax=9, s=18, zorder=2)
            ax.set_xlim(lo[0] - pad, hi[0] + pad)
            ax.set_ylim(lo[1] - pad, hi[1] + pad)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title}\nstep {k}", fontsize=8)
        fig.tight_layout()
        fig.canvas.draw()
        images.append(np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy())
        plt.close(fig)
    per_frame = (steps[-1] - steps[0]) / max(len(steps) - 1, 1)
    buf = io.BytesIO()
    imageio.mimsave(buf, images, format="GIF", duration=gif_frame_ms(truth.dt, per_frame), loop=0)
    atomic_write_bytes(path, buf.getvalue())
