"""The NS-VQA parser on CLEVRER questions: tokens, slots, constrained decoding, training, checkpoints, eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import cli
from physics.errors import DataError
from physics.worlds.clevrer_annotation import write_annotation
from physics.worlds.clevrer_truth import simulate_video, write_truth
from physics.worlds.clevrer_world import ClevrerConfig, ClevrerWorld
from reasoning.dsl.clevrer_format import from_clevrer_tokens
from reasoning.nsdr import VIDEO_PARSERS
from reasoning.parser import ParserConfig, load_parser, save_parser, train_parser
from reasoning.parser.catalogues import CHOICE, parser_catalogue
from reasoning.parser.train import build_parser, supervised_loss
from reasoning.parser.video import (
    DEFAULT_VIDEO_CHECKPOINT,
    VideoQuestionParser,
    evaluate_video_parser,
    from_parser_tokens,
    load_video_parser_data,
    to_parser_tokens,
    video_parser,
)

TINY = dict(embedding_dim=16, hidden_dim=32, epochs=2, batch_size=16, reinforce_questions=0, reinforce_steps=0,
            checkpoint_every=50, threads=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two simulated (not rendered) videos with many questions of every type."""
    out = tmp_path_factory.mktemp("clevrer_parser")
    world = ClevrerWorld(ClevrerConfig(width=96, height=64, frames=48, future_frames=24))
    for k in range(2):
        annotation, truth = simulate_video(world, (5, 2 + k), k, f"video_{k:05d}.gif")
        write_annotation(out / "annotation_val" / f"annotation_{k:05d}.json", annotation)
        write_truth(out / "truth_val" / f"truth_{k:05d}.json", truth)
    assert cli.main(["data", "clevrer-questions", "--data", str(out), "--split", "val", "--descriptive", "12",
                     "--quiet"]) == 0
    return out


def _entries(folder: Path) -> list[dict]:
    return json.loads((folder / "validation.json").read_text())


def test_every_stored_program_converts_to_parser_tokens_and_back(folder):
    kinds = set()
    for entry in _entries(folder):
        for q in entry["questions"]:
            kind = "multiple_choice" if "choices" in q else "question"
            prefix = to_parser_tokens(q["program"], kind)
            assert (CHOICE in prefix) == (kind == "multiple_choice")
            assert from_parser_tokens(prefix, kind) == tuple(q["program"])
            kinds.add(kind)
            for c in q.get("choices", []):
                assert from_parser_tokens(to_parser_tokens(c["program"], "choice"), "choice") == tuple(c["program"])
    assert kinds == {"question", "multiple_choice"}
    # a program of the wrong kind is refused, not silently accepted
    count = to_parser_tokens(["objects", "count"], "question")
    assert from_parser_tokens(count, "choice") is None and from_parser_tokens(count, "multiple_choice") is None


def test_slots_round_trip_and_name_a_twice_mentioned_object_once(folder):
    data = load_video_parser_data(folder, "val")
    parser = build_parser(ParserConfig(**TINY), data)
    for e in data.examples:
        _, _, (slots,) = parser.encode_questions([e.question])
        ids = parser.target_ids(e.tokens, slots)
        assert parser.restore(ids, slots) == e.tokens
    _, _, (slots,) = parser.encode_questions(["What is the color of the object that collides with the red cube?"])
    tokens = to_parser_tokens("events objects red filter_color cube filter_shape unique filter_collision unique "
                              "objects red filter_color cube filter_shape unique query_collision_partner query_color"
                              .split(), "question")
    anonymised = parser.program_vocab.decode(parser.target_ids(tokens, slots))
    assert anonymised.count("<obj2>") == 2 and not any("red" in t or "cube" in t for t in anonymised)


def test_constrained_decoding_writes_only_valid_programs_of_each_kind(folder):
    data = load_video_parser_data(folder, "val")
    torch.manual_seed(0)
    parser = build_parser(ParserConfig(**TINY), data)  # untrained: only the grammar keeps it valid
    texts = [e.question for e in data.examples]
    kinds = [e.kind for e in data.examples]
    catalogue = parser_catalogue("clevrer")
    for mode in ("greedy", "sample"):
        words, lengths, slots = parser.encode_questions(texts)
        dec = parser.decode(words, lengths, mode=mode, allowed=parser.slot_mask(slots, kinds),
                            roots=parser.kind_roots(kinds))
        for row, sl, kind in zip(dec.tokens, slots, kinds, strict=True):
            tokens = parser.restore(row.tolist(), sl)
            program = parser.to_program(tokens)
            assert program is not None, tokens
            out = catalogue.check(program)
            if kind == "choice":
                assert set(out.split("|")) <= {"Object", "Event"}
            else:
                assert catalogue.signature(program.root.function).terminal
            assert (CHOICE in tokens) <= (kind == "multiple_choice")
            if kind != "multiple_choice":  # a question or option is a CLEVRER program on its own
                from_clevrer_tokens(list(from_parser_tokens(tokens, kind)))


def test_a_tiny_training_run_lowers_the_loss_and_the_checkpoint_round_trips(folder, tmp_path):
    data = load_video_parser_data(folder, "val")
    cfg = ParserConfig(**{**TINY, "epochs": 8}, programs=len(data.examples))
    torch.manual_seed(0)
    before = build_parser(cfg, data)
    before.eval()
    with torch.no_grad():
        start = float(supervised_loss(before, data.examples))
    parser = train_parser(cfg, data, out=tmp_path / "p.pt", progress=False)["parser"]
    with torch.no_grad():
        end = float(supervised_loss(parser, data.examples))
    assert end < 0.7 * start
    save_parser(tmp_path / "export.pt", parser)
    loaded = load_parser(tmp_path / "export.pt")
    assert loaded.catalogue_name == "clevrer"
    texts = [e.question for e in data.examples]
    kinds = [e.kind for e in data.examples]
    assert loaded.parse_tokens(texts, kinds=kinds) == parser.parse_tokens(texts, kinds=kinds)


def test_a_clevr_parser_is_refused_as_a_video_parser():
    from reasoning.parser import DEFAULT_CHECKPOINT

    with pytest.raises(DataError, match="clevrer programs"):
        VideoQuestionParser(load_parser(DEFAULT_CHECKPOINT))


def test_the_shipped_parser_loads_and_parses_unseen_videos_questions(folder):
    assert DEFAULT_VIDEO_CHECKPOINT.stat().st_size < 3 * 2**20
    parser = video_parser()
    result = evaluate_video_parser(parser, _entries(folder))
    assert result["invalid"] == 0 and result["program_exact"] >= 0.95, result
    parsed = parser({"question": "Which of the following will happen without the red cube?",
                     "choices": [{"choice": "The blue sphere collides with the cylinder"}]})
    assert parsed.program == tuple("objects red filter_color cube filter_shape unique counterfact_events "
                                   "belong_to".split())
    assert parsed.choices[0] == tuple("all_events objects blue filter_color sphere filter_shape unique "
                                      "filter_collision objects cylinder filter_shape unique filter_collision "
                                      "unique".split())
    records = [q for entry in _entries(folder) for q in entry["questions"]][:6]
    batch = parser.parse_many([records[0], {"question_id": 99}, *records[1:]])
    assert isinstance(batch[1], DataError) and "question 99" in str(batch[1])
    assert [b.program for b in batch[:1] + batch[2:]] == [parser(r).program for r in records]


def test_eval_and_answer_with_the_model_parser(folder, tmp_path, capsys):
    assert "model" in VIDEO_PARSERS
    out = tmp_path / "r.json"
    assert cli.main(["eval", "clevrer", "--data", str(folder), "--split", "val", "--parser", "model",
                     "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["parser"] == "model"
    assert result["counts"]["descriptive"] > 0 and result["accuracy"]["descriptive"] >= 0.95
    capsys.readouterr()
    assert cli.main(["answer", "--video", str(folder), "--index", "0", "--question", "How many collisions happen?",
                     "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["tokens"] == ["events", "objects", "filter_collision", "count"]
    q = next(q for q in _entries(folder)[0]["questions"] if "choices" in q)
    option = q["choices"][0]
    assert cli.main(["answer", "--video", str(folder), "--index", "0", "--question", q["question"],
                     "--option", option["choice"], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["tokens"] == option["program"] + q["program"]
    assert printed["answer"] == {"correct": "yes", "wrong": "no"}[option["answer"]]


@pytest.mark.parametrize("name", ["reasoning.parser.catalogues", "reasoning.parser.video"])
def test_docstring_examples_hold(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_a_question_that_is_not_an_object_is_named_not_a_traceback():
    from reasoning.parser.video import video_examples

    entries = [{"scene_index": 3, "questions": [5]}]
    with pytest.raises(DataError, match=r"q.json: video 3, question at position 0: expected an object, got int"):
        video_examples(entries, where="q.json")


def test_train_video_parser_reads_its_held_out_file_before_training(folder, tmp_path, capsys):
    # a missing --eval-data was found after the epochs, leaving the checkpoint and its log behind
    out = tmp_path / "vp.pt"
    rc = cli.main(["train", "video-parser", "--data", str(folder), "--split", "val", "--eval-data",
                   str(tmp_path / "missing"), "--out", str(out), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "CLEVRER questions file not found" in err, err
    assert list(tmp_path.iterdir()) == []


def test_train_video_parser_checks_its_outputs_before_training(folder, tmp_path, capsys):
    # an --export it could not write was found after the epochs, the checkpoint and its log left behind
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "vp.pt"
    rc = cli.main(["train", "video-parser", "--data", str(folder), "--split", "val", "--out", str(out),
                   "--export", str(tmp_path / "a_file" / "e.pt"), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "a file is in the way" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_answer_video_notes_the_words_the_parser_never_saw(folder, capsys):
    # 'plaid' was read as the unknown-word token and the program counted every collision, without a word
    base = ["answer", "--video", str(folder), "--index", "0", "--json", "--question"]
    assert cli.main([*base, "How many plaid collisions happen?"]) == 0
    err = capsys.readouterr().err
    assert "note: the parser never saw 'plaid' in --question" in err and len(err.strip().splitlines()) == 1, err
    assert cli.main([*base, "How many collisions happen?"]) == 0
    assert "never saw" not in capsys.readouterr().err
