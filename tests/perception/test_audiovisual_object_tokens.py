"""Object tokens for VATT: features measured from frames and masks, and the objects stem's padding and steps."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from perception.audiovisual.object_tokens import (
    GROUND_FEATURES,
    GROUND_SCALE,
    OBJECT_FEATURES,
    PAIR_FEATURES,
    SIZE_SCALE,
    VELOCITY_SCALE,
    depth_features,
    ground_contact,
    ground_features,
    object_features,
    pair_features,
    pair_slots,
)
from perception.audiovisual.vatt import VATT, VATTConfig, step_means
from physics.errors import ConfigError, StateError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OBJ = VATTConfig(frames=4, height=16, width=16, tubelet=(2, 8, 8), samples=256, chunk=32, vocab=12, dim=16,
                 depth=1, heads=2, va_dim=8, vt_dim=8, video_stem="objects", object_slots=3)


def _moving_square() -> tuple[torch.Tensor, torch.Tensor]:
    """One clip of 4 frames 8 x 16: a red 2 x 2 square (slot 1) steps 2 pixels right, 2 right, then stops."""
    frames = torch.zeros(1, 4, 3, 8, 16, dtype=torch.uint8)
    masks = torch.full((1, 4, 8, 16), -1, dtype=torch.int8)
    for t, x in enumerate((2, 4, 6, 6)):
        masks[0, t, 3:5, x : x + 2] = 1
        frames[0, t, 0, 3:5, x : x + 2] = 255
    return frames, masks


def test_object_features_measure_centre_size_colour_and_motion_from_the_mask():
    f = object_features(*_moving_square(), slots=3)
    assert f.shape == (1, 4, 3, OBJECT_FEATURES)
    assert torch.equal(f[0, :, 0], torch.zeros(4, OBJECT_FEATURES))  # slot 0 is never in view: all zero
    sq = f[0, :, 1]
    assert sq[:, 0].tolist() == [1.0] * 4
    centre_x = [(x + 1) / 16 * 2 - 1 for x in (2, 4, 6, 6)]  # mean pixel centre x + 1 (pixels x, x + 1 -> x + 1)
    assert torch.allclose(sq[:, 1], torch.tensor(centre_x)) and torch.allclose(sq[:, 2], torch.full((4,), 0.0))
    assert torch.allclose(sq[:, 3], torch.full((4,), (4 / 128) ** 0.5 * SIZE_SCALE))
    assert torch.allclose(sq[:, 4:7], torch.tensor([0.5, -0.5, -0.5]).expand(4, 3))
    step = 2 / 16 * 2 * VELOCITY_SCALE  # 2 pixels of 16 on a scale of width 2
    assert torch.allclose(sq[:, 7], torch.tensor([0.0, step, step, 0.0])) and torch.equal(sq[:, 8], torch.zeros(4))
    # the change of velocity needs two velocities: none in frames 0 and 1, 0 in frame 2, -step as it stops
    assert torch.allclose(sq[:, 9], torch.tensor([0.0, 0.0, 0.0, -step]), atol=1e-6)


def test_object_features_leave_motion_out_when_the_object_was_not_in_view():
    frames, masks = _moving_square()
    masks[0, 1] = -1  # out of view in frame 1: no velocity in frames 1 and 2, no change before frame 3 + 1
    f = object_features(frames, masks, slots=2)[0, :, 1]
    assert f[:, 0].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert torch.equal(f[1], torch.zeros(OBJECT_FEATURES))
    assert f[2, 7] == 0 and f[3, 7] == 0  # frame 3 repeats frame 2's place: 0 velocity, measured
    assert torch.equal(f[:, 9], torch.zeros(4))  # never two velocities in a row


def test_object_features_refuse_masks_beyond_the_slots_by_name():
    frames, masks = _moving_square()
    with pytest.raises(StateError, match="slots=1"):
        object_features(frames, masks, slots=1)
    with pytest.raises(StateError, match="masks"):
        object_features(frames, masks[:, :3], slots=2)


def _features(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, 4, 3, OBJECT_FEATURES, generator=g)
    f[..., 0] = 1.0
    f[0, :, 2] = 0.0  # clip 0's slot 2 never in view
    f[1, 2:, :, 0] = 0.0  # clip 1's objects all leave in time step 1
    return f


def test_objects_stem_gives_one_token_per_slot_and_frame_and_masks_the_absent_ones():
    torch.manual_seed(0)
    net = VATT(OBJ).eval()
    f = _features()
    agg, out, step = net._video(f)
    assert out.shape == (3, 12, 16) and step.shape == (3, 12)
    assert step[2].tolist() == [0] * 6 + [1] * 6  # frames 0-1 -> step 0, frames 2-3 -> step 1
    assert step[0].tolist() == [0, 0, -1] * 2 + [1, 1, -1] * 2 and step[1].tolist() == [0] * 6 + [-1] * 6
    # what an absent slot holds changes nothing: not its neighbours, not the [AGG], not the step means
    g = f.clone()
    g[0, :, 2, 1:] = 5.0
    g[1, 2:, :, 1:] = -3.0
    agg2, out2, _ = net._video(g)
    assert torch.allclose(agg, agg2, atol=1e-6)
    assert torch.allclose(step_means(out, step, 2), step_means(out2, step, 2), atol=1e-6)
    assert torch.equal(step_means(out, step, 2)[1, 1], torch.zeros(16))  # no object in view: zeros
    feats = net.video_features(f, per_time=True)
    assert feats.shape == (3, 3 * 16) and torch.allclose(feats, net.video_features(g, per_time=True), atol=1e-6)


def test_objects_stem_drop_token_keeps_presence_with_its_token():
    torch.manual_seed(0)
    net = VATT(OBJ).train()
    f = _features()
    for _ in range(5):
        _, out, step = net._video(f)
        assert out.shape == (3, 6, 16)
        # clip 1's kept tokens of frames 2-3 are padding, every other kept token is in view
        assert ((step[1] == -1) | (step[1] == 0)).all() and (step[2] >= 0).all()
        assert (step[0] == -1).sum() <= 4


def test_objects_stem_trains_and_bad_inputs_are_refused_by_name():
    torch.manual_seed(0)
    net = VATT(OBJ)
    g = torch.Generator().manual_seed(1)
    out = net.losses(_features(4), torch.randn(4, 256, generator=g), torch.randint(1, 12, (4, 2, 3), generator=g))
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in net.objects.parameters())
    with pytest.raises(StateError, match="object features"):
        net.video_features(torch.rand(2, 4, 3, 16, 16))
    with pytest.raises(ConfigError, match="objects stem"):
        dataclasses.replace(OBJ, video_input="diff")
    with pytest.raises(ConfigError, match="objects stem"):
        dataclasses.replace(OBJ, object_slots=0)


def test_frame_attention_lets_an_object_token_see_its_own_frame_only():
    # one layer: moving one object of frame 3 changes the outputs of frame 3's tokens and of no other frame's
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(OBJ, object_attention="frame", video_time_positions=False)).eval()
    f = _features()
    _, out, _ = net._video(f)
    g = f.clone()
    g[2, 3, 1, 1:3] += 1.0  # clip 2, frame 3, slot 1 moves
    _, out2, _ = net._video(g)
    changed = (out2 - out).abs().amax(-1) > 1e-5  # [3, 12], token k is frame k // 3
    assert changed[2, 9:].all() and not changed[2, :9].any() and not changed[:2].any()
    # with "all" every token of the clip hears of it
    net_all = VATT(dataclasses.replace(OBJ, video_time_positions=False)).eval()
    changed = (net_all._video(g)[1] - net_all._video(f)[1]).abs().amax(-1) > 1e-5
    assert changed[2].all()
    with pytest.raises(ConfigError, match="object_attention"):
        dataclasses.replace(OBJ, object_attention="pairs")


def test_frame_attention_follows_the_kept_tokens_under_drop_token():
    torch.manual_seed(0)
    net = VATT(dataclasses.replace(OBJ, object_attention="frame", video_time_positions=False)).train()
    frames_seen = []
    original = net.video_encoder.forward

    def spy(tokens, padding=None, mask=None):
        frames_seen.append(mask)
        return original(tokens, padding, mask)

    net.video_encoder.forward = spy
    _, out, step = net._video(_features())
    mask = frames_seen[0]
    assert mask.shape == (3 * OBJ.heads, 7, 7) and not mask[:, 0].any() and not mask[:, :, 0].any()
    assert not mask.diagonal(dim1=1, dim2=2).any()  # every token sees itself
    # two kept tokens of clip 2 (no padding) see each other exactly when they are in the same time step's frame
    blocked = mask[2 * OBJ.heads, 1:, 1:]
    assert ((step[2][:, None] != step[2][None]) <= blocked).all()


def test_step_means_leave_padding_out():
    tokens = torch.tensor([[[1.0], [3.0], [100.0], [5.0]]])
    assert step_means(tokens, torch.tensor([[0, 0, -1, 1]]), 2).flatten().tolist() == [2.0, 5.0]


def test_objects_time_positions_tell_steps_apart_only_when_asked():
    torch.manual_seed(0)
    still = torch.zeros(1, 4, 3, OBJECT_FEATURES)
    still[..., 0] = 1.0
    still[..., 1] = 0.3
    for time_positions, differ in ((True, True), (False, False)):
        net = VATT(dataclasses.replace(OBJ, video_time_positions=time_positions))
        t = net.video_tokens(still)[0].view(2, 6, -1)
        assert (not torch.allclose(t[0], t[1], atol=1e-5)) == differ


def _two_squares(stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip of 5 frames 8 x 16: slot 0 (2 x 2, red) moves right 2 px a frame from x = 0 towards slot 1 (2 x 2,
    green) resting at x = 10; from frame ``stop`` on slot 0 stands still. Slot 2 is never in view."""
    frames = torch.zeros(1, 5, 3, 8, 16, dtype=torch.uint8)
    masks = torch.full((1, 5, 8, 16), -1, dtype=torch.int8)
    x = 0
    for t in range(5):
        if 0 < t < stop:
            x += 2
        masks[0, t, 3:5, x : x + 2] = 0
        masks[0, t, 3:5, 10:12] = 1
        frames[0, t, 0, 3:5, x : x + 2] = 255
        frames[0, t, 1, 3:5, 10:12] = 255
    return frames, masks


def test_pair_features_measure_gap_approach_and_velocity_change_of_a_pair():
    frames, masks = _two_squares(stop=4)  # slot 0 at x = 0, 2, 4, 6, 6: stops 2 px short of slot 1
    f = object_features(frames, masks, slots=3)
    p = pair_features(f, 8, 16)
    i, j = pair_slots(3)
    assert (i.tolist(), j.tolist()) == ([0, 0, 1], [1, 2, 2]) and p.shape == (1, 5, 3, PAIR_FEATURES)
    assert torch.equal(p[0, :, 1:], torch.zeros(5, 2, PAIR_FEATURES))  # slot 2 is never in view
    pair = p[0, :, 0]
    assert pair[:, 0].tolist() == [1.0] * 5
    radius = (4 / torch.pi) ** 0.5 / 8  # sqrt(area / pi) pixels, in half-widths of 16 pixels
    distance = torch.tensor([10.0, 8, 6, 4, 4]) / 8
    assert torch.allclose(pair[:, 1], distance - 2 * radius, atol=1e-5)
    assert torch.allclose(pair[:, 2], torch.exp(-(distance - 2 * radius).clamp_min(0) / 0.1), atol=1e-5)
    step = 2 / 16 * 2 * VELOCITY_SCALE
    assert torch.allclose(pair[:, 3], torch.tensor([0.0, step, step, step, 0.0]), atol=1e-5)  # closing speed
    assert torch.allclose(pair[:, 4], torch.tensor([0.0, step, step, step, 0.0]), atol=1e-5)
    # only slot 0 changes velocity (when it stops in frame 4): the smaller change 0, the larger and opposed step
    assert torch.equal(pair[:, 5], torch.zeros(5))
    assert torch.allclose(pair[:, 6], torch.tensor([0.0, 0, 0, 0, step]), atol=1e-5)
    assert torch.allclose(pair[:, 7], pair[:, 6])
    with pytest.raises(StateError, match="pair_features"):
        pair_features(f[:, :, :1], 8, 16)


def test_pair_tokens_join_their_frame_and_are_padding_unless_both_objects_are_in_view():
    cfg = dataclasses.replace(OBJ, object_pairs=True, object_attention="frame", video_time_positions=False)
    assert cfg.frame_tokens == 6
    torch.manual_seed(0)
    net = VATT(cfg).eval()
    f = _features()
    _, out, step = net._video(f)
    assert out.shape == (3, 4 * 6, 16)
    # clip 0's slot 2 is never in view: its token and its two pairs (0-2, 1-2) are padding, pair 0-1 is not
    assert step[0].view(4, 6).tolist() == [[s, s, -1, s, -1, -1] for s in (0, 0, 1, 1)]
    # a pair token sees its own frame's objects only: moving an object of frame 3 changes frame 3's tokens
    g = f.clone()
    g[2, 3, 1, 1:3] += 1.0
    changed = (net._video(g)[1] - out).abs().amax(-1) > 1e-5
    assert changed[2, 18:].all() and not changed[2, :18].any() and not changed[:2].any()
    out_loss = VATT(dataclasses.replace(cfg, temporal_nce=1.0, temporal_negatives="clip")).losses(
        f, torch.randn(3, 256), torch.randint(1, 12, (3, 2, 3)))
    out_loss["loss"].backward()
    with pytest.raises(ConfigError, match="object_pairs"):
        dataclasses.replace(OBJ, object_pairs=True, object_slots=1)
    with pytest.raises(ConfigError, match="object_pairs"):
        VATTConfig(object_pairs=True)


def test_learned_pair_tokens_are_an_unordered_function_of_the_two_objects_and_learn():
    cfg = dataclasses.replace(OBJ, object_pairs=True, pair_tokens="learned", object_attention="frame",
                              video_time_positions=False, drop_token=0.0)
    torch.manual_seed(0)
    net = VATT(cfg).eval()
    assert net.pairs[0].in_features == 3 * OBJECT_FEATURES
    f = _features()
    tokens, both = net._pair_tokens(f)
    assert tokens.shape == (3, 4, 3, 16) and both.shape == (3, 4, 3)
    # clip 0's slot 2 is never in view: pairs 0-2 and 1-2 are padding (zero tokens), pair 0-1 is not
    assert both[0].tolist() == [[True, False, False]] * 4 and not tokens[0, :, 1:].any()
    # unordered: swapping slots 0 and 1 leaves pair 0-1's token as it was
    swapped = f[:, :, [1, 0, 2]]
    assert torch.allclose(net._pair_tokens(swapped)[0][:, :, 0], tokens[:, :, 0], atol=1e-6)
    # it is no hand-made measurement: with the hand-made pair features equal, the tokens still differ
    a = net._pair_tokens(f)[0][2, 0, 0]
    g = f.clone()
    g[2, 0, :2, 4:7] += 0.3  # both objects' colour changes; gap, speed and velocity changes do not
    assert torch.allclose(pair_features(g, 16, 16)[2, 0, 0], pair_features(f, 16, 16)[2, 0, 0])
    assert not torch.allclose(net._pair_tokens(g)[0][2, 0, 0], a, atol=1e-4)
    # the pair MLP gets gradient from VATT's losses
    net = VATT(dataclasses.replace(cfg, temporal_nce=1.0, temporal_negatives="clip")).train()
    net.losses(f, torch.randn(3, 256), torch.randint(1, 12, (3, 2, 3)))["loss"].backward()
    assert net.pairs[0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="pair_tokens"):
        dataclasses.replace(OBJ, pair_tokens="learned")  # needs object_pairs
    with pytest.raises(ConfigError, match="pair_tokens"):
        dataclasses.replace(OBJ, object_pairs=True, pair_tokens="guessed")


def test_temporal_skip_first_leaves_step_zero_out_of_the_step_nce():
    # frame attention, so frames 0-1 reach no later step's tokens; the audio is the same in both calls
    cfg = dataclasses.replace(OBJ, frames=6, temporal_nce=1.0, temporal_negatives="clip", drop_token=0.0,
                              object_attention="frame")
    torch.manual_seed(0)
    f = torch.randn(2, 6, 3, OBJECT_FEATURES)
    f[..., 0] = 1.0
    audio, text = torch.randn(2, 256), torch.randint(1, 12, (2, 2, 3))
    torch.manual_seed(1)
    full = VATT(cfg).eval()
    torch.manual_seed(1)
    skip = VATT(dataclasses.replace(cfg, temporal_skip_first=True)).eval()
    base, skipped = full.losses(f, audio, text)["nce_steps"], skip.losses(f, audio, text)["nce_steps"]
    # with step 0 out, what the video shows in its first step (frames 0-1) no longer moves the step NCE
    g = f.clone()
    g[:, :2, :, 1:] += 3.0
    assert torch.allclose(skip.losses(g, audio, text)["nce_steps"], skipped, atol=1e-6)
    assert not torch.allclose(full.losses(g, audio, text)["nce_steps"], base, atol=1e-4)
    with pytest.raises(ConfigError, match="temporal_skip_first"):
        dataclasses.replace(OBJ, temporal_skip_first=True)


@pytest.mark.slow
def test_the_quick_bench_runs_the_objects_stem_at_its_own_rate():
    from perception.audiovisual.vatt import run_vatt_bench

    out = run_vatt_bench(True, 0, lr=3e-4, video_stem="objects", frames=16, tubelet=(4, 8, 8))
    assert out.figures["config_overrides"]["video_stem"] == "objects" and out.figures["lr"] == 3e-4
    assert 0.0 <= out.figures["probe_accuracy"]["drop_token"] <= 1.0
    with pytest.raises(ConfigError, match="lr"):
        run_vatt_bench(True, 0, lr=0.0)


def _seen(camera, centres: list[tuple[float, float, float]]) -> torch.Tensor:
    """Object features [1, T, 1, OBJECT_FEATURES] of a ball of radius r resting at (x, y) per frame, as a mask of
    it would measure them: its centre's pixel position and the radius it shows, r f / depth."""
    import math

    f = torch.zeros(1, len(centres), 1, OBJECT_FEATURES)
    focal = camera.width / 2 / math.tan(math.radians(camera.fov_x_deg) / 2)
    for t, (x, y, r) in enumerate(centres):
        u, v, depth = camera.project([[x, y, r]])[0]
        f[0, t, 0, :3] = torch.tensor([1.0, u / camera.width * 2 - 1, v / camera.height * 2 - 1])
        f[0, t, 0, 3] = r * focal / depth * SIZE_SCALE / (camera.height * camera.width / math.pi) ** 0.5
    return f


def test_ground_features_put_a_resting_ball_back_on_the_floor_through_the_camera():
    from physics.worlds.camera import CLEVR_CAMERA

    cam = CLEVR_CAMERA.with_size(64, 48)
    path = [(-1.0, 0.5, 0.7), (-0.6, 0.5, 0.7), (-0.2, 0.5, 0.7), (-0.2, 0.9, 0.7)]  # a large ball turns at frame 3
    g = ground_features(_seen(cam, path), cam)
    assert g.shape == (1, 4, 1, GROUND_FEATURES)
    assert torch.allclose(g[0, :, 0, :2] * GROUND_SCALE, torch.tensor([p[:2] for p in path]), atol=1e-3)
    assert torch.allclose(g[0, :, 0, 2], torch.full((4,), 0.7), atol=1e-3)
    assert torch.allclose(g[0, :, 0, 3:5], torch.tensor([[0, 0], [0.4, 0], [0.4, 0], [0, 0.4]]), atol=1e-3)
    assert torch.allclose(g[0, :, 0, 5:7], torch.tensor([[0, 0], [0, 0], [0, 0], [-0.4, 0.4]]), atol=1e-3)
    # a small ball at the same pixel is nearer the camera and lower: the size tells depth apart
    near = ground_features(_seen(cam, [(1.0, -1.0, 0.35)]), cam)[0, 0, 0]
    assert torch.allclose(near[:3], torch.tensor([1.0 / GROUND_SCALE, -1.0 / GROUND_SCALE, 0.35]), atol=1e-3)
    # not in view: all zero, and no velocity into or out of the gap
    f = _seen(cam, path)
    f[0, 1] = 0.0
    h = ground_features(f, cam)
    assert not h[0, 1].any() and not h[0, 2, 0, 3:].any() and not h[0, 3, 0, 5:].any()
    with pytest.raises(StateError, match="ground_features"):
        ground_features(torch.zeros(1, 4, 1, 5), cam)


def test_ground_features_of_rendered_frames_find_the_objects_on_the_floor():
    import numpy as np

    from physics.worlds.audiovisual import AudioVisualConfig, make_clip

    cfg = AudioVisualConfig(frames=4, height=48, width=64)
    clip = make_clip(3, cfg)
    of = object_features(torch.from_numpy(clip.frames).permute(0, 3, 1, 2)[None],
                         torch.from_numpy(clip.masks.astype(np.int64))[None], len(clip.objects))
    g = ground_features(of, cfg.world_config().camera.with_size(64, 48))
    errors = [float((g[0, t, o.index, :2] * GROUND_SCALE - torch.from_numpy(o.positions[t, :2])).norm())
              for o in clip.objects for t in range(4) if of[0, t, o.index, 0] > 0.5]
    assert len(errors) >= 4 and float(np.median(errors)) < 0.4  # scene units; objects are 0.35-0.7 in radius


def test_ground_contact_scores_a_touching_pair_that_changes_velocity_by_its_floor_gap():
    g = torch.zeros(1, 3, 3, GROUND_FEATURES)
    g[0, :, 0, :3] = torch.tensor([0.0, 0.0, 0.5])
    g[0, :, 1, :3] = torch.tensor([1.0 / GROUND_SCALE, 0.0, 0.5])  # touching: gap 1 - 0.5 - 0.5 = 0
    g[0, :, 2, :3] = torch.tensor([2.0, 0.0, 0.5])  # far away
    g[0, 2, :, 5] = torch.tensor([0.4, -0.2, 0.9])  # frame 2: all three change velocity
    present = torch.ones(1, 3, 3, dtype=torch.bool)
    score = ground_contact(g, present)
    assert score.shape == (1, 3) and score[0, :2].tolist() == [0.0, 0.0]
    assert abs(float(score[0, 2]) - 0.2) < 1e-6  # the touching pair: the smaller change, 0.2, times exp(0)
    present[0, 2, 1] = False  # the partner out of view: only the far pair is left
    assert float(ground_contact(g, present)[0, 2]) < 1e-3
    with pytest.raises(StateError, match="ground_contact"):
        ground_contact(g[..., :5], present)


def test_object_ground_widens_the_objects_stem_and_only_there():
    cfg = dataclasses.replace(OBJ, object_ground=True, object_pairs=True, object_attention="frame")
    assert cfg.object_inputs == OBJECT_FEATURES + GROUND_FEATURES and OBJ.object_inputs == OBJECT_FEATURES
    torch.manual_seed(0)
    net = VATT(cfg).eval()
    assert net.objects[0].in_features == OBJECT_FEATURES + GROUND_FEATURES
    f = torch.cat([_features(), torch.randn(3, 4, 3, GROUND_FEATURES)], -1)
    feats = net.video_features(f, per_time=True)
    assert feats.shape == (3, 3 * 16)
    g = f.clone()
    g[2, :, :, OBJECT_FEATURES:] += 1.0  # the floor features reach the tokens
    assert not torch.allclose(net.video_features(g, per_time=True)[2], feats[2], atol=1e-4)
    # the measured pair tokens are made from the mask's own features, as without the floor
    assert torch.allclose(net._pair_tokens(f)[0], net._pair_tokens(g)[0])
    learned = VATT(dataclasses.replace(cfg, pair_tokens="learned"))
    assert learned.pairs[0].in_features == 3 * (OBJECT_FEATURES + GROUND_FEATURES)
    with pytest.raises(StateError, match="object_ground=True"):
        net.video_features(_features())
    with pytest.raises(ConfigError, match="object_ground"):
        dataclasses.replace(OBJ, video_stem="linear", object_ground=True)


def test_the_bench_inputs_carry_the_floor_when_object_ground_is_on():
    from perception.audiovisual.clips import clip_bank
    from perception.audiovisual.vatt import _inputs
    from physics.worlds.audiovisual import AudioVisualConfig

    clips = AudioVisualConfig(frames=4, height=48, width=64)
    bank = clip_bank(3, 2, clips)
    cfg = dataclasses.replace(OBJ, height=48, width=64, object_slots=8, object_ground=True)
    video, _, _ = _inputs(bank, cfg)
    plain, _, _ = _inputs(bank, dataclasses.replace(cfg, object_ground=False))
    camera = clips.world_config().camera.with_size(64, 48)
    assert video.shape == (2, 4, 8, OBJECT_FEATURES + GROUND_FEATURES)
    assert torch.equal(video[..., :OBJECT_FEATURES], plain)
    assert torch.allclose(video[..., OBJECT_FEATURES:], ground_features(plain, camera))


def _stopping_square() -> tuple[torch.Tensor, torch.Tensor]:
    """One clip of 6 frames 8 x 16: a red 2 x 2 square (slot 0) steps 2 pixels right three times, then rests."""
    frames = torch.zeros(1, 6, 3, 8, 16, dtype=torch.uint8)
    masks = torch.full((1, 6, 8, 16), -1, dtype=torch.int8)
    for t, x in enumerate((2, 4, 6, 8, 8, 8)):
        masks[0, t, 3:5, x : x + 2] = 0
        frames[0, t, 0, 3:5, x : x + 2] = 255
    return frames, masks


def test_kink_change_is_the_slope_after_less_the_slope_before_fitted_over_two_frames_each():
    frames, masks = _stopping_square()
    plain = object_features(frames, masks, slots=1)[0, :, 0]
    kinked = object_features(frames, masks, slots=1, change="kink")[0, :, 0]
    assert torch.equal(plain[:, :9], kinked[:, :9])  # only the change differs
    step = 2 / 16 * 2 * VELOCITY_SCALE
    # frame 0 and 5 lack a side; frame 2's after-slope over x = 6, 8, 8 is half a step; frame 3 is the stop
    assert torch.allclose(kinked[:, 9], torch.tensor([0.0, 0.0, -0.5, -1.0, -0.5, 0.0]) * step, atol=1e-5)
    assert torch.equal(kinked[:, 10], torch.zeros(6))
    masks[0, 2] = -1  # out of view at frame 2: no kink there; frame 1 keeps frames 0 and 3 .. on its sides
    gone = object_features(frames, masks, slots=1, change="kink")[0, :, 0]
    assert gone[2, 9] == 0 and torch.isclose(gone[1, 9], torch.tensor(0.0), atol=1e-5)
    with pytest.raises(StateError, match="change"):
        object_features(frames, masks, slots=1, change="second")


def test_kink_ignores_a_constant_velocity_whatever_its_offset_and_the_config_refuses_it_off_the_objects_stem():
    from perception.audiovisual.object_tokens import kink

    t = torch.arange(8, dtype=torch.float32)
    centre = torch.stack([0.3 + 0.05 * t, -0.2 - 0.01 * t], -1)[None, :, None]  # [1, 8, 1, 2]
    present = torch.ones(1, 8, 1, dtype=torch.bool)
    assert torch.allclose(kink(centre, present, 2), torch.zeros(1, 8, 1, 2), atol=1e-6)
    assert dataclasses.replace(OBJ, object_change="kink").object_change == "kink"
    with pytest.raises(ConfigError, match="object_change"):
        dataclasses.replace(OBJ, object_change="smooth")
    with pytest.raises(ConfigError, match="object_change"):
        dataclasses.replace(OBJ, video_stem="linear", object_change="kink")


def test_the_bench_inputs_measure_the_kink_when_object_change_asks():
    from perception.audiovisual.clips import clip_bank
    from perception.audiovisual.vatt import _inputs
    from physics.worlds.audiovisual import AudioVisualConfig

    bank = clip_bank(3, 2, AudioVisualConfig(frames=4, height=48, width=64))
    cfg = dataclasses.replace(OBJ, height=48, width=64, object_slots=8, object_change="kink")
    video, _, _ = _inputs(bank, cfg)
    assert torch.equal(video, object_features(bank.frames, bank.masks, 8, "kink"))
    assert not torch.equal(video, _inputs(bank, dataclasses.replace(cfg, object_change="difference"))[0])


def _depth_of_a_ball(camera, centre, radius):
    """The depth [H, W] and mask [H, W] (slot 0) a camera sees of a ball resting at ``centre`` (x, y), radius R."""
    import numpy as np

    rays, eye = camera.pixel_rays(), np.asarray(camera.eye)
    c = np.array([*centre, radius])
    # |eye + d ray - c| = R: the nearer root of a quadratic in d
    a, b, k = (rays**2).sum(-1), 2 * ((eye - c) * rays).sum(-1), ((eye - c) ** 2).sum() - radius**2
    disc = b**2 - 4 * a * k
    hit = disc > 0
    depth = np.where(hit, (-b - np.sqrt(np.where(hit, disc, 0))) / (2 * a), 0.0)
    return torch.from_numpy(depth).float(), torch.from_numpy(np.where(hit, 0, -1)).to(torch.int8)


def test_depth_features_put_a_ball_seen_by_an_rgbd_camera_back_on_the_floor():
    from physics.worlds.camera import CLEVR_CAMERA

    cam = CLEVR_CAMERA.with_size(128, 96)
    path = [(-1.0, 0.5), (-0.6, 0.5), (-0.2, 0.5), (-0.2, 0.9)]  # a large ball turns at frame 3
    seen = [_depth_of_a_ball(cam, p, 0.7) for p in path]
    depth, masks = torch.stack([d for d, _ in seen])[None], torch.stack([m for _, m in seen])[None]
    g = depth_features(masks, depth, cam, slots=2)
    assert g.shape == (1, 4, 2, GROUND_FEATURES) and not g[0, :, 1].any()  # slot 1 is never in view
    assert torch.allclose(g[0, :, 0, :2] * GROUND_SCALE, torch.tensor(path), atol=0.05)  # 2R/3: the mean point's depth
    assert torch.allclose(g[0, :, 0, 2], torch.full((4,), 0.7), atol=0.02)  # half the top's height
    assert torch.allclose(g[0, :, 0, 3:5], torch.tensor([[0, 0], [0.4, 0], [0.4, 0], [0, 0.4]]), atol=0.03)
    assert torch.allclose(g[0, 3, 0, 5:7], torch.tensor([-0.4, 0.4]), atol=0.03) and not g[0, :2, 0, 5:].any()
    masks[0, 1] = -1  # not in view in frame 1: all zero there, no velocity into or out of the gap
    h = depth_features(masks, depth, cam, slots=2)
    assert not h[0, 1].any() and not h[0, 2, 0, 3:].any() and not h[0, 3, 0, 5:].any()
    with pytest.raises(StateError, match="depth_features"):
        depth_features(masks, depth[..., :-1], cam, slots=2)


def test_clips_made_with_depth_are_the_same_clips_with_the_renderers_depth_beside():
    import numpy as np

    from perception.audiovisual.clips import clip_bank
    from physics.worlds.audiovisual import AudioVisualConfig, make_clip

    cfg = AudioVisualConfig(frames=4, height=48, width=64)
    plain, rgbd = make_clip(3, cfg), make_clip(3, dataclasses.replace(cfg, depth=True))
    assert plain.depth is None and rgbd.depth.shape == (4, 48, 64) and rgbd.depth.dtype == np.float32
    assert np.array_equal(plain.frames, rgbd.frames) and np.array_equal(plain.mixture, rgbd.mixture)
    assert "depth" not in plain.config.to_json() and rgbd.config.to_json()["depth"] is True
    # the depth puts the objects on the floor: their centres within a fraction of their radius (0.35-0.7)
    camera = cfg.world_config().camera.with_size(64, 48)
    g = depth_features(torch.from_numpy(rgbd.masks)[None], torch.from_numpy(rgbd.depth)[None], camera, 8)
    errors = [float((g[0, t, o.index, :2] * GROUND_SCALE - torch.from_numpy(o.positions[t, :2])).norm())
              for o in rgbd.objects for t in range(4) if (rgbd.masks[t] == o.index).any()]
    assert len(errors) >= 4 and float(np.median(errors)) < 0.2
    bank = clip_bank(3, 2, dataclasses.replace(cfg, depth=True))
    assert bank.depth.shape == (2, 4, 48, 64) and clip_bank(3, 2, cfg).depth is None


def test_the_bench_inputs_carry_depth_features_when_object_ground_asks_for_depth():
    from perception.audiovisual.clips import clip_bank
    from perception.audiovisual.vatt import _inputs
    from physics.worlds.audiovisual import AudioVisualConfig

    clips = AudioVisualConfig(frames=4, height=48, width=64, depth=True)
    bank = clip_bank(3, 2, clips)
    cfg = dataclasses.replace(OBJ, height=48, width=64, object_slots=8, object_ground="depth")
    assert cfg.object_inputs == OBJECT_FEATURES + GROUND_FEATURES
    video, _, _ = _inputs(bank, cfg)
    plain, _, _ = _inputs(bank, dataclasses.replace(cfg, object_ground=False))
    camera = clips.world_config().camera.with_size(64, 48)
    assert torch.equal(video[..., :OBJECT_FEATURES], plain)
    assert torch.allclose(video[..., OBJECT_FEATURES:], depth_features(bank.masks, bank.depth, camera, 8))
    assert not torch.allclose(video, _inputs(bank, dataclasses.replace(cfg, object_ground="mask"))[0])
    with pytest.raises(ConfigError, match="depth=True"):  # clips without the depth channel
        _inputs(clip_bank(3, 2, dataclasses.replace(clips, depth=False)), cfg)
    for bad in ("lidar", 1, None):  # 1 and None: no bool or text (physics.config_types), "lidar": no choice
        with pytest.raises(ConfigError, match="object_ground must be (one of|true or false .* or text, got)"):
            dataclasses.replace(OBJ, object_ground=bad)
    with pytest.raises(ConfigError, match="object_ground needs video_stem"):
        dataclasses.replace(OBJ, video_stem="linear", object_ground="depth")


@pytest.mark.slow
def test_the_quick_bench_runs_with_depth_tokens():
    from perception.audiovisual.vatt import run_vatt_bench

    out = run_vatt_bench(True, 0, lr=3e-4, video_stem="objects", frames=16, tubelet=(4, 8, 8), audio_positions=False,
                         video_time_positions=False, object_attention="frame", object_pairs=True,
                         pair_tokens="learned", temporal_skip_first=True, object_ground="depth")
    assert out.figures["config_overrides"]["object_ground"] == "depth"
    assert 0.0 <= out.figures["probe_accuracy"]["drop_token"] <= 1.0


def test_drop_token_mode_objects_keeps_every_pair_token_and_half_the_object_tokens():
    cfg = dataclasses.replace(OBJ, object_pairs=True, object_attention="frame", drop_token_mode="objects")
    torch.manual_seed(0)
    net = VATT(cfg).train()
    for _ in range(5):
        kept = net._kept_object_tokens(3, torch.device("cpu"))  # 4 frames of 3 objects then 3 pairs
        slot = kept % cfg.frame_tokens
        assert kept.shape == (3, 6 + 12) and (kept.diff(1) > 0).all()
        assert ((slot >= 3).sum(1) == 12).all() and ((slot < 3).sum(1) == 6).all()
    assert len({tuple(row) for row in kept.tolist()}) > 1  # each clip draws its own objects
    _, out, step = net._video(_features())
    assert out.shape == (3, 18, 16)
    assert net.eval()._video(_features())[1].shape == (3, 24, 16)  # evaluation keeps every token


def test_drop_token_mode_frames_keeps_whole_frames_the_same_number_in_each_step():
    cfg = dataclasses.replace(OBJ, object_pairs=True, object_attention="frame", drop_token_mode="frames")
    torch.manual_seed(0)
    net = VATT(cfg).train()
    seen = set()
    for _ in range(5):
        kept = net._kept_object_tokens(3, torch.device("cpu"))
        assert kept.shape == (3, 2 * 6)  # 1 of the 2 frames of each of the 2 steps, all 6 tokens of each
        frame = (kept // 6).view(3, 2, 6)
        assert (frame == frame[..., :1]).all() and (kept.view(3, 2, 6) % 6 == torch.arange(6)).all()
        assert (frame[:, :, 0] // 2 == torch.tensor([0, 1])).all()  # one frame from each time step
        seen |= set(frame[:, 0, 0].tolist())
    assert seen == {0, 1}
    out = VATT(dataclasses.replace(cfg, onset_target=1.0, temporal_nce=1.0, temporal_negatives="clip")).losses(
        _features(), torch.randn(3, 256), torch.randint(1, 12, (3, 2, 3)))
    out["loss"].backward()
    assert out["loss"].isfinite()
    full = net._video(_features())  # dropping nothing keeps the default path
    assert VATT(dataclasses.replace(cfg, drop_token=0.0)).train()._video(_features())[1].shape == (3, 24, 16)
    assert full[1].shape == (3, 12, 16)


def test_a_bad_drop_token_mode_is_refused_by_name():
    with pytest.raises(ConfigError, match="drop_token_mode"):
        dataclasses.replace(OBJ, drop_token_mode="pixels")
    with pytest.raises(ConfigError, match="drop_token_mode"):
        dataclasses.replace(OBJ, drop_token_mode="objects")  # no pair tokens to keep
    with pytest.raises(ConfigError, match="drop_token_mode"):
        VATTConfig(drop_token_mode="frames")  # the tubelet stem
    assert VATTConfig().drop_token_mode == "tokens"
