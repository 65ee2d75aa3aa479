"""NS-VQA's abstaining answer path: no answer on a scene with an uncertain node, the answer otherwise."""

from __future__ import annotations

from perception.confidence.selective import ConfidenceGate, mark_scene
from perception.synthetic import sample_scene_graph
from physics.worlds.clevr_properties import ATTRIBUTES
from reasoning.dsl import parse_program
from reasoning.executor import execute
from reasoning.selective import ABSTAIN, answer_or_abstain


def test_answers_confident_scenes_and_abstains_on_uncertain_ones():
    scene = sample_scene_graph(7)
    program = parse_program("count(scene())")
    sure = mark_scene(scene, [{a: 0.99 for a in ATTRIBUTES} for _ in scene.objects], ConfidenceGate(0.9))
    doubt = mark_scene(scene, [{a: 0.5 for a in ATTRIBUTES} for _ in scene.objects], ConfidenceGate(0.9))
    assert answer_or_abstain(program, sure) == execute(program, scene).answer == str(len(scene))
    assert answer_or_abstain(program, doubt) is ABSTAIN
