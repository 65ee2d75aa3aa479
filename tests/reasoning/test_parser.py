"""The NS-VQA question parser: vocabulary, model, training steps, checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from physics.errors import CheckpointError, ConfigError, DataError
from reasoning.dsl import Program, parse_program, to_prefix_tokens
from reasoning.parser import (
    ParserConfig,
    ParserData,
    ParserExample,
    ProgramVocabulary,
    QuestionParser,
    Vocabulary,
    load_parser,
    save_parser,
    select_supervised,
    template_words,
    tokenize,
)
from reasoning.parser.data import program_token_signatures
from reasoning.parser.model import pad_batch
from reasoning.parser.train import build_parser, reinforce_step, supervised_step
from reasoning.parser.vocab import PAD, UNK

# A toy language: a question names a colour and a shape; three program shapes.
COLORS = ("red", "blue", "green", "cyan")
SHAPES = ("cube", "sphere", "cylinder")


def _toy_examples() -> list[ParserExample]:
    out = []
    for c in COLORS:
        for s in SHAPES:
            for q, p in (
                (f"How many {c} {s}s are there?", f"count(filter_shape(filter_color(scene(), {c}), {s}))"),
                (f"Is there a {c} {s}?", f"exist(filter_shape(filter_color(scene(), {c}), {s}))"),
                (f"What material is the {c} {s}?", f"query_material(unique(filter_shape(filter_color(scene(), {c}), {s})))"),
            ):
                out.append(ParserExample(q, tuple(to_prefix_tokens(parse_program(p))), None, -1, p.split("(")[0]))
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: the tiny models here only lose time to thread hand-offs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = ParserConfig(embedding_dim=32, hidden_dim=64, dropout=0.0, max_program_length=12, programs=36, batch_size=36, threads=1)


@pytest.fixture(scope="module")
def toy() -> ParserData:
    return ParserData(tuple(_toy_examples()))


@pytest.fixture(scope="module")
def trained(toy: ParserData) -> QuestionParser:
    parser = build_parser(TINY, toy)
    opt = torch.optim.Adam(parser.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(120):
        supervised_step(parser, opt, toy.examples)
    return parser.eval()


# ---------------------------------------------------------------- vocabulary
def test_tokenize_lowercases_and_splits_punctuation() -> None:
    assert tokenize("There is a Red cube; how many spheres, are left of it?") == [
        "there", "is", "a", "red", "cube", ";", "how", "many", "spheres", ",", "are", "left", "of", "it", "?",
    ]


def test_unknown_words_read_as_unk_and_are_listed() -> None:
    vocab = Vocabulary.build(["how", "many", "cubes", "?"])
    assert vocab.words[:2] == (PAD, UNK) and vocab.unk_id == 1
    assert vocab.encode("How many cubes?") == [vocab.words.index(w) for w in ("how", "many", "cubes", "?")]
    assert vocab.encode("how many dodecahedra ?") == [vocab.words.index("how"), vocab.words.index("many"), 1,
                                                      vocab.words.index("?")]
    assert vocab.unknown(["how", "many", "dodecahedra", "?"]) == ["dodecahedra"]
    with pytest.raises(DataError, match="empty"):
        vocab.encode("   ")


def test_vocabulary_without_unk_still_names_the_unknown_word() -> None:
    """Checkpoints written before the UNK id existed keep the one-line error."""
    vocab = Vocabulary((PAD, "how", "many", "cubes", "?"))
    assert vocab.unk_id is None
    with pytest.raises(DataError, match=r"unknown word 'dodecahedra' at position 2"):
        vocab.encode("how many dodecahedra ?", where="question 7")


def test_template_words_cover_placeholders_synonyms_and_plurals(shared_clevr) -> None:
    import json

    synonyms = json.loads((shared_clevr / "synonyms.json").read_text())
    words = template_words(shared_clevr / "templates", synonyms)
    for w in ("balls", "blocks", "cylinders", "things", "objects", "shiny", "matte", "tiny", "purple", "behind", "front", "?", ";"):
        assert w in words
    assert not any("<" in w for w in words)


def test_program_vocabulary_holds_every_catalogue_token_with_signature() -> None:
    sigs = program_token_signatures()
    assert sigs["scene"] == ((), "ObjectSet", False)
    assert sigs["count"] == (("ObjectSet",), "Integer", True)
    assert sigs["union"][0] == ("ObjectSet", "ObjectSet")
    assert sigs[to_prefix_tokens(parse_program("filter_color(scene(), red)"))[0]] == (("ObjectSet",), "ObjectSet", False)
    assert not any(t.startswith("filter_count") for t in sigs)  # template composites are expanded
    vocab = ProgramVocabulary.build(sigs)
    assert vocab.arities[vocab.tokens.index("union")] == 2
    with pytest.raises(DataError, match="position 1"):
        vocab.encode(["count", "teleport"])


def test_select_supervised_spreads_over_templates(toy: ParserData) -> None:
    chosen = select_supervised(toy.examples, 6)
    assert sorted(e.template for e in chosen) == ["count", "count", "exist", "exist", "query_material", "query_material"]
    with pytest.raises(DataError, match="only 36"):
        select_supervised(toy.examples, 37)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="hidden_dim"):
        ParserConfig(hidden_dim=33)
    with pytest.raises(ConfigError, match="batch_size"):
        ParserConfig(batch_size=0)


# ---------------------------------------------------------------- model
def test_supervised_training_lowers_the_loss(toy: ParserData) -> None:
    parser = build_parser(TINY, toy)
    opt = torch.optim.Adam(parser.parameters(), lr=1e-2)
    torch.manual_seed(0)
    first = supervised_step(parser, opt, toy.examples)
    for _ in range(30):
        last = supervised_step(parser, opt, toy.examples)
    assert last < 0.5 * first


def test_trained_parser_decodes_valid_programs(trained: QuestionParser, toy: ParserData) -> None:
    qs = [e.question for e in toy.examples]
    programs = trained.parse(qs)
    assert all(isinstance(p, Program) for p in programs)
    exact = sum(tuple(to_prefix_tokens(p)) == e.tokens for p, e in zip(programs, toy.examples, strict=False))
    assert exact == len(qs)
    # beam search finds the same (already certain) programs
    assert trained.parse(qs[:5], beam_size=3) == programs[:5]


def test_untrained_decodes_are_well_typed_programs(toy: ParserData) -> None:
    """Even random weights decode complete, catalogue-valid trees within the length limit."""
    from reasoning.dsl import Catalogue, from_prefix_tokens

    catalogue = Catalogue.default()
    for seed in range(3):
        torch.manual_seed(seed)
        parser = build_parser(TINY, toy).eval()
        words, lengths, _ = parser.encode_questions([e.question for e in toy.examples])
        dec = parser.decode(words, lengths, mode="sample")
        for row in dec.tokens.tolist():
            ids = [i for i in row if i]
            assert 1 <= len(ids) <= TINY.max_program_length
            # value slots stay placeholders; a phrase slot stands for a filter chain (one filter here)
            tokens = ["filter_shape[<shape1>]" if t.startswith("<obj") else t for t in parser.program_vocab.decode(ids)]
            program = from_prefix_tokens(tokens)
            assert catalogue.check(program, allow_placeholders=True) in ("Integer", "Bool", "Color", "Shape", "Size", "Material")


def test_teacher_forced_and_sampled_log_probs_agree(trained: QuestionParser, toy: ParserData) -> None:
    words, lengths, _ = trained.encode_questions([e.question for e in toy.examples[:8]])
    torch.manual_seed(1)
    dec = trained.decode(words, lengths, mode="sample")
    with torch.no_grad():
        forced = trained(words, lengths, dec.tokens).sum(dim=1)
    assert torch.allclose(forced, dec.log_prob.detach(), atol=1e-4)


def test_parse_reads_past_unknown_words(trained: QuestionParser) -> None:
    """A word never seen is not an error: it is listed, and the rest of the question still parses."""
    questions = ["How many red cubes are there?", "How many red cubes are there visible?"]
    assert trained.unknown_words(questions) == [(), ("visible",)]
    plain, unseen = trained.parse(questions)
    assert plain is not None and unseen is not None
    assert to_prefix_tokens(unseen) == to_prefix_tokens(plain)


def test_word_dropout_replaces_only_plain_words(trained: QuestionParser) -> None:
    torch.manual_seed(0)
    words, _, slots = trained.encode_questions(["How many red cubes are there?"] * 50, word_dropout=0.5)
    unk = trained.question_vocab.unk_id
    assert (words == unk).any()
    for row, sl in zip(words.tolist(), slots, strict=True):
        for i, w in zip(row, sl.words, strict=False):
            if w.startswith("<"):
                assert i != unk  # slots carry the question's values: never dropped


# ---------------------------------------------------------------- REINFORCE
def test_reinforce_step_raises_probability_of_rewarded_programs(toy: ParserData) -> None:
    """Reward 'count' programs only: their probability must go up."""
    torch.manual_seed(0)
    parser = build_parser(dataclasses.replace(TINY, entropy_weight=0.0), toy)
    opt = torch.optim.Adam(parser.parameters(), lr=3e-3)
    count_id = parser.program_vocab.tokens.index("count")
    words, lengths, _ = parser.encode_questions([e.question for e in toy.examples])

    def p_count() -> float:
        with torch.no_grad():
            targets, _ = pad_batch([[count_id]] * len(toy.examples))  # p(first token = count)
            return float(parser(words, lengths, targets)[:, 0].exp().mean())

    before = p_count()
    baseline = None
    for step in range(15):
        torch.manual_seed(100 + step)
        _, baseline = reinforce_step(
            parser, opt, toy.examples, lambda toks, batch: [float(t is not None and t[0] == "count") for t in toks], baseline, parser.config
        )
    assert p_count() > before + 0.1


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_is_weights_only(tmp_path, trained: QuestionParser, toy: ParserData, monkeypatch) -> None:
    path = tmp_path / "parser.pt"
    save_parser(path, trained, meta={"command": "test", "seed": 0})
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded = load_parser(path)
    assert calls == [True]
    qs = [e.question for e in toy.examples[:10]]
    assert loaded.parse(qs) == trained.parse(qs)
    assert loaded.config == trained.config


def test_corrupt_or_foreign_checkpoint_raises_checkpoint_error(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_parser(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a question-parser checkpoint"):
        load_parser(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_parser(tmp_path / "missing.pt")


def test_shipped_default_parser_loads_and_answers_generated_questions() -> None:
    """The packaged checkpoint loads weights-only, records its command, and parses template questions."""
    from perception.synthetic import sample_scene_graphs
    from reasoning.executor import execute
    from reasoning.parser import DEFAULT_CHECKPOINT, load_default_parser
    from reasoning.questions import QuestionGenerator

    if not DEFAULT_CHECKPOINT.exists():
        pytest.skip("no shipped parser checkpoint in this checkout")
    meta = torch.load(DEFAULT_CHECKPOINT, weights_only=True)["meta"]
    assert meta["command"].startswith("nesy train parser") and "seed" in meta
    parser = load_default_parser()
    scenes = sample_scene_graphs(4, seed=77)
    questions = QuestionGenerator().generate(scenes, 5, seed=77)
    programs = parser.parse([q["question"] for q in questions])
    right = sum(
        p is not None and execute(p, scenes[q["image_index"]]).answer == q["answer"]
        for p, q in zip(programs, questions, strict=True)
    )
    assert right >= 0.6 * len(questions)
