"""The demo's sound section: a sounding clip, its audio, and questions about who makes the sound.

Registered as section ``sound`` of ``nesy demo`` (after the video sections).  It
makes one audio-visual clip (:func:`physics.worlds.audiovisual.make_clip`),
writes it in the ``nesy data audiovisual`` folder format, puts its frames as a
GIF and its mixture as a playable WAV on the page, and answers the sound
question forms (:mod:`reasoning.parser.sound_questions`) twice: with the learned
localiser when one ships (AVOL-Net, ``avol``) and with the clip's truth
(``gt``), so the page shows where the learned one agrees.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.demo import DemoContext, register_demo_section
from physics.errors import NesyError
from physics.io import atomic_write_bytes

__all__ = ["QUESTIONS", "run_sound"]

QUESTIONS = (
    "Which object is making the sound?",
    "How many objects are making a sound?",
    "What does the first collision sound like?",
)


def _gif(frames: np.ndarray, path: Path, fps: float) -> None:
    """Frames (uint8 [T, H, W, 3]) as an animated GIF, three times larger, written atomically."""
    from PIL import Image

    images = [Image.fromarray(f).resize((f.shape[1] * 3, f.shape[0] * 3), Image.NEAREST) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    atomic_write_bytes(path, buf.getvalue())


def _shape_question(clip: Any) -> str | None:
    """"What sounds after the <shape> collides?" for the first colliding object with a unique shape."""
    shapes = [o.shape for o in clip.objects]
    for c in clip.collisions:
        for k in c.objects:
            if shapes.count(shapes[k]) == 1:
                return f"What sounds after the {shapes[k]} collides?"
    return None


def run_sound(ctx: DemoContext) -> dict[str, Any]:
    """The ``sound`` section (module docstring)."""
    from benchmarks.answer_video import NoFutures
    from perception.audio.localise import SOUNDING_LOCALISERS, localiser_for
    from physics.worlds.audiovisual import AudioVisualConfig, clip_files, make_clip, write_clip
    from reasoning.dsl.clevrer_format import from_clevrer_tokens
    from reasoning.executor.video import execute_video
    from reasoning.executor.video_scene import VideoScene
    from reasoning.nsdr import VIDEO_PARSERS

    t0 = time.perf_counter()
    seed = ctx.config.seed
    clip = make_clip(seed, AudioVisualConfig())
    folder = write_clip(clip, ctx.out / "sound" / "clip_00000")
    gif = folder / "clip.gif"
    _gif(clip.frames, gif, clip.fps)
    wav = clip_files(folder, len(clip.sources))["mixture"]
    ctx.say(f"made a {clip.frames.shape[0]}-frame clip with {len(clip.objects)} objects, {len(clip.sources)} sources "
            f"and {len(clip.collisions)} collisions (seed {seed}) -> {folder}")
    ctx.image(gif, f"audio-visual clip, seed {seed}: {clip.frames.shape[0]} frames at {clip.fps} frames/s")
    audio = base64.b64encode(wav.read_bytes()).decode("ascii")
    ctx.add(f'<p><audio controls src="data:audio/wav;base64,{audio}"></audio> '
            f'<span class="meta">the mixture ({clip.sample_rate} Hz), {html.escape(wav.name)}</span></p>')

    names = ["gt"] + (["avol"] if "avol" in SOUNDING_LOCALISERS.names() else [])
    estimates = {}
    for name in names:
        try:
            estimates[name] = localiser_for(name)(clip)
        except NesyError as exc:  # a learned localiser without its checkpoint: say why, keep gt
            ctx.say(f"localiser {name} unavailable: {exc}")
    rows = []
    for o in clip.objects:
        frames = {n: int(e.sounding[:, o.index].sum()) for n, e in estimates.items()}
        rows.append([o.index, f"{o.size} {o.color} {o.material} {o.shape}", o.category or "silent",
                     *[frames[n] for n in estimates]])
    ctx.table(["object", "look", "instrument", *[f"sounding frames ({n})" for n in estimates]], rows,
              "who sounds when: the clip's truth beside the learned localiser")

    parse = VIDEO_PARSERS.get("templates")(None)
    questions = [*QUESTIONS, *filter(None, [_shape_question(clip)])]
    answers: dict[str, list[str]] = {n: [] for n in estimates}
    for name, estimate in estimates.items():
        scene = VideoScene(clip.annotation(), NoFutures(folder), sound=estimate)
        for q in questions:
            program = from_clevrer_tokens(parse({"question": q}).program, where="sound question")
            answers[name].append(str(execute_video(program, scene).answer))
    table = [[q, *[answers[n][k] for n in estimates]] for k, q in enumerate(questions)]
    agree = sum(len({answers[n][k] for n in estimates}) == 1 for k in range(len(questions)))
    for row in table:
        ctx.say("  " + " | ".join(row))
    ctx.table(["question", *[f"answer ({n})" for n in estimates]], table,
              f"sound questions answered with each localiser; they agree on {agree}/{len(questions)}")
    seconds = round(time.perf_counter() - t0, 2)
    return {"objects": len(clip.objects), "sources": len(clip.sources), "questions": len(questions),
            "localisers": list(estimates), "agree": agree, "gif": str(gif), "seconds": seconds}


register_demo_section("sound", run_sound, title="sound: who makes the sound in an audio-visual clip", order=47)
