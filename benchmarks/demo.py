"""``nesy demo``: the framework end to end on data it generates on the spot.

1. **World**: a CLEVR-style scene is built, settled and rendered in pybullet
   (RGB, depth, exact instance masks); the image and the scene JSON are saved.
2. **Questions**: the template generator asks questions about it (the project's
   own templates, CLEVR's nine families) in the official CLEVR format.
3. **Symbolic execution**: each question's program runs on the scene graph with
   a step-by-step trace; its answer must equal the generator's.
4. **NS-VQA from pixels** (when the default checkpoints are shipped): the
   derenderer turns the image into a scene graph, the parser turns each question
   into a program, and the executor answers.
5. **Learned physics** (when a default dynamics checkpoint is shipped): a learned
   simulator rolls out a held-out Newton's cradle episode beside the ground truth.

Every step prints what it did; ``summary.json`` in the output folder holds the
numbers for scripts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception.scene_graph import SceneGraph, save_scenes
from physics.errors import CheckpointError, ConfigError, NesyError
from physics.io import atomic_write_bytes, atomic_write_json
from reasoning.dsl import from_clevr, to_text
from reasoning.executor import execute

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo builds and where it writes."""

    seed: int = field(default=42, metadata={"help": "seed of the scene and its questions"})
    questions: int = field(default=6, metadata={"help": "questions to ask about the scene"})
    out: str = field(default="demo_out", metadata={"help": "folder for the image, scene, questions and summary"})
    trace: bool = field(default=True, metadata={"help": "print each program's execution trace"})
    pixels: bool = field(default=True, metadata={"help": "run NS-VQA from pixels when its checkpoints ship"})
    dynamics: bool = field(default=True, metadata={"help": "roll out a learned simulator when its checkpoint ships"})
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (default: torch's choice; 1 on cores busy with other jobs)"}
    )

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"DemoConfig.threads must be >= 1, got {self.threads}")


def _png(rgb: np.ndarray) -> bytes:
    import io

    import imageio.v3 as iio

    buf = io.BytesIO()
    iio.imwrite(buf, rgb, extension=".png")
    return buf.getvalue()


def _section(title: str, say: Callable[[str], None]) -> None:
    say("")
    say(f"== {title} " + "=" * max(0, 70 - len(title)))


def run_demo(config: DemoConfig = DemoConfig(), say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo; returns (and writes) the summary dict."""
    from benchmarks.commands.answer import format_trace
    from physics.worlds.clevr_world import render_clevr_scene
    from reasoning.questions import QuestionGenerator

    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"seed": config.seed}

    _section("1. world: a CLEVR-style scene in pybullet", say)
    t0 = time.perf_counter()
    render = render_clevr_scene(config.seed)
    scene_dict = dict(render.scene, split="demo", image_index=0, image_filename="demo.png")
    scene = SceneGraph.from_clevr(scene_dict, where="demo scene")
    atomic_write_bytes(out / "demo.png", _png(render.rgb))
    save_scenes(out / "demo_scenes.json", [scene], info={"split": "demo", "seed": config.seed})
    summary["world"] = {"objects": len(scene), "seconds": round(time.perf_counter() - t0, 3)}
    say(f"built, settled and rendered {len(scene)} objects in {summary['world']['seconds']} s "
        f"-> {out / 'demo.png'}")
    for k, o in enumerate(scene.objects):
        x, y, z = o.position
        say(f"  object {k}: {o.size} {o.color} {o.material} {o.shape} at ({x:+.2f}, {y:+.2f}, {z:.2f})")

    _section("2. questions from templates", say)
    generator = QuestionGenerator()
    questions = generator.generate_for_scene(scene, config.questions, np.random.default_rng(config.seed))
    atomic_write_json(out / "demo_questions.json", {"info": {"split": "demo"}, "questions": questions}, indent=1)
    say(f"{len(questions)} questions -> {out / 'demo_questions.json'}")

    _section("3. symbolic execution with traces", say)
    agree = 0
    for k, q in enumerate(questions):
        program = from_clevr(q["program"], where=f"question {k}")
        result = execute(program, scene, trace=True)
        agree += result.answer == q["answer"]
        say(f"Q{k}: {q['question']}")
        say(f"    program: {to_text(program)}")
        say(f"    answer:  {result.answer}   (generator: {q['answer']})")
        if config.trace:
            say("    " + format_trace(result).replace("\n", "\n    "))
    summary["symbolic"] = {"questions": len(questions), "agree_with_generator": agree}
    say(f"executor agrees with the generator on {agree}/{len(questions)} questions")

    if config.pixels:
        _section("4. NS-VQA from pixels", say)
        summary["nsvqa"] = _nsvqa_part(render.rgb, scene, questions, say)
    if config.dynamics:
        _section("5. learned physics: a Newton's cradle rollout", say)
        summary["dynamics"] = _dynamics_part(out, config.seed, say)

    atomic_write_json(out / "summary.json", summary, indent=1)
    say("")
    say(f"summary -> {out / 'summary.json'}")
    return summary


def _nsvqa_part(rgb: np.ndarray, scene: SceneGraph, questions: list[dict], say) -> dict[str, Any]:
    try:
        from reasoning.nsvqa import NSVQA

        model = NSVQA.load_default()
    except (ImportError, CheckpointError) as exc:
        say(f"skipped: no shipped NS-VQA checkpoints ({exc}); train them with "
            "`nesy train derender` and `nesy train parser`")
        return {"skipped": str(exc)}
    predicted = model.perceive(rgb)
    say(f"derendered {len(predicted)} objects (ground truth: {len(scene)})")
    for k, o in enumerate(predicted.objects):
        x, y, z = o.position
        say(f"  object {k}: {o.size} {o.color} {o.material} {o.shape} at ({x:+.2f}, {y:+.2f}, {z:.2f})")
    correct = 0
    for k, q in enumerate(questions):
        try:
            answer = model.answer(predicted, q["question"])
        except NesyError as exc:
            say(f"Q{k}: {q['question']}\n    could not answer: {exc}")
            continue
        correct += answer.answer == q["answer"]
        say(f"Q{k}: {q['question']}\n    parsed:  {answer.program_text}\n"
            f"    answer:  {answer.answer}   (truth: {q['answer']})")
    say(f"NS-VQA from pixels: {correct}/{len(questions)} correct")
    return {"objects": len(predicted), "correct": correct, "questions": len(questions)}


def _dynamics_part(out: Path, seed: int, say) -> dict[str, Any]:
    try:
        from benchmarks.dynamics_demo import cradle_rollout_demo
    except ImportError as exc:
        say(f"skipped: {exc}")
        return {"skipped": str(exc)}
    try:
        return cradle_rollout_demo(out, seed, say)
    except CheckpointError as exc:
        say(f"skipped: no shipped dynamics checkpoint ({exc}); train one with `nesy train dynamics`")
        return {"skipped": str(exc)}
