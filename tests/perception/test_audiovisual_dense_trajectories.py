"""Dense trajectories: Lucas-Kanade recovers known shifts, tracks follow a moving blob, no texture no flow."""

from __future__ import annotations

import pytest
import torch

from perception.audiovisual.dense_trajectories import (
    dense_tracks,
    lucas_kanade,
    track_displacements,
    warp,
)
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blob(cx: float, cy: float, h: int = 64, w: int = 96, sigma: float = 4.0) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2)).view(1, 1, h, w)


@pytest.mark.parametrize("shift", [(1.0, 0.5), (3.0, -2.0), (-5.0, 2.0)])
def test_lucas_kanade_recovers_a_blob_shift_to_a_tenth_of_a_pixel(shift):
    dx, dy = shift
    flow = lucas_kanade(_blob(40, 30), _blob(40 + dx, 30 + dy))
    assert flow.shape == (1, 2, 64, 96)
    assert abs(float(flow[0, 0, 30, 40]) - dx) < 0.1 and abs(float(flow[0, 1, 30, 40]) - dy) < 0.1


def test_warping_by_the_flow_maps_the_second_frame_onto_the_first():
    a, b = _blob(40, 30), _blob(43, 28)
    back = warp(b, lucas_kanade(a, b))
    assert (back - a).abs().max() < 0.05 < (b - a).abs().max()


def test_a_flat_image_has_no_flow_and_bad_inputs_are_refused():
    flat = torch.full((2, 1, 16, 16), 0.3)
    assert lucas_kanade(flat, flat + 0.1).abs().max() < 1e-4
    with pytest.raises(StateError, match="lucas_kanade"):
        lucas_kanade(flat, flat[:1])
    with pytest.raises(ConfigError, match="window"):
        lucas_kanade(flat, flat, window=4)


def test_a_track_started_on_a_moving_blob_stays_on_it():
    path = [(20.0 + 2.5 * t, 24.0 + 1.0 * t) for t in range(8)]
    frames = torch.cat([_blob(x, y) for x, y in path]).expand(-1, 3, -1, -1)  # [T, 3, H, W]
    tracks = dense_tracks(frames, stride=4)
    assert tracks.shape == (8, 16 * 24, 2)
    start = ((tracks[0] - torch.tensor([20.0, 24.0])).norm(dim=1)).argmin()
    moved = tracks[-1, start] - tracks[0, start]  # the point is beside the centre: compare displacements
    assert (moved - torch.tensor([17.5, 7.0])).norm() < 0.5
    far = ((tracks[0] - torch.tensor([85.0, 8.0])).norm(dim=1)).argmin()  # background: stays put
    assert (tracks[-1, far] - tracks[0, far]).norm() < 0.1
    steps = track_displacements(tracks)
    assert steps.shape == (7, 16 * 24, 3)
    assert torch.allclose(steps[..., 2], steps[..., :2].norm(dim=-1))
    assert abs(float(steps[:, start, 2].mean()) - (2.5**2 + 1) ** 0.5) < 0.2
