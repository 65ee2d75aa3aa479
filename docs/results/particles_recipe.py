"""The decisions of the fluidfall DPI-Net recipe (``particles_recipe.sh``), read from its run files.

Three steps of ``docs/results/particles_recipe.sh`` decide something from files a run wrote;
each is one subcommand here, so the shell script only runs commands and the choices are tested
(``tests/physics/test_particles_recipe.py``) on made-up logs:

- ``epochs RUN``: how many training epochs ``RUN/loss.jsonl`` logs (0 when the file is absent),
  so the script resumes a run until it has them all.
- ``start RUN --epochs E --limit L``: the round-1 start, the contained epoch (the 16-rollout check's
  ``valid_rollout_outside`` at most L) with the lowest check MSE (``valid_rollout_mse``) over all E
  epochs; prints ``RUN/epochs/epoch_N.pt``.  Exit 3 with one line when no epoch is contained (the
  seed has no start: it fails the development gate), exit 2 when the run is not finished.  With
  ``--fallback`` (session 28's ranking, which gave seed 1 its start) an uncontained run starts from
  the epoch least past the limit, then of lowest check MSE, instead.
- ``noise --candidate N RUN... --candidate N2 RUN... --epochs E --limit L --out OUT``: round 1's input
  noise, chosen on validation alone: the candidate whose round-1 runs (one per init seed) have the most
  seeds with a contained epoch (as ``start``); a tie goes to the candidate listed first.
- ``gate TAG --compare CMP --raw BENCH --out OUT``: one seed's development gate (sessions 28-30):
  pass iff the declared model's ``nesy bench compare`` ratio against the shipped IN is below 1.0 and
  its raw rollout leaves at most 20% of the fluid outside the tank at the last frame.
- ``heldout --compares C1 C2 C3 --pooled P --raws R1 R2 R3``: session 28's held-out rule, parts
  (a)-(c) (part (d), the quick bench and the checkpoint tests with the file in place, is run by hand).

Every malformed input stops with one line naming the file and what is wrong (exit 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from physics.errors import DataError, NesyError
from physics.io import atomic_write_json, read_json

GATE_RATIO = 1.0  # A/B against the shipped IN must be below this (sessions 24-30's gate, unchanged)
RAW_OUTSIDE = 0.2  # raw rollout: at most this fraction of the fluid outside at the last frame (session 17's guard)


class RecipeError(ValueError):
    """A run file the recipe reads is missing or malformed; the message names the file."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path, "run file")
    except DataError as exc:
        raise RecipeError(str(exc)) from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise RecipeError(f"{where}: expected a number, got {value!r}")
    return float(value)


def epoch_records(run: Path) -> list[dict[str, Any]]:
    """The training epochs (epoch >= 1) logged in ``run/loss.jsonl``, one per epoch, in order."""
    path = run / "loss.jsonl"
    if not path.exists():
        return []
    records: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise RecipeError(f"{path}:{number}: no whole 'epoch' >= 0")
        if epoch >= 1:
            records[epoch] = record  # a resumed run may log an epoch twice; the last line is the run's
    return [records[k] for k in sorted(records)]


def choose_start(run: Path, epochs: int, limit: float, fallback: bool = False) -> Path | None:
    """``run``'s contained epoch of lowest check MSE as ``epochs/epoch_N.pt``; None when none is contained.

    With ``fallback`` the epoch of least excess over ``limit``, then lowest check MSE, (never None).

    Raises:
        RecipeError: fewer than ``epochs`` epochs logged, a check missing, or the epoch file absent.
    """
    records = epoch_records(run)
    if len(records) < epochs:
        raise RecipeError(f"{run / 'loss.jsonl'}: {len(records)} of {epochs} epochs logged; resume the run first")
    best: tuple[float, float, int] | None = None
    for record in records[:epochs]:
        where = f"{run / 'loss.jsonl'} epoch {record['epoch']}"
        mse = _number(record.get("valid_rollout_mse"), f"{where} valid_rollout_mse")
        outside = _number(record.get("valid_rollout_outside"), f"{where} valid_rollout_outside")
        rank = (max(0.0, outside - limit), mse, record["epoch"])
        if (outside <= limit or fallback) and (best is None or rank < best):
            best = rank
    if best is None:
        return None
    path = run / "epochs" / f"epoch_{best[2]}.pt"
    if not path.exists():
        raise RecipeError(f"{path}: the chosen epoch's file is missing (was the run started with --keep-epochs?)")
    return path


def choose_noise(candidates: list[tuple[str, list[Path]]], epochs: int, limit: float) -> dict[str, Any]:
    """Round 1's noise: the candidate with the most runs that have a contained epoch, ties to the first listed.

    Args:
        candidates: (noise, round-1 run directories, one per init seed), in order of preference.

    Raises:
        RecipeError: no candidate, a repeated noise, candidates over different numbers of seeds, or a run
            ``choose_start`` refuses (unfinished, malformed).
    """
    if not candidates:
        raise RecipeError("noise: no --candidate given")
    names = [noise for noise, _ in candidates]
    if len(set(names)) != len(names):
        raise RecipeError(f"noise: a candidate is repeated in {names}")
    if len({len(runs) for _, runs in candidates}) != 1:
        raise RecipeError(f"noise: every candidate needs the same seeds' runs, got {[len(r) for _, r in candidates]}")
    counts = {noise: sum(choose_start(run, epochs, limit) is not None for run in runs) for noise, runs in candidates}
    chosen = max(names, key=lambda noise: (counts[noise], -names.index(noise)))
    return {"contained": counts, "seeds": len(candidates[0][1]), "chosen": chosen}


def _compare(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    for key in ("ratio", "interval", "lower_in", "episodes"):
        if key not in data:
            raise RecipeError(f"{path}: no {key!r}; expected a `nesy bench compare --out` result")
    return data


def raw_outside(path: Path, model: str = "dpinet") -> float:
    """The fraction of ``model``'s fluid outside the tank at the last frame in a ``nesy bench dynamics`` result."""
    data = _read_json(path)
    entry = data.get("models", {}).get(model) if isinstance(data.get("models"), dict) else None
    if not isinstance(entry, dict):
        raise RecipeError(f"{path}: no model {model!r} in 'models'")
    if entry.get("wall_projection"):
        raise RecipeError(f"{path}: model {model!r} was benched projected; the raw check needs --no-wall-projection")
    return _number(entry.get("left_container"), f"{path} {model} left_container")


def seed_gate(compare: Path, raw: Path) -> dict[str, Any]:
    """One seed's development gate: A/B below 1.0 against the shipped IN and at most 20% outside raw."""
    cmp = _compare(compare)
    ratio = _number(cmp["ratio"], f"{compare} ratio")
    outside = raw_outside(raw)
    return {"ratio": ratio, "interval": cmp["interval"], "lower_in": cmp["lower_in"], "episodes": cmp["episodes"],
            "raw_outside": outside, "pass_ratio": ratio < GATE_RATIO, "pass_outside": outside <= RAW_OUTSIDE,
            "pass": ratio < GATE_RATIO and outside <= RAW_OUTSIDE}


def heldout_verdict(compares: list[Path], pooled: Path, raws: list[Path]) -> dict[str, Any]:
    """Session 28's held-out rule, parts (a)-(c): pooled upper end below 1.0, each seed below 1.0, each raw <= 20%."""
    pooled_cmp = _compare(pooled)
    high = _number(pooled_cmp["interval"][1], f"{pooled} interval")
    seeds = [seed_gate(c, r) for c, r in zip(compares, raws, strict=True)]
    verdict = {"pooled_ratio": pooled_cmp["ratio"], "pooled_interval": pooled_cmp["interval"], "a": high < GATE_RATIO,
               "b": all(s["pass_ratio"] for s in seeds), "c": all(s["pass_outside"] for s in seeds), "seeds": seeds}
    verdict["a_to_c"] = verdict["a"] and verdict["b"] and verdict["c"]
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("epochs")
    p.add_argument("run", type=Path)
    p = sub.add_parser("start")
    p.add_argument("run", type=Path)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--limit", type=float, required=True)
    p.add_argument("--fallback", action="store_true", help="no contained epoch: the one least past the limit")
    p = sub.add_parser("noise")
    p.add_argument("--candidate", nargs="+", action="append", required=True, metavar=("NOISE", "RUN"),
                   help="a noise and its round-1 runs, one per init seed; the first listed wins a tie")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--limit", type=float, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("gate")
    p.add_argument("tag")
    p.add_argument("--compare", type=Path, required=True)
    p.add_argument("--raw", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("heldout")
    p.add_argument("--compares", type=Path, nargs="+", required=True)
    p.add_argument("--pooled", type=Path, required=True)
    p.add_argument("--raws", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "epochs":
            print(len(epoch_records(args.run)))
        elif args.cmd == "start":
            start = choose_start(args.run, args.epochs, args.limit, args.fallback)
            if start is None:
                print(f"{args.run}: no epoch within {args.limit:.0%} raw outside: no start")
                return 3
            print(start)
        elif args.cmd == "noise":
            choice = choose_noise([(c[0], [Path(r) for r in c[1:]]) for c in args.candidate], args.epochs, args.limit)
            atomic_write_json(args.out, choice, indent=1)
            counts = ", ".join(f"{n}: {k} of {choice['seeds']}" for n, k in choice["contained"].items())
            print(f"seeds with a contained round-1 epoch: {counts}; noise {choice['chosen']}")
        elif args.cmd == "gate":
            gate = {"tag": args.tag, **seed_gate(args.compare, args.raw)}
            atomic_write_json(args.out, gate, indent=1)
            low, high = gate["interval"]
            print(f"{args.tag}: A/B {gate['ratio']:.3g} ({low:.3g}-{high:.3g}), lower in {gate['lower_in']} of "
                  f"{gate['episodes']}; raw outside {gate['raw_outside']:.1%}: {'pass' if gate['pass'] else 'FAIL'}")
        else:
            if len(args.compares) != len(args.raws):
                raise RecipeError(f"--compares has {len(args.compares)} files, --raws {len(args.raws)}: one each per seed")
            verdict = heldout_verdict(args.compares, args.pooled, args.raws)
            atomic_write_json(args.out, verdict, indent=1)
            print(json.dumps({k: v for k, v in verdict.items() if k != "seeds"}))
    except (RecipeError, NesyError) as exc:  # NesyError: an output that cannot be written
        print(f"particles_recipe: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
