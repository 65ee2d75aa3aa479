"""Pack test-split videos of rendered pools with their counterfactual re-runs and the pixel perceiver's states.

Twenty-sixth session (nsdr6), ``nesy train video-dynamics --perceived-inputs``: every trajectory gets
``meta["input_positions"]`` (:func:`physics.models.video_perceived.with_perceived_inputs`): the shipped pixel
perceiver's centres of its objects in the observed frames (from a pool's detection cache), the truth elsewhere.
The perceived tracks come first from ``perceive_pool.py``-style files (per video ``v{i}_xyt`` ``[T_obs, P, 3]``
as :func:`physics.models.video_propnet._tracks` gives them, NaN where absent); a video whose perceived frames do
not line up with its annotation is left out (named). Each pool's video ids are offset (``OFFSET``) so that the
training loop's per-video grouping keeps pools apart; pools go in the order given, so ``--valid-fraction`` holds
out the last pool's videos.

Usage (from the repository root)::

    PYTHONPATH=$PWD python docs/results/clevrer_pack_perceived.py OUT.npz DATA:SPLIT:PERCEIVED.npz:OFFSET ...
"""
import dataclasses
import json
import sys

import numpy as np

from physics.models.video_perceived import match_tracks, with_perceived_inputs
from physics.models.video_propnet import load_video_split, save_trajectory_pack, video_trajectories


def pool(data: str, split: str, perceived: str, offset: int) -> tuple[list, dict]:
    from pathlib import Path

    n = len(list((Path(data) / f"truth_{split}").glob("*")))
    pairs = load_video_split(data, split, limit=n)
    z = np.load(perceived)
    out, stats = [], {"videos": 0, "skipped": [], "object_frames": 0, "perceived": 0}
    for a, tr in pairs:
        i = a.scene_index
        if f"v{i}_xyt" not in z.files:
            stats["skipped"].append([i, "not perceived"])
            continue
        trajs = video_trajectories(a, tr, counterfactuals=True)
        fact = trajs[0]
        ids = fact.meta["object_ids"]
        t_obs = len(a.motion_trajectory)
        xyt = z[f"v{i}_xyt"]
        if xyt.ndim != 3 or xyt.shape[0] != t_obs or int(z[f"v{i}_first"][0]) != a.motion_trajectory[0].frame_id:
            stats["skipped"].append([i, f"perceived frames {xyt.shape} do not line up"])
            continue
        match = match_tracks(fact.positions[:t_obs, :, :2].astype(float), xyt[:, :, :2].astype(float))
        pxy = np.full((t_obs, len(ids), 2), np.nan)
        for k in range(len(ids)):
            f = np.flatnonzero(match[:, k] >= 0)
            pxy[f, k] = xyt[f, match[f, k], :2]
        got = [with_perceived_inputs(fact, pxy)]
        for cf in trajs[1:]:
            cols = [ids.index(k) for k in cf.meta["object_ids"]]
            got.append(with_perceived_inputs(cf, pxy[:, cols], factual=fact.positions[:, cols, :2]))
        for t in got:
            stats["object_frames"] += t_obs * t.positions.shape[1]
            stats["perceived"] += t.meta["perceived_frames"]
        out += [dataclasses.replace(t, meta={**t.meta, "video": int(t.meta["video"]) + offset}) for t in got]
        stats["videos"] += 1
    return out, stats


def main() -> None:
    out, trajs, report = sys.argv[1], [], {}
    for spec in sys.argv[2:]:
        data, split, perceived, offset = spec.split(":")
        got, stats = pool(data, split, perceived, int(offset))
        trajs += got
        report[data] = {**stats, "trajectories": len(got)}
    save_trajectory_pack(out, trajs)
    print(json.dumps({"pools": report, "trajectories": len(trajs), "out": out}))


if __name__ == "__main__":
    main()
