"""``nesy bench video-perception``: perceive CLEVRER videos from their frames and score them against the truth.

Example (held-out videos of a seed never used for tuning)::

    nesy data clevrer --n 10 --seed 31337 --split test --future-frames 0 --out heldout
    nesy bench video-perception --data heldout --perception model --out video_perception.json

For every video ``frames_<split>/video_<k>/`` the chosen video perceiver
(:data:`perception.video.VIDEO_PERCEIVERS`) writes an annotation in the
official format, scored against ``annotation_<split>/annotation_<k>.json``
by :mod:`perception.video.metrics`.  The terminal shows one table; ``--out``
gets the scores, the per-video counts and the speed (frames per second, wall
clock and process CPU time); ``--save DIR`` writes the perceived annotations
in the data set's layout (``DIR/annotation_<split>/annotation_<k>.json``), so
other commands can read them in place of the true ones.  A video that cannot
be read is reported and skipped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.config_flags import count
from benchmarks.table import percent, print_table
from physics.errors import DataError, NesyError
from physics.io import atomic_write_json, check_writable

__all__ = ["register", "run", "evaluate"]


def _split_folder(data: Path, split: str | None) -> Path:
    if not data.is_dir():
        raise DataError(f"--data {data}: folder not found")
    if split is not None:
        folder = data / f"frames_{split}"
        if not folder.is_dir():
            raise DataError(f"--data {data}: no frames_{split}/ folder (written by `nesy data clevrer --split {split}`)")
        return folder
    found = sorted(p for p in data.glob("frames_*") if p.is_dir())
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataError(f"--data {data}: expected one frames_<split>/ folder, found {names}; pick one with --split")
    return found[0]


def evaluate(data: Path, perceiver: Any, *, split: str | None = None, limit: int | None = None,
             save: Path | None = None) -> dict[str, Any]:
    """Perceive and score the videos of ``data`` (the JSON result of the command).

    Args:
        data: A ``nesy data clevrer`` folder.
        perceiver: A :class:`~perception.video.VideoPerceiver`.
        split: Which ``frames_<split>`` (None: the only one).
        limit: Score the first ``limit`` videos only.
        save: Write the perceived annotations below this folder.
    """
    from perception.video.metrics import score_video, summarize
    from perception.video.perceiver import annotation_for_frames
    from physics.worlds.clevrer_annotation import read_annotation, write_annotation

    folder = _split_folder(data, split)
    split_name = folder.name.removeprefix("frames_")
    videos = sorted(p for p in folder.glob("video_*") if p.is_dir())
    if not videos:
        raise DataError(f"{folder}: no video_<k>/ frame folder")
    videos = videos[:limit] if limit is not None else videos
    scores, skipped = [], []
    frames = 0
    wall = cpu = 0.0
    for video in videos:
        try:
            true = read_annotation(annotation_for_frames(video))
            t0, c0 = time.perf_counter(), time.process_time()
            pred = perceiver(video)
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
        except NesyError as exc:
            skipped.append({"video": video.name, "error": str(exc)})
            print(f"skipped {video.name}: {exc}")
            continue
        frames += pred.num_frames
        scores.append({"video": video.name, **score_video(pred, true)})
        if save is not None:
            write_annotation(save / f"annotation_{split_name}" / f"annotation_{true.scene_index:05d}.json", pred)
    if not scores:
        raise DataError(f"{folder}: no video could be perceived ({len(skipped)} skipped)")
    return {
        "data": str(data),
        "split": split_name,
        "perception": getattr(perceiver, "name", type(perceiver).__name__),
        **summarize(scores),
        "speed": {
            "frames": frames,
            "seconds_wall": round(wall, 3),
            "seconds_cpu": round(cpu, 3),
            "frames_per_second_wall": round(frames / wall, 3) if wall else None,
            "frames_per_second_cpu": round(frames / cpu, 3) if cpu else None,
        },
        "skipped": skipped,
        "per_video": scores,
    }


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    """The terminal table's rows: (measure, value)."""
    acc = result["attribute_accuracy"]
    ev = result["events"]
    speed = result["speed"]

    def f1(kind: str) -> str:
        e = ev[kind]
        return (f"P {percent(e['precision'], 1)}  R {percent(e['recall'], 1)}  F1 {percent(e['f1'], 1)}  "
                f"({e['hits']} of {e['true']} true, {e['perceived']} perceived)")

    def number(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    return [
        ["videos / frames / objects", f"{result['videos']} / {result['frames']} / {result['objects']}"],
        ["detection precision / recall", f"{percent(result['detection']['precision'])} / {percent(result['detection']['recall'])}"],
        ["attributes: colour / material / shape / all",
         " / ".join(percent(acc[a]) for a in ("color", "material", "shape", "all"))],
        ["identity accuracy (frames) / ID switches", f"{percent(result['identity_accuracy'])} / {result['id_switches']}"],
        ["location error (units) / velocity error (units/s)",
         f"{number(result['location_error'], 4)} / {number(result['velocity_error'], 3)}"],
        ["collisions (within 2 frames)", f1("collision")],
        ["in events (within 2 frames)", f1("in")],
        ["out events (within 2 frames)", f1("out")],
        ["frames per second (wall / CPU)",
         f"{number(speed['frames_per_second_wall'], 2)} / {number(speed['frames_per_second_cpu'], 2)}"],
    ]


def run(args: argparse.Namespace) -> int:
    import torch

    from perception.video.registry import load_video_perceiver

    torch.set_num_threads(args.threads)
    if args.out:
        check_writable(args.out)  # not after the videos are perceived
    if args.save:  # nor after the first one (a file in the way, a folder that refuses files)
        check_writable(Path(args.save) / "annotation.json")
    perceiver = load_video_perceiver(args.perception, args.checkpoint)
    result = evaluate(Path(args.data), perceiver, split=args.split, limit=args.limit,
                      save=Path(args.save) if args.save else None)
    if args.out:
        atomic_write_json(args.out, result, indent=1)
    print_table(summary_rows(result), ["measure", "value"],
                title=f"video perception {result['perception']!r} on {result['data']} ({result['split']})")
    print(f"full result -> {args.out}" if args.out else "(--out FILE writes the full result as JSON)")
    return 0


def register(groups) -> None:
    from perception.video.registry import VIDEO_PERCEIVERS

    parser = groups.sub(
        "bench",
        "video-perception",
        help="CLEVRER video perception from pixels scored against the truth (attributes, tracks, collisions)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--data", required=True, help="a `nesy data clevrer` folder")
    parser.add_argument("--split", default=None, help="which frames_<split>/ (default: the only one)")
    parser.add_argument("--limit", type=count(min=1), default=None, help="score the first N videos only")
    parser.add_argument("--perception", default="model", choices=VIDEO_PERCEIVERS.names(),
                        help="video annotations from (default: model): "
                        + "; ".join(f"{e.name}: {e.help}" for e in VIDEO_PERCEIVERS.entries()))
    parser.add_argument("--checkpoint", default=None, help="derenderer checkpoint (default: the shipped one)")
    parser.add_argument("--threads", type=count(min=1), default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--save", default=None, help="write the perceived annotations below this folder")
    parser.add_argument("--out", default=None, help="write the full result as JSON")
    parser.set_defaults(func=run)
