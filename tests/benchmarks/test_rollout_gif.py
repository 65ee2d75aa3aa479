"""The rollout GIF draws fixed relations (the cradle's strings) and plays at a real frame rate."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from benchmarks.dynamics_eval import gif_frame_ms, rollout_gif
from physics.worlds.dynamics import generate_split


def _frames(path):
    im = Image.open(path)
    frames = []
    for k in range(im.n_frames):
        im.seek(k)
        frames.append(np.asarray(im.convert("RGB")))
    return im.info, frames


def test_gif_has_a_frame_duration_and_draws_the_strings(tmp_path):
    truth = generate_split("cradle", 1, seed=0, steps=12)[0]
    rollout_gif(truth, {"copy": truth.positions}, tmp_path / "strings.gif", frames=4)
    no_strings = dataclasses.replace(truth, edges=np.zeros((2, 0), np.int64),
                                     edge_attr=np.zeros((0, truth.edge_attr.shape[1]), np.float32))
    rollout_gif(no_strings, {"copy": truth.positions}, tmp_path / "bare.gif", frames=4)
    info, with_lines = _frames(tmp_path / "strings.gif")
    _, bare = _frames(tmp_path / "bare.gif")
    assert info["duration"] == gif_frame_ms(truth.dt, (12 - 1) / 3) >= 40
    grey = [(np.abs(f.astype(int) - 140).max(axis=2) < 20).sum() for f in (with_lines[0], bare[0])]
    assert grey[0] > grey[1] + 50  # the strings' grey pixels


def test_frame_duration_follows_the_recorded_time_step():
    assert gif_frame_ms(1 / 30, 3.0) == 100 and gif_frame_ms(1 / 60, 1.0) == 40
