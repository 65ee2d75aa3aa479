"""``nesy bench video-dynamics``: future and counterfactual collisions of video Dynamics providers.

Example::

    nesy data clevrer --n 40 --seed 1502 --split val --no-render --out data/clevrer_dyn
    nesy bench video-dynamics --data data/clevrer_dyn --split val --dynamics gt,propnet --out results/video_dyn.json

For each provider of ``--dynamics`` (:data:`physics.video_dynamics.VIDEO_DYNAMICS`;
learned ones from ``--checkpoint``, by default the shipped one) and every video
of the split (learned ones with the ``--future-*`` rollout flags of
:class:`benchmarks.eval_clevrer.RolloutFlags`, applied to every learned provider): future collision events (same pair within ``--window`` frames:
precision, recall, F1) and position error against horizon over the truth's
future frames; counterfactual collision F1 over a re-run without each object
(all collisions, and the changed ones only); rollout speed; and the state
collision rule's agreement with the recorded collisions on true states.  Keys:
:mod:`benchmarks.video_dynamics_eval`.  Writes ``--out`` (JSON) and the error
curve beside it (``.png``); prints a short table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.config_flags import (
    add_config_flags,
    comma_items,
    config_from_args,
    count,
    registry_argument,
)
from benchmarks.eval_clevrer import RolloutFlags
from benchmarks.table import print_table
from physics.errors import ConfigError
from physics.io import atomic_write_json, check_writable
from physics.video_dynamics import VIDEO_DYNAMICS

__all__ = ["register", "run"]


def _f1(part: dict) -> str:
    return "-" if part["f1"] is None else f"{part['f1']:.3f}"


def print_summary(result: dict, out: Path) -> None:
    rows = []
    for name, r in result["providers"].items():
        fut, cf = r["future"], r["counterfactual"]
        err = fut["position_error_at"]
        rows.append([name, _f1(fut["collisions"]), _f1(cf["collisions"]), _f1(cf["changed_collisions"]),
                     *(f"{err[h]:.3f}" if h in err else "-" for h in (10, 25, 50)),
                     f"{r['speed']['seconds_per_counterfactual']:.2f}"])
    print_table(rows, ["dynamics", "future F1", "cf F1", "cf changed F1", "err@10", "err@25", "err@50", "s/cf"],
                title=f"{result['videos']} videos ({result['data']}, split {result['split']}); events within "
                f"{result['window']} frames; position error in scene units")
    for name, r in result["providers"].items():
        groups = r["future"].get("position_error_by_group", {})
        parts = [f"{g} ({v['objects']}) " + "/".join(f"{v['position_error_at'][h]:.3f}" if h in v["position_error_at"] else "-"
                                                   for h in (10, 25, 50)) for g, v in groups.items()]
        if parts:
            print(f"{name} position error at 10/25/50 frames by object: " + ", ".join(parts))
        fast = (r.get("free_slide") or {}).get("fast")
        if fast and fast["objects"]:
            print(f"{name} free slide over {r['free_slide']['horizon']} frames, {fast['objects']} objects at "
                  f"{fast['min_speed']:g} units/s or faster: travel ratio median {fast['median_travel_ratio']:.3f}, "
                  f"|ratio - 1| median {fast['median_ratio_error']:.3f}, end error median {fast['median_end_error']:.3f}")
        resp = r.get("contact_response")
        if resp and resp["changes"]:
            print(f"{name} contact response ({resp['changes']} velocity changes at collisions, true states in): "
                  f"predicted/true median {resp['median_ratio']:.2f}, over half the true change {resp['share_over_half']:.0%}")
    rule = result["collision_rule"]
    print(f"state collision rule on true states: precision {rule['precision']:.3f}, recall {rule['recall']:.3f}, "
          f"F1 {rule['f1']:.3f}")
    print(f"full result -> {out}; figure -> {result['figures']['position_error_png']}")


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.video_dynamics_eval import evaluate_video_dynamics, plot_position_error
    from physics.models.video_propnet import load_video_split
    from physics.video_dynamics import make_video_dynamics

    torch.set_num_threads(args.threads)
    check_writable(args.out)  # not after the rollouts
    names = comma_items(args.dynamics, "--dynamics")
    if not names:
        raise ConfigError(f"--dynamics: no provider named in {args.dynamics!r}; choose from {', '.join(VIDEO_DYNAMICS)}")
    for n in names:
        VIDEO_DYNAMICS.get(n)
    flags = config_from_args(RolloutFlags, args)
    settings = flags.rollout_settings()
    learned = [n for n in names if n != "gt"]
    if settings and not learned:
        raise ConfigError(f"rollout flags {sorted(settings)} set the learned providers' rollouts; none of "
                          f"{args.dynamics!r} is learned")
    for name in learned if settings else ():  # bad settings refused before any provider runs ("gt,propnet": gt first)
        try:
            make_video_dynamics(name, checkpoint=args.checkpoint, settings=settings)
        except ConfigError as exc:
            raise flags.name_flag(exc) from None
    if learned:
        flags.check_read(settings)
    videos = load_video_split(args.data, args.split, limit=args.n)
    providers = {}
    for name in names:
        given = settings if name != "gt" else None
        providers[name] = evaluate_video_dynamics(
            videos, lambda truth, name=name, given=given: make_video_dynamics(
                name, truth=truth, checkpoint=args.checkpoint, settings=given),
            window=args.window, progress=not args.quiet,
        )
    rule = next(iter(providers.values()))["collision_rule"]
    for r in providers.values():
        r.pop("collision_rule")
    out = Path(args.out)
    png = out.with_suffix(".png")
    plot_position_error(providers, png)
    result = {"data": str(args.data), "split": args.split, "videos": len(videos), "window": args.window,
              "checkpoint": args.checkpoint, "rollout_settings": settings, "collision_rule": rule, "providers": providers,
              "figures": {"position_error_png": str(png)}}
    atomic_write_json(out, result, indent=1)
    print_summary(result, out)
    return 0


def register(groups) -> None:
    parser = groups.sub("bench", "video-dynamics", help="future and counterfactual collisions of video dynamics providers",
                        description=__doc__.split("\n\n")[0] + " Rollouts start from the true annotations, so each "
                        "--future-* flag left out takes its default on true annotations.")
    parser.add_argument("--data", required=True, help="folder written by `nesy data clevrer` (annotations and truth)")
    parser.add_argument("--split", default="val", help="split to bench (default: val)")
    parser.add_argument("--n", type=count(min=1), default=None, help="first N videos only (default: all)")
    registry_argument(parser, "--dynamics", registry=VIDEO_DYNAMICS, many=True, default="gt,propnet",
                      help="comma-separated providers (default: gt,propnet)")
    parser.add_argument("--checkpoint", default=None, help="model file of the learned providers (default: the shipped one)")
    add_config_flags(parser, RolloutFlags)
    parser.add_argument("--window", type=count(min=0), default=2, help="frames a predicted collision may be off (default: 2)")
    parser.add_argument("--out", required=True, help="result JSON; the error curve PNG goes beside it")
    parser.add_argument("--threads", type=count(min=1), default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
