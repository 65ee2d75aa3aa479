"""Joint embeddings with pyramid alignment: CoGenT scenes as tokens, one space, losses that fall, honest ranks."""

from __future__ import annotations

import pytest
import torch

from perception.benchmark import run_bench
from perception.grounding.joint_embedding import (
    LEVELS,
    MAX_OBJECTS,
    PAIRS,
    EmbeddingConfig,
    JointEmbedding,
    describe_scenes,
    multi_positive_nce,
    pyramid_loss,
    render_cogent,
    retrieval_ranks,
    train_joint,
)
from perception.scene_graph import SceneGraph, SceneObject
from physics.errors import ConfigError, StateError
from physics.worlds.clevr_properties import COGENT_CONDITIONS, COLORS, SHAPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scenes_a():
    return render_cogent(range(10), "A")


def test_cogent_renders_follow_their_condition_and_are_deterministic(scenes_a):
    again = render_cogent(range(10), "A")
    assert torch.equal(scenes_a.images, again.images) and torch.equal(scenes_a.attributes, again.attributes)
    assert scenes_a.images.shape == (10, 3, 48, 64) and scenes_a.masks.shape == (10, MAX_OBJECTS, 12, 16)
    b = render_cogent(range(10), "B")
    for data, condition in ((scenes_a, "A"), (b, "B")):
        objs = data.attributes[data.present]
        for shape in ("cube", "cylinder"):
            colors = {COLORS[c] for c in objs[objs[:, 3] == SHAPES.index(shape), 1].tolist()}
            assert colors <= set(COGENT_CONDITIONS[condition][shape])
    # every present object covers some feature cells, absent ones none
    area = scenes_a.masks.sum((2, 3))
    assert (area[scenes_a.present] > 0).all() and (area[~scenes_a.present] == 0).all()


def test_relations_follow_the_camera_directions():
    objs = (SceneObject("cube", "red", "rubber", "large", (0.0, 0.0, 0.7), 0.0),
            SceneObject("sphere", "blue", "metal", "small", (2.0, -1.0, 0.35), 0.0))
    attributes, present, relations = describe_scenes([SceneGraph(objs)])
    assert present[0].tolist() == [True, True, False, False]
    assert relations[0, PAIRS.index((0, 1))].tolist() == [1, 1]  # the sphere is right of and in front of the cube
    assert attributes[0, 1].tolist() == [0, COLORS.index("blue"), 1, SHAPES.index("sphere")]
    with pytest.raises(StateError, match="at most"):
        describe_scenes([SceneGraph(objs * 3)])


def test_levels_give_unit_embeddings_one_per_item(scenes_a):
    model = JointEmbedding(EmbeddingConfig(dim=16, width=16))
    out = model(scenes_a)
    n_obj = int(scenes_a.present.sum())
    assert out["scene"][0].shape == out["scene"][1].shape == (10, 16)
    assert out["object"][0].shape == (n_obj, 16) and out["object"][2].shape == (n_obj,)
    for image, text, _keys in out.values():
        assert torch.allclose(image.norm(dim=-1), torch.ones(len(image)), atol=1e-5)
        assert torch.allclose(text.norm(dim=-1), torch.ones(len(text)), atol=1e-5)
    assert torch.allclose(model.embed_images(scenes_a.images), out["scene"][0], atol=1e-5)
    with pytest.raises(StateError):
        model.embed_images(scenes_a.images[:, :, :32])


def test_multi_positive_nce_counts_equal_keys_as_positives():
    a = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    same = multi_positive_nce(a, a, torch.tensor([0, 0, 1]), 0.1)
    distinct = multi_positive_nce(a, a, torch.tensor([0, 1, 2]), 0.1)
    assert same < distinct  # two identical rows are no longer each other's negatives


@pytest.mark.parametrize("levels", [LEVELS, ("scene",)])
def test_training_lowers_the_loss_and_is_deterministic(scenes_a, levels):
    config = EmbeddingConfig(dim=16, width=16, levels=levels)
    model, losses = train_joint(config, scenes_a, steps=30, batch=8, lr=3e-3, seed=0)
    _, again = train_joint(config, scenes_a, steps=30, batch=8, lr=3e-3, seed=0)
    assert losses == again
    with torch.no_grad():
        assert pyramid_loss(model, scenes_a)["loss"] < pyramid_loss(JointEmbedding(config), scenes_a)["loss"]
    ranks = retrieval_ranks(model, scenes_a)
    assert ranks.shape == (10,) and ranks.min() >= 1 and ranks.max() <= 10


def test_bad_levels_and_conditions_are_refused():
    with pytest.raises(ConfigError, match="scene"):
        EmbeddingConfig(levels=("object",))
    with pytest.raises(ConfigError, match="condition"):
        render_cogent(range(1), "C")


def test_quick_bench_reports_rank_and_cogent_b_checks():
    result = run_bench("joint-embedding", quick=True, seed=0)
    assert len(result["checks"]) == 2 and all(c["ablation"] is not None for c in result["checks"])
    assert set(result["figures"]["models"]) == {"pyramid", "global"}
