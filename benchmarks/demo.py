"""``nesy demo``: the framework end to end on data it generates on the spot, as one HTML page.

The demo is a list of sections, each registered in :data:`DEMO_SECTIONS` with
:func:`register_demo_section`; they run in order and each adds its part of the
page (``OUT/index.html``: renders, GIFs and tables, all inlined) and of
``OUT/summary.json``.  The built-in sections:

1. ``world``: a CLEVR-style scene built, settled and rendered in pybullet.
2. ``questions``: template questions about it, each program run by the symbolic
   executor with its step-by-step trace (its answer must equal the generator's).
3. ``nsvqa``: NS-VQA from pixels with the shipped checkpoints: derendered
   objects, parsed programs, answers and a trace.
4. ``video``: a short CLEVRER-style collision video (GIF) and its events.
5. ``dynamics``: the shipped learned simulators rolled out beside the true
   Newton's cradle (GIF with the strings drawn, real-time frame duration).
6. ``control``: a model-predictive control episode (the task's 40 steps at most) through the shipped
   PropNet (GIF of the true world beside the imagined plans).

A section whose parts do not exist here (no checkpoint ships, a package is
missing) is left out of the page cleanly: its ``available`` check returns the
reason, or its run raises :class:`SectionUnavailable`.  Adding a section (the
CLEVRER video questions, say) is one function and one call::

    register_demo_section("video-qa", run_video_qa, title="CLEVRER video questions", order=45)
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.config_flags import comma_items
from physics.config_types import check_field_types
from physics.errors import CheckpointError, ConfigError, NesyError
from physics.io import atomic_write_bytes, atomic_write_json, atomic_write_text, ensure_dir
from physics.registry import Registry

__all__ = [
    "DemoConfig",
    "DemoContext",
    "DemoSection",
    "DEMO_SECTIONS",
    "SectionUnavailable",
    "register_demo_section",
    "run_demo",
]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo builds and where it writes."""

    seed: int = field(default=42, metadata={"help": "seed of the scene, its questions and the episodes"})
    questions: int = field(default=6, metadata={"help": "questions to ask about the scene"})
    out: str = field(default="demo_out", metadata={"help": "folder for index.html, the renders, GIFs and summary"})
    trace: bool = field(default=True, metadata={"help": "print each program's execution trace"})
    pixels: bool = field(default=True, metadata={"help": "run NS-VQA from pixels when its checkpoints ship"})
    dynamics: bool = field(default=True, metadata={"help": "roll out a learned simulator when its checkpoint ships"})
    video: bool = field(default=True, metadata={"help": "make a short CLEVRER-style video and list its events"})
    control: bool = field(default=True, metadata={"help": "run a control episode when a model ships"})
    control_steps: int | None = field(
        default=None, metadata={"min": 1, "help": "control steps of the control episode (default: the task's own episode length, 40)"}
    )
    video_frames: int = field(default=64, metadata={"min": 8, "help": "observed frames of the video"})
    video_seed: int = field(
        default=7, metadata={"help": "seed of the video (7: one whose events give all four kinds of question)"}
    )
    skip: str | None = field(default=None, metadata={
        "help": "comma-separated sections to leave out, by their names in summary.json (world, questions, nsvqa, "
                "video, video-qa, dynamics, control, sound, and any registered with register_demo_section)"})
    threads: int = field(
        default=1, metadata={"min": 1, "help": "torch CPU threads (default 1: the demo's models are small, and on cores busy "
                             "with other jobs more threads spin and make its sections 12-37x slower)"}
    )

    def __post_init__(self) -> None:
        check_field_types(self)  # text for a number, from Python: one line naming the field
        if self.threads < 1:
            raise ConfigError(f"DemoConfig.threads must be >= 1, got {self.threads}")
        if self.control_steps is not None and self.control_steps < 1:
            raise ConfigError(f"DemoConfig.control_steps must be >= 1, got {self.control_steps}")
        if self.video_frames < 8:
            raise ConfigError(f"DemoConfig.video_frames must be >= 8, got {self.video_frames}")

    def left_out(self) -> set[str]:
        """Sections the flags turn off."""
        off = {name for name, on in (("nsvqa", self.pixels), ("dynamics", self.dynamics),
                                     ("video", self.video), ("control", self.control)) if not on}
        return off | set(comma_items(self.skip or "", "--skip"))  # a section named twice is refused, as --models's


class SectionUnavailable(NesyError):
    """Raised by a section whose parts do not exist here; the demo leaves it out and says why."""


@dataclass
class DemoContext:
    """What a section gets: the config, the output folder, what earlier sections left, the page so far.

    Attributes:
        config: The demo's settings.
        out: Output folder (exists).
        say: Prints a line of progress or results.
        state: Values earlier sections left for later ones (``scene``, ``rgb``, ``questions``).
        html: This section's HTML blocks (add with :meth:`add`, :meth:`table`, :meth:`image`).
    """

    config: DemoConfig
    out: Path
    say: Callable[[str], None]
    state: dict[str, Any] = field(default_factory=dict)
    html: list[str] = field(default_factory=list)

    def add(self, block: str) -> None:
        """Add raw HTML to this section."""
        self.html.append(block)

    def text(self, text: str) -> None:
        """Add a paragraph of plain text."""
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[Any], rows: list[list[Any]], caption: str | None = None) -> None:
        """Add a table (left out when it has no rows)."""
        from benchmarks.report import html_table

        if not rows:
            return
        if caption:
            self.html.append(f"<p class=\"meta\">{html.escape(caption)}</p>")
        self.html.append(html_table(header, rows))

    def image(self, path: Path, caption: str) -> None:
        """Add an image file (PNG or GIF), inlined."""
        from benchmarks.report import html_image

        self.html.append(html_image(path, caption, caption))

    def pre(self, text: str, summary: str | None = None) -> None:
        """Add preformatted text (a trace), folded under ``summary`` when given."""
        block = f"<pre>{html.escape(text)}</pre>"
        self.html.append(f"<details><summary>{html.escape(summary)}</summary>{block}</details>" if summary else block)


@dataclass(frozen=True)
class DemoSection:
    """One registered demo section."""

    name: str
    run: Callable[[DemoContext], dict[str, Any]]
    title: str
    order: float = 100.0
    available: Callable[[DemoConfig], str | None] = field(default=lambda config: None)
    needs: tuple[str, ...] = ()


# sections of other modules register on first read (DemoSection objects all name this module as theirs)
DEMO_SECTIONS: Registry[DemoSection] = Registry("demo section", modules=("benchmarks.demo", "benchmarks.demo_sound"))


def register_demo_section(
    name: str,
    run: Callable[[DemoContext], dict[str, Any]],
    *,
    title: str,
    order: float = 100.0,
    available: Callable[[DemoConfig], str | None] | None = None,
    needs: tuple[str, ...] = (),
    replace: bool = False,
) -> DemoSection:
    """Register a section of ``nesy demo``.

    Args:
        name: Its key in ``summary.json`` and for ``--skip``.
        run: ``DemoContext -> summary dict``; prints progress through ``ctx.say``,
            adds its HTML through ``ctx``, may raise :class:`SectionUnavailable`.
        title: Its heading on the terminal and the page.
        order: Sections run in increasing order (built-ins: 10, 20, ..., 60).
        available: ``config -> None`` when it can run, else the reason it is left out.
        needs: Sections that must have run first (it is left out otherwise).
        replace: Overwrite a section of the same name.
    """
    section = DemoSection(name, run, title, order, available or (lambda config: None), tuple(needs))
    DEMO_SECTIONS.register(name, section, help=title, replace=replace)
    return section


def _png(rgb: np.ndarray) -> bytes:
    import imageio.v3 as iio

    buf = io.BytesIO()
    iio.imwrite(buf, rgb, extension=".png")
    return buf.getvalue()


def _object_rows(scene) -> list[list[Any]]:
    rows = []
    for k, o in enumerate(scene.objects):
        x, y, z = o.position
        rows.append([k, o.size, o.color, o.material, o.shape, f"({x:+.2f}, {y:+.2f}, {z:.2f})"])
    return rows


OBJECT_HEADER = ["#", "size", "color", "material", "shape", "position (x, y, z)"]


# ---------------------------------------------------------------------------- built-in sections
def _world(ctx: DemoContext) -> dict[str, Any]:
    from perception.scene_graph import SceneGraph, save_scenes
    from physics.worlds.clevr_world import render_clevr_scene

    t0 = time.perf_counter()
    render = render_clevr_scene(ctx.config.seed)
    scene_dict = dict(render.scene, split="demo", image_index=0, image_filename="demo.png")
    scene = SceneGraph.from_clevr(scene_dict, where="demo scene")
    atomic_write_bytes(ctx.out / "demo.png", _png(render.rgb))
    save_scenes(ctx.out / "demo_scenes.json", [scene], info={"split": "demo", "seed": ctx.config.seed})
    seconds = round(time.perf_counter() - t0, 3)
    ctx.say(f"built, settled and rendered {len(scene)} objects in {seconds} s -> {ctx.out / 'demo.png'}")
    for row in _object_rows(scene):
        ctx.say(f"  object {row[0]}: {row[1]} {row[2]} {row[3]} {row[4]} at {row[5]}")
    ctx.state.update(scene=scene, rgb=render.rgb)
    ctx.image(ctx.out / "demo.png", f"pybullet render (TinyRenderer), seed {ctx.config.seed}")
    ctx.table(OBJECT_HEADER, _object_rows(scene), "the scene graph (ground truth)")
    return {"objects": len(scene), "seconds": seconds}


def _questions(ctx: DemoContext) -> dict[str, Any]:
    from benchmarks.commands.answer import format_trace
    from physics.io import atomic_write_json as write_json
    from reasoning.dsl import from_clevr, to_text
    from reasoning.executor import execute
    from reasoning.questions import QuestionGenerator

    scene = ctx.state["scene"]
    questions = QuestionGenerator().generate_for_scene(scene, ctx.config.questions,
                                                       np.random.default_rng(ctx.config.seed))
    write_json(ctx.out / "demo_questions.json", {"info": {"split": "demo"}, "questions": questions}, indent=1)
    ctx.say(f"{len(questions)} questions -> {ctx.out / 'demo_questions.json'}")
    agree = 0
    rows = []
    for k, q in enumerate(questions):
        program = from_clevr(q["program"], where=f"question {k}")
        result = execute(program, scene, trace=True)
        agree += result.answer == q["answer"]
        ctx.say(f"Q{k}: {q['question']}")
        ctx.say(f"    program: {to_text(program)}")
        ctx.say(f"    answer:  {result.answer}   (generator: {q['answer']})")
        trace = format_trace(result)
        if ctx.config.trace:
            ctx.say("    " + trace.replace("\n", "\n    "))
        rows.append([f"Q{k}", q["question"], to_text(program), result.answer, q["answer"]])
        ctx.state.setdefault("traces", []).append(trace)
    ctx.state["questions"] = questions
    ctx.say(f"executor agrees with the generator on {agree}/{len(questions)} questions")
    ctx.table(["", "question", "program", "executor", "generator"], rows,
              f"template questions; the symbolic executor agrees with the generator on {agree}/{len(questions)}")
    for k, trace in enumerate(ctx.state["traces"]):
        ctx.pre(trace, f"execution trace of Q{k}")
    return {"questions": len(questions), "agree_with_generator": agree}


def _nsvqa(ctx: DemoContext) -> dict[str, Any]:
    from tqdm import tqdm

    from benchmarks.commands.answer import format_trace

    try:
        from reasoning.nsvqa import NSVQA

        model = NSVQA.load_default()
    except (ImportError, CheckpointError) as exc:
        raise SectionUnavailable(f"no shipped NS-VQA checkpoints ({exc}); train them with "
                                 "`nesy train derender` and `nesy train parser`") from None
    scene, questions = ctx.state["scene"], ctx.state["questions"]
    predicted = model.perceive(ctx.state["rgb"])
    ctx.say(f"derendered {len(predicted)} objects (ground truth: {len(scene)})")
    for row in _object_rows(predicted):
        ctx.say(f"  object {row[0]}: {row[1]} {row[2]} {row[3]} {row[4]} at {row[5]}")
    ctx.table(OBJECT_HEADER, _object_rows(predicted),
              f"the scene graph the derenderer read from the pixels ({len(predicted)} objects; truth: {len(scene)})")
    correct = 0
    rows = []
    first_trace = None
    for k, q in enumerate(tqdm(questions, desc="NS-VQA questions", unit="question", leave=False)):
        try:
            answer = model.answer(predicted, q["question"])
        except NesyError as exc:
            ctx.say(f"Q{k}: {q['question']}\n    could not answer: {exc}")
            rows.append([f"Q{k}", q["question"], f"error: {exc}", "-", q["answer"]])
            continue
        correct += answer.answer == q["answer"]
        ctx.say(f"Q{k}: {q['question']}\n    parsed:  {answer.program_text}\n"
                f"    answer:  {answer.answer}   (truth: {q['answer']})")
        rows.append([f"Q{k}", q["question"], answer.program_text, answer.answer, q["answer"]])
        if first_trace is None and answer.result is not None:
            first_trace = (k, format_trace(answer.result))
    ctx.say(f"NS-VQA from pixels: {correct}/{len(questions)} correct")
    ctx.table(["", "question", "parsed program", "NS-VQA answer", "truth"], rows,
              f"NS-VQA from pixels: {correct}/{len(questions)} correct")
    if first_trace is not None:
        ctx.pre(first_trace[1], f"execution trace of Q{first_trace[0]} on the derendered scene")
    return {"objects": len(predicted), "correct": correct, "questions": len(questions)}


def _video(ctx: DemoContext) -> dict[str, Any]:
    from benchmarks.datasets.clevrer_builder import ClevrerDataConfig, build_clevrer, video_paths
    from physics.worlds.clevrer_annotation import read_annotation
    from physics.worlds.clevrer_truth import read_truth

    folder = ctx.out / "video"
    frames = ctx.config.video_frames
    cfg = ClevrerDataConfig(n=1, out=str(folder), seed=ctx.config.video_seed, split="val", frames=frames,
                            future_frames=16, width=480, height=320)
    t0 = time.perf_counter()
    build_clevrer(cfg, progress=True)
    paths = video_paths(folder, "val", 0)
    truth = read_truth(paths["truth"])
    objects = len(read_annotation(paths["annotation"]).object_property)
    seconds = round(time.perf_counter() - t0, 2)
    observed = [e for e in truth.events if e.frame < frames]
    ctx.say(f"simulated and rendered {frames} frames ({objects} objects) in {seconds} s -> {paths['gif']}")
    for e in observed:
        ctx.say(f"  frame {e.frame:3d}: {e.kind} {', '.join(map(str, e.objects))}")
    ctx.image(paths["gif"], f"CLEVRER-style video, seed {ctx.config.video_seed}: {frames} frames at {truth.fps} frames/s")
    ctx.table(["frame", "event", "objects"], [[e.frame, e.kind, ", ".join(map(str, e.objects))] for e in observed],
              "events in the observed frames (derived from the annotation)")
    return {"frames": frames, "objects": objects, "events": len(observed), "future_collisions": len(truth.future_collisions),
            "counterfactuals": len(truth.counterfactuals), "gif": str(paths["gif"]), "seconds": seconds}


def _video_qa(ctx: DemoContext) -> dict[str, Any]:
    """NS-DR on the demo's video: perceived from its frames, learned dynamics, parsed questions."""
    from benchmarks.commands.answer import format_trace
    from physics.video_dynamics import GroundTruthDynamics
    from physics.worlds.clevrer_annotation import read_annotation
    from physics.worlds.clevrer_truth import read_truth
    from reasoning.dsl.clevrer_format import from_clevrer_tokens, join_choice
    from reasoning.executor.video import execute_video
    from reasoning.executor.video_scene import VideoScene
    from reasoning.nsdr import (
        SCENE_SETTINGS,
        VIDEO_PARSERS,
        VideoFiles,
        dynamics_for,
        perception_for,
        rollout_settings_for,
    )
    from reasoning.questions.clevrer import ClevrerQuestionConfig, generate_video_questions

    files = VideoFiles.in_folder(ctx.out / "video", "val", 0)
    true = read_annotation(files.annotation)
    truth = read_truth(files.truth)
    entry = generate_video_questions(true, VideoScene(true, GroundTruthDynamics(truth)),
                                     ClevrerQuestionConfig(descriptive=3, explanatory=1, predictive=1,
                                                           counterfactual=1, choices=2), ctx.config.video_seed)
    t0 = time.perf_counter()
    perceived = perception_for("model")(files)
    ctx.say(f"perceived {len(perceived.object_property)} objects and {len(perceived.collision)} collisions "
            f"from {len(perceived.motion_trajectory)} frames (true: {len(true.object_property)}, {len(true.collision)})")
    dynamics = dynamics_for("propnet", None, rollout_settings_for("model", "propnet"))(files, perceived)
    scene = VideoScene(perceived, dynamics, **SCENE_SETTINGS)
    parse = VIDEO_PARSERS.get("model")(None)
    rows, right, total, first_trace = [], 0, 0, None
    for q in entry["questions"]:
        parsed = parse(q)
        options = [(None, parsed.program, q.get("answer"))] if not parsed.choices else [
            (c["choice"], tokens, c["answer"]) for c, tokens in zip(q["choices"], parsed.choices, strict=True)]
        for option, tokens, expected in options:
            program = (from_clevrer_tokens(tokens) if option is None
                       else join_choice(tokens, parsed.program, where="option"))
            result = execute_video(program, scene)
            answer = result.answer if option is None else {"yes": "correct", "no": "wrong"}.get(result.answer, "?")
            right += answer == expected
            total += 1
            text = q["question"] if option is None else f"{q['question']} {option}"
            rows.append([q["question_type"], text, " ".join(tokens if option is None else (*tokens, *parsed.program)),
                         answer, expected])
            if first_trace is None and q["question_type"] != "descriptive":
                first_trace = (text, format_trace(result))
    seconds = round(time.perf_counter() - t0, 2)
    ctx.say(f"NS-DR answered {right}/{total} questions and options right ({seconds} s)")
    ctx.table(["type", "question (and option)", "parsed program (CLEVRER tokens)", "NS-DR", "truth"], rows,
              f"NS-DR from pixels: video perceiver, learned PropNet, learned parser; {right}/{total} right")
    if first_trace is not None:
        ctx.pre(first_trace[1], f"execution trace of: {first_trace[0]}")
    return {"questions": len(entry["questions"]), "right": right, "answers": total, "seconds": seconds}


def _dynamics(ctx: DemoContext) -> dict[str, Any]:
    try:
        from benchmarks.dynamics_demo import cradle_rollout_demo
    except ImportError as exc:
        raise SectionUnavailable(str(exc)) from None
    try:
        result = cradle_rollout_demo(ctx.out, ctx.config.seed, ctx.say)
    except CheckpointError as exc:
        raise SectionUnavailable(f"no shipped dynamics checkpoint ({exc}); train one with `nesy train dynamics`") from None
    ctx.image(Path(result["gif"]), "Newton's cradle: the true rollout (pybullet, left) beside each learned simulator, "
              "strings drawn, played in real time")
    ctx.table(["model", "full-rollout position MSE (m^2)", "steps/s"],
              [[name, f"{m['mse_full']:.2e}", m["steps_per_s"]] for name, m in result["models"].items()],
              f"{result['steps']} steps of a fresh episode rolled out from its first frames")
    return result


def _control(ctx: DemoContext) -> dict[str, Any]:
    import dataclasses

    from benchmarks.commands.control import episode_gif
    from benchmarks.dynamics_eval import find_checkpoint
    from physics.control import TASKS, make_planner, make_planning_model, run_episode

    task = TASKS.get("boxpush")
    try:
        find_checkpoint(task.env_cls.world_name, "propnet")
    except CheckpointError as exc:
        raise SectionUnavailable(f"no shipped PropNet for the box world ({exc})") from None
    env_config = task.env_cls.config_cls()
    if ctx.config.control_steps is not None:  # shorter (or longer) than the task's own episodes
        env_config = dataclasses.replace(env_config, max_steps=ctx.config.control_steps)
    env = task.env_cls(env_config)
    try:
        model = make_planning_model("propnet", env.world_name)
        ctx.say(f"pushing a box to a goal with CEM through PropNet, at most {env_config.max_steps} control steps")
        t0 = time.perf_counter()
        r = run_episode(env, model, make_planner("cem"), ctx.config.seed, record=True)
        seconds = round(time.perf_counter() - t0, 2)
    finally:
        env.close()
    gif = ctx.out / "control_episode.gif"
    episode_gif(r, gif)
    ctx.say(f"{'reached' if r.success else 'did not reach'} the goal in {r.steps} steps: distance "
            f"{r.start_distance:.3f} m -> {r.final_distance:.3f} m ({seconds} s) -> {gif}")
    ctx.image(gif, "box pushing: the true world (left) and the positions PropNet imagined for each executed plan "
              "(right)")
    ctx.table(["task", "model + planner", "steps", "start distance (m)", "final distance (m)", "success",
               "plan s / step"],
              [[task.gym_id, "propnet + cem", r.steps, f"{r.start_distance:.3f}", f"{r.final_distance:.3f}",
                "yes" if r.success else "no", f"{float(np.mean(r.plan_seconds)):.2f}"]],
              f"one episode (seed {ctx.config.seed}); docs/results/control.md has the 50-episode figures")
    return {"success": r.success, "steps": r.steps, "start_distance": r.start_distance,
            "final_distance": r.final_distance, "seconds": seconds, "gif": str(gif)}


register_demo_section("world", _world, title="a CLEVR-style scene in pybullet", order=10)
register_demo_section("questions", _questions, title="questions from templates, symbolic execution with traces",
                      order=20, needs=("world",))
register_demo_section("nsvqa", _nsvqa, title="NS-VQA from pixels", order=30, needs=("world", "questions"))
register_demo_section("video", _video, title="a CLEVRER-style collision video and its events", order=40)
register_demo_section("video-qa", _video_qa, title="NS-DR: video questions from pixels, learned dynamics and parser",
                      order=45, needs=("video",))
register_demo_section("dynamics", _dynamics, title="learned physics: a Newton's cradle rollout", order=50)
register_demo_section("control", _control, title="model-based control: a box-pushing episode", order=60)


# ---------------------------------------------------------------------------- the run
def _write_page(out: Path, config: DemoConfig, done: list[tuple[DemoSection, DemoContext, float]],
                left_out: dict[str, str]) -> Path:
    from benchmarks.report import html_page

    parts = ["<h1>nesy-physics demo</h1>",
             f"<p class=\"meta\">made by <code>nesy demo --seed {config.seed} --out {html.escape(str(config.out))}</code> "
             f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; every figure below was computed on data "
             "generated for this page.</p>"]
    for k, (section, ctx, seconds) in enumerate(done, 1):
        parts.append(f"<h2>{k}. {html.escape(section.title)}</h2>")
        parts.append(f"<p class=\"meta\">section <code>{section.name}</code>, {seconds:.1f} s</p>")
        parts += ctx.html
    if left_out:
        parts.append("<h2>Left out</h2><ul>")
        parts += [f"<li><code>{html.escape(n)}</code>: {html.escape(r)}</li>" for n, r in left_out.items()]
        parts.append("</ul>")
    page = out / "index.html"
    atomic_write_text(page, html_page("nesy-physics demo", "\n".join(parts)))
    return page


def run_demo(config: DemoConfig = DemoConfig(), say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every available section, write ``index.html`` and ``summary.json``; returns the summary.

    Torch runs on ``config.threads`` threads for the demo, and the caller's thread count comes back after it.
    """
    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run_sections(config, say)
    finally:
        torch.set_num_threads(threads_before)


def _run_sections(config: DemoConfig, say: Callable[[str], None]) -> dict[str, Any]:
    for name in config.left_out():  # a misspelt --skip ran the whole demo without a word
        try:
            DEMO_SECTIONS.get(name)
        except ConfigError as exc:
            raise ConfigError(f"--skip: {exc}") from None
    out = Path(config.out)
    ensure_dir(out)
    summary: dict[str, Any] = {"seed": config.seed}
    sections = sorted(DEMO_SECTIONS.entries(), key=lambda e: e.obj.order)
    off = config.left_out()
    done: list[tuple[DemoSection, DemoContext, float]] = []
    left_out: dict[str, str] = {}
    state: dict[str, Any] = {}
    ran: set[str] = set()
    t_start = time.perf_counter()
    for k, entry in enumerate(sections, 1):
        section = entry.obj
        reason = ("turned off" if section.name in off else
                  next((f"needs section {n!r}, which did not run" for n in section.needs if n not in ran), None)
                  or section.available(config))
        say("")
        say(f"== [{k}/{len(sections)}] {section.title} " + "=" * max(0, 62 - len(section.title)))
        if reason is not None:
            say(f"left out: {reason}")
            left_out[section.name] = reason
            summary[section.name] = {"skipped": reason}
            continue
        ctx = DemoContext(config, out, say, state)
        t0 = time.perf_counter()
        try:
            summary[section.name] = section.run(ctx)
        except SectionUnavailable as exc:
            say(f"left out: {exc}")
            left_out[section.name] = str(exc)
            summary[section.name] = {"skipped": str(exc)}
            continue
        seconds = time.perf_counter() - t0
        ran.add(section.name)
        done.append((section, ctx, seconds))
        say(f"({section.name}: {seconds:.1f} s)")
    page = _write_page(out, config, done, left_out)
    summary["page"] = str(page)
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    atomic_write_json(out / "summary.json", summary, indent=1)
    say("")
    say(f"== done in {summary['seconds']} s: {len(done)} section(s)"
        + (f", {len(left_out)} left out ({', '.join(left_out)})" if left_out else ""))
    for section, _, _ in done:
        say(f"  {section.name}: {_headline(section.name, summary[section.name])}")
    say(f"open the page: {page.resolve()}")
    say(f"summary -> {out / 'summary.json'}")
    return summary


def _headline(name: str, s: dict[str, Any]) -> str:
    """One line per section for the closing summary."""
    if name == "world":
        return f"{s['objects']} objects rendered"
    if name == "questions":
        return f"executor agrees with the generator on {s['agree_with_generator']}/{s['questions']}"
    if name == "nsvqa":
        return f"{s['correct']}/{s['questions']} right from pixels ({s['objects']} objects derendered)"
    if name == "video":
        return f"{s['frames']} frames, {s['events']} observed events"
    if name == "video-qa":
        return f"NS-DR {s['right']}/{s['answers']} answers right ({s['questions']} questions, each option counted)"
    if name == "dynamics":
        return ", ".join(f"{m} MSE {v['mse_full']:.1e}" for m, v in s["models"].items())
    if name == "sound":
        return f"{s['objects']} objects, {s['sources']} sources; localisers {', '.join(s['localisers'])} agree on {s['agree']}/{s['questions']} questions"
    if name == "control":
        return f"{'goal reached' if s['success'] else 'goal not reached'} in {s['steps']} steps"
    numbers = [f"{k} {v}" for k, v in s.items() if isinstance(v, (int, float, str)) and len(str(v)) < 30]
    return ", ".join(numbers[:4])
