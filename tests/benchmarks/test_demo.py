"""``nesy demo`` runs every part end to end with the shipped checkpoints and writes one HTML page."""

from __future__ import annotations

import json

import pytest

from benchmarks.cli import main
from benchmarks.demo import (
    DEMO_SECTIONS,
    DemoConfig,
    SectionUnavailable,
    _headline,
    register_demo_section,
    run_demo,
)


def test_demo_builds_asks_answers_rolls_out_and_controls(reduced_demo):
    out, summary = reduced_demo
    assert summary["world"]["objects"] >= 3
    assert summary["questions"]["agree_with_generator"] == 3
    assert summary["questions"]["questions"] == 3
    assert "skipped" not in summary["nsvqa"] and summary["nsvqa"]["questions"] == 3
    assert "skipped" not in summary["dynamics"]
    assert set(summary["dynamics"]["models"]) == {"in", "propnet", "dpinet"}
    assert summary["video"]["frames"] == 8 and summary["video"]["objects"] >= 1
    assert summary["control"]["steps"] <= 2
    assert "skipped" not in summary["video-qa"] and 1 <= summary["video-qa"]["questions"] <= summary["video-qa"]["answers"]
    sound = summary["sound"]
    assert "skipped" not in sound and sound["objects"] >= 3 and sound["questions"] >= 3
    assert sound["localisers"][0] == "gt" and 0 <= sound["agree"] <= sound["questions"]
    for name in ("demo.png", "demo_scenes.json", "demo_questions.json", "cradle_rollout.gif",
                 "control_episode.gif", "index.html"):
        assert (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text()
    for title in ("NS-VQA from pixels", "Newton&#x27;s cradle rollout", "CLEVRER-style collision video",
                  "a box-pushing episode", "execution trace of Q0", "NS-DR from pixels",
                  "who makes the sound", "data:audio/wav;base64,", "Which object is making the sound?"):
        assert title in page, title
    assert page.count("data:image/gif;base64,") == 4 and "data:image/png;base64," in page
    assert "Left out" not in page


def test_the_video_qa_headline_counts_options_apart_from_questions():
    line = _headline("video-qa", {"questions": 4, "right": 5, "answers": 6, "seconds": 1.0})
    assert line == "NS-DR 5/6 answers right (4 questions, each option counted)"


def test_a_registered_section_joins_the_page_and_a_missing_one_is_left_out(tmp_path, capsys):
    def extra(ctx):
        ctx.say("extra section at work")
        ctx.table(["objects seen"], [[len(ctx.state["scene"])]], "from the world section")
        return {"seen": len(ctx.state["scene"])}

    def missing(ctx):
        raise SectionUnavailable("the toy package is not installed")

    register_demo_section("extra", extra, title="an extra section from a test", order=15, needs=("world",))
    register_demo_section("missing", missing, title="a section whose parts are missing", order=16)
    register_demo_section("never", extra, title="never available", order=17, available=lambda config: "no parts")
    try:
        summary = run_demo(DemoConfig(out=str(tmp_path / "d"), questions=1, skip="nsvqa,video,sound,dynamics,control",
                                      trace=False))
    finally:
        for name in ("extra", "missing", "never"):
            DEMO_SECTIONS.unregister(name)
    printed = capsys.readouterr().out
    assert summary["extra"] == {"seen": summary["world"]["objects"]}
    assert summary["missing"] == {"skipped": "the toy package is not installed"}
    assert summary["never"] == {"skipped": "no parts"} and summary["video"] == {"skipped": "turned off"}
    page = (tmp_path / "d" / "index.html").read_text()
    assert "an extra section from a test" in page and "from the world section" in page
    assert "a section whose parts are missing" not in page  # left out of the page, listed at its end
    assert "<code>missing</code>: the toy package is not installed" in page
    assert "[2/" in printed and "extra section at work" in printed and "open the page:" in printed
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["page"].endswith("index.html")


def test_demo_rejects_a_bad_thread_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # refused as argparse parses it (a count >= 1)
        main(["demo", "--out", str(tmp_path / "d"), "--threads", "0"])
    assert exit_info.value.code == 2 and "argument --threads: must be an integer >= 1" in capsys.readouterr().err


def test_demo_refuses_a_misspelt_skip_before_any_section_runs(tmp_path, capsys):
    # it ran the whole demo (minutes) and left nothing out, without a word
    assert main(["demo", "--out", str(tmp_path / "d"), "--skip", "contrl,sound"]) == 2
    err = capsys.readouterr().err
    assert "nesy demo: error: --skip: unknown demo section 'contrl' (did you mean 'control'?)" in err
    assert not (tmp_path / "d").exists()


def test_demo_sections_run_in_order():
    names = [e.name for e in sorted(DEMO_SECTIONS.entries(), key=lambda e: e.obj.order)]
    assert names[:8] == ["world", "questions", "nsvqa", "video", "video-qa", "sound", "dynamics", "control"]
    with pytest.raises(Exception, match="control_steps"):
        DemoConfig(control_steps=0)


@pytest.mark.parametrize("threads", [None, 2])
def test_demo_runs_on_its_threads_one_by_default_and_restores_the_callers(tmp_path, monkeypatch, threads):
    import torch

    import physics.control

    seen = []
    real = physics.control.run_episode

    def spy(*args, **kwargs):  # the control section's episode: how many threads does it plan on?
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(physics.control, "run_episode", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        config = DemoConfig(out=str(tmp_path / "d"), questions=1, skip="nsvqa,video,sound,dynamics", trace=False,
                            control_steps=1, **({} if threads is None else {"threads": threads}))
        summary = run_demo(config, say=lambda _: None)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert "skipped" not in summary["control"] and summary["control"]["steps"] == 1
    assert seen == [threads or 1]
    assert after == 3  # the caller's thread count comes back
