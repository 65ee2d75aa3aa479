"""A world, a dynamics model and a perceiver added from this file alone, one registration each, run by the CLI.

Nothing in the framework names them: ``nesy data dynamics --world toy``,
``nesy train dynamics --model toy``, ``nesy bench dynamics`` and
``nesy eval clevr --perceiver toy --checkpoint PATH`` find them in the
registries, and their ``--help`` lists them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import Tensor

import reasoning.nscl.perceiver  # noqa: F401  (the built-in QA models' perceivers first, then the toys)
from benchmarks.cli import main
from perception.registry import PERCEIVERS, Perceiver, register_perceiver
from perception.scene_graph import SceneGraph, load_scenes
from physics.models.base import MODELS, DynamicsModel, register_model
from physics.worlds.dynamics.base import DynamicsWorld, WorldConfig
from physics.worlds.dynamics.registry import WORLDS, register_world
from reasoning.registry import QA_MODELS, QAModel, QAParts, register_qa_model


class ToyBalls(DynamicsWorld):
    """Three balls on a floor, pushed sideways once at a seeded speed."""

    name = "toy"  # the learned models' "toy" preset: fixed relations only
    config_cls = WorldConfig

    def _build(self, rng: np.random.Generator) -> None:
        pb = self._pb
        self._call("createMultiBody", baseMass=0.0,
                   baseCollisionShapeIndex=self._call("createCollisionShape", pb.GEOM_PLANE))
        shape = self._call("createCollisionShape", pb.GEOM_SPHERE, radius=0.05)
        self._balls = []
        for k in range(3):
            ball = self._call("createMultiBody", baseMass=0.1, baseCollisionShapeIndex=shape,
                              basePosition=[0.3 * k, 0.0, 0.05])
            self._call("resetBaseVelocity", ball, linearVelocity=[float(rng.uniform(-0.5, 0.5)), 0.0, 0.0])
            self._balls.append(ball)
        self.node_attr = np.ones((3, 1), np.float32)
        self.instance = np.arange(3, dtype=np.int64)
        self.edges = np.array([[0, 1], [1, 2]], np.int64)
        self.edge_attr = np.full((2, 1), 0.3, np.float32)
        self.observed = np.ones(3, bool)

    def _positions(self) -> np.ndarray:
        return np.array([self._call("getBasePositionAndOrientation", b)[0] for b in self._balls], np.float64)


class NodeOnly(DynamicsModel):
    """Each node on its own history: no relation is used."""

    name = "toy"

    def process(self, c_node: Tensor, c_edge: Tensor, g) -> Tensor:
        return c_node


class SceneTable(Perceiver):
    """Looks each image's scene up in a CLEVR scenes file, its 'checkpoint'."""

    name = "toy"

    def __init__(self, scenes: dict[str, SceneGraph]) -> None:
        self.scenes = scenes
        self.metadata = {}

    @classmethod
    def from_checkpoint(cls, path) -> SceneTable:
        return cls({s.image_filename: s for s in load_scenes(path)})

    def __call__(self, rgb, *, image_index=None, image_filename=None) -> SceneGraph:
        return self.scenes[image_filename]


@pytest.fixture(scope="module")
def toys():
    register_world(ToyBalls)
    register_model(NodeOnly)
    register_perceiver(SceneTable)
    yield
    for registry in (WORLDS, MODELS, PERCEIVERS):
        registry.unregister("toy")


def test_help_lists_the_registered_toys_beside_the_built_ins(toys, capsys):
    for argv, flag, listing in (
        (["data", "dynamics"], "--world", "{cradle,rope,boxes,fluidfall,boxbath,fluidshake,ricegrip,toy}"),
        (["train", "dynamics"], "--model", "{in,propnet,dpinet,gns,toy}"),
        (["eval", "clevr"], "--perceiver", "{derender,derender-blender,derender-blender-plain,derender-blender-tta,derender-blender-strict,derender-blender-recall,derender-blender-flip,derender-blender-outline,derender-blender-votes,derender-blender-r15,derender-selective,nscl,toy}"),
    ):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        out = capsys.readouterr().out
        assert f"{flag} {listing}" in out
    assert "toy (Each node on its own history: no relation is used)" in " ".join(
        _help(["train", "dynamics"], capsys).split()
    )


def test_control_model_help_names_the_registered_models_not_a_list_of_its_own(toys, capsys):
    """``control --model`` takes gt or any registered dynamics model; its help listed four names by hand."""
    lead = " ".join(_help(["control"], capsys).split())
    assert "learned simulator (in, propnet, dpinet, gns, toy)" in lead


def test_flags_read_the_registries_only_when_their_help_is_shown():
    import subprocess
    import sys

    code = (
        "import sys; from benchmarks.cli import build_parser; p = build_parser(['answer']); "
        "p.parse_args(['answer', '--scene', 's.json', '--program', 'count(scene())']); "
        "print(sorted(m for m in ('torch', 'perception.derender') if m in sys.modules)); "
        "p.format_help(); p._subparsers._group_actions[0].choices['answer'].format_help(); "
        "print('perception.derender' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True"]


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_toy_world_model_data_train_and_bench_through_the_cli(toys, tmp_path, capsys):
    data, runs = tmp_path / "data", tmp_path / "runs"
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        assert main(["data", "dynamics", "--world", "toy", "--n", str(n), "--steps", "12", "--out", str(data),
                     "--split", split, "--backend", "serial", "--quiet"]) == 0
    from physics.worlds.dynamics import load_split

    (traj,) = load_split(data, "test")
    assert traj.meta["world"] == "toy" and traj.positions.shape == (12, 3, 3)
    assert np.ptp(traj.positions[:, :, 0], axis=0).max() > 0.01  # the balls roll
    assert main(["train", "dynamics", "--world", "toy", "--model", "toy", "--data", str(data),
                 "--out", str(runs / "toy_toy"), "--epochs", "1", "--max-samples", "16", "--valid-samples", "4",
                 "--set", "hidden=8", "--quiet", "--device", "cpu"]) == 0
    assert (runs / "toy_toy" / "model.pt").is_file()
    capsys.readouterr()
    out = tmp_path / "bench" / "toy.json"
    assert main(["bench", "dynamics", "--world", "toy", "--data", str(data), "--out", str(out),
                 "--models", "toy", "--checkpoints", str(runs), "--horizons", "1,3", "--no-gif"]) == 0
    res = json.loads(out.read_text())
    assert res["world"] == "toy" and set(res["models"]) == {"toy"}
    assert len(res["models"]["toy"]["mse_curve"]) == 12 - 3  # history 2: predictions start at step 3
    assert np.isfinite(res["models"]["toy"]["mse_full"])
    assert res["models"]["toy"]["trained"]["command"].startswith("nesy train dynamics --world toy --model toy")


@pytest.fixture(scope="module")
def clevr_split(tiny_clevr):
    return tiny_clevr(2, split="test", seed=3, questions=5)


def test_toy_perceiver_is_evaluated_from_the_checkpoint_given_by_path(toys, clevr_split, tmp_path, capsys):
    truth = clevr_split / "CLEVR_test_scenes.json"
    report = tmp_path / "r.json"
    assert main(["eval", "clevr", "--data", str(clevr_split), "--perceiver", "toy", "--checkpoint", str(truth),
                 "--parser", "gt", "--out", str(report)]) == 0
    res = json.loads(report.read_text())
    assert res["parts"] == {"perceiver": "toy", "perceiver_checkpoint": str(truth), "parser": False,
                            "parser_checkpoint": None}
    assert res["perception"]["detection_recall"] == 1.0 and res["accuracy"]["overall"] == 1.0

    # another checkpoint, other answers: each scene loses its objects
    raw = json.loads(truth.read_text())
    for scene in raw["scenes"]:
        scene["objects"], scene["relationships"] = [], {k: [] for k in scene["relationships"]}
    empty = tmp_path / "empty_scenes.json"
    empty.write_text(json.dumps(raw))
    assert main(["eval", "clevr", "--data", str(clevr_split), "--perceiver", "toy", "--checkpoint", str(empty),
                 "--parser", "gt", "--out", str(report)]) == 0
    res = json.loads(report.read_text())
    assert res["perception"]["detection_recall"] == 0.0 and res["accuracy"]["overall"] < 1.0

    capsys.readouterr()
    assert main(["eval", "clevr", "--data", str(clevr_split), "--perceiver", "toy", "--parser", "gt"]) == 2
    assert "perceiver 'toy' ships no checkpoint" in capsys.readouterr().err


def test_misspelt_names_get_a_did_you_mean_error(toys, clevr_split, tmp_path, capsys):
    cases = (
        (["data", "dynamics", "--world", "rop", "--n", "1", "--out", str(tmp_path)],
         "unknown dynamics world 'rop' (did you mean 'rope'?); choose one of cradle, rope, boxes, fluidfall, boxbath, fluidshake, ricegrip, toy"),
        (["train", "dynamics", "--world", "cradle", "--model", "propnt", "--data", str(tmp_path)],
         "unknown dynamics model 'propnt' (did you mean 'propnet'?); choose one of in, propnet, dpinet, gns, toy"),
        (["bench", "dynamics", "--world", "cradel", "--data", str(tmp_path), "--out", str(tmp_path / "r.json")],
         "unknown dynamics world 'cradel' (did you mean 'cradle'?)"),
        (["eval", "clevr", "--data", str(clevr_split), "--perceiver", "derendr"],
         "unknown perceiver 'derendr' (did you mean 'derender' or 'derender-blender'?); choose one of derender, derender-blender, derender-blender-plain, derender-blender-tta, derender-blender-strict, derender-blender-recall, derender-blender-flip, derender-blender-outline, derender-blender-votes, derender-blender-r15, derender-selective, nscl, toy"),
        (["eval", "clevr", "--data", str(clevr_split), "--model", "nsvq"],
         "unknown QA model 'nsvq' (did you mean 'nsvqa'?); choose one of nsvqa, nscl"),
        (["answer", "--image", str(tmp_path / "x.png"), "--perceiver", "tyo", "--program", "count(scene())"],
         "unknown perceiver 'tyo' (did you mean 'toy'?)"),
    )
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_perceiver_flags_with_ground_truth_perception_are_refused(clevr_split, capsys):
    assert main(["eval", "clevr", "--data", str(clevr_split), "--perception", "gt", "--checkpoint", "x.pt"]) == 2
    assert "need perception='model'" in capsys.readouterr().err


class AlwaysYes(QAModel):
    """Answers yes to everything: a composed QA model of the simplest kind."""

    name = "yes"

    @classmethod
    def from_parts(cls, parts: QAParts) -> AlwaysYes:
        assert parts.perceiver is None and not parts.parser  # --perception gt --parser gt
        return cls()

    def perceive(self, rgb, *, image_index=None, image_filename=None):
        raise AssertionError("ground-truth perception was asked for")

    def parse(self, questions):
        raise AssertionError("ground-truth programs were asked for")

    def answer_programs(self, programs, scenes, scene_indices):
        return ["yes"] * len(programs)


def test_a_qa_model_registered_here_is_evaluated_by_name(clevr_split, tmp_path):
    register_qa_model(AlwaysYes)
    try:
        report = tmp_path / "yes.json"
        assert main(["eval", "clevr", "--data", str(clevr_split), "--model", "yes", "--perception", "gt",
                     "--parser", "gt", "--out", str(report)]) == 0
    finally:
        QA_MODELS.unregister("yes")
    res = json.loads(report.read_text())
    answers = [q["answer"] for q in json.loads((clevr_split / "CLEVR_test_questions.json").read_text())["questions"]]
    assert res["config"]["model"] == "yes" and 0 < answers.count("yes") < len(answers)
    assert res["accuracy"]["overall"] == pytest.approx(answers.count("yes") / len(answers))


def test_the_derenderer_is_the_default_perceiver_and_loads_from_a_path(clevr_split, tmp_path):
    from benchmarks.eval_clevr import ClevrEvalConfig
    from perception.derender import DEFAULT_CHECKPOINT

    assert ClevrEvalConfig(data=str(clevr_split), parser="gt").parts().perceiver == "derender"
    report = tmp_path / "d.json"
    assert main(["eval", "clevr", "--data", str(clevr_split), "--checkpoint", str(DEFAULT_CHECKPOINT),
                 "--parser", "gt", "--out", str(report)]) == 0
    res = json.loads(report.read_text())
    assert res["parts"]["perceiver"] == "derender" and res["parts"]["perceiver_checkpoint"] == str(DEFAULT_CHECKPOINT)
    assert res["perception"]["detection_recall"] > 0  # the shipped networks find objects in these renders
