"""Value and phrase slots of the question parser (reasoning.parser.anonymize)."""

from __future__ import annotations

import pytest
import torch

from physics.io import read_json
from reasoning.dsl import from_clevr, parse_program, to_prefix_tokens
from reasoning.parser import ParserConfig, ParserData, ParserExample, tokenize
from reasoning.parser.anonymize import (
    anonymize_phrases,
    anonymize_program,
    anonymize_words,
    build_lexicon,
    build_nouns,
    restore_program,
    token_slot,
)
from reasoning.parser.train import build_parser
from reasoning.questions import DEFAULT_SYNONYMS

SYNONYMS = read_json(DEFAULT_SYNONYMS, "synonyms")
LEXICON = build_lexicon(SYNONYMS)
NOUNS = build_nouns(SYNONYMS)


def _anonymize(question: str, program: str) -> tuple[list[str], list[str], list[str]]:
    """(anonymised words, anonymised program tokens, restored program tokens)."""
    words, phrases = anonymize_phrases(tokenize(question), LEXICON, NOUNS)
    words, values = anonymize_words(words, LEXICON, per_occurrence=True)
    tokens = to_prefix_tokens(parse_program(program))
    slotted = anonymize_program(tokens, values, phrases, words)
    return words, slotted, restore_program(slotted, values, phrases)


def test_object_phrases_become_one_slot_with_their_filter_chain() -> None:
    words, phrases = anonymize_phrases(tokenize("How many large cylinders are left of the big matte ball?"), LEXICON, NOUNS)
    assert words == ["how", "many", "<obj1>", "are", "left", "of", "the", "<obj2>", "?"]
    assert phrases == {
        "<obj1>": ("filter_shape[cylinder]", "filter_size[large]"),
        "<obj2>": ("filter_shape[sphere]", "filter_material[rubber]", "filter_size[large]"),
    }


def test_program_slots_round_trip_and_bare_nouns_mark_unfiltered_sets() -> None:
    words, slotted, restored = _anonymize(
        "What size is the thing left of the red cube?",
        "query_size(unique(relate(unique(filter_shape(filter_color(scene(), red), cube)), left)))",
    )
    assert words == ["what", "size", "is", "the", "<obj1>", "<relation1>", "of", "the", "<obj2>", "?"]
    # the bare "thing" marks the set it describes (relate's output); "red cube" is one slot
    assert slotted == ["query_size", "unique", "<obj1>", "relate[<relation1>]", "unique", "<obj2>", "scene"]
    assert restored == to_prefix_tokens(
        parse_program("query_size(unique(relate(unique(filter_shape(filter_color(scene(), red), cube)), left)))")
    )


def test_attribute_words_without_a_noun_are_a_phrase_too() -> None:
    words, slotted, restored = _anonymize(
        "Among the cubes and the metal blocks, how many are large?",
        "count(filter_size(union(filter_shape(scene(), cube), filter_shape(filter_material(scene(), metal), cube)), large))",
    )
    assert words[-2:] == ["<obj3>", "?"]
    assert slotted == ["count", "<obj3>", "union", "<obj1>", "scene", "<obj2>", "scene"]
    assert restored == to_prefix_tokens(
        parse_program("count(filter_size(union(filter_shape(scene(), cube), filter_shape(filter_material(scene(), metal), cube)), large))")
    )


def test_repeated_relations_get_one_slot_each_aligned_by_the_phrase_they_govern() -> None:
    """'left of A ... left of B': each relate takes the slot whose next phrase is its argument."""
    words, slotted, _ = _anonymize(
        "Look at the cube left of the sphere; how many cylinders are left of it?",
        "count(filter_shape(relate(unique(filter_shape(relate(unique(filter_shape(scene(), sphere)), left), cube)), left), cylinder))",
    )
    assert words.count("<relation1>") == 1 and words.count("<relation2>") == 1
    # the outer relate is "left of it" (the second mention); the inner one governs the sphere
    assert slotted == [
        "count", "<obj3>", "relate[<relation2>]", "unique", "<obj1>", "relate[<relation1>]", "unique", "<obj2>", "scene",
    ]


def test_a_value_word_that_asks_stays_a_word() -> None:
    """'How big is ...' asks for a size (official templates): "big" is no large-thing phrase."""
    words, slotted, restored = _anonymize(
        "How big is the red cube?", "query_size(unique(filter_shape(filter_color(scene(), red), cube)))"
    )
    assert words == ["how", "big", "is", "the", "<obj1>", "?"]
    assert slotted == ["query_size", "unique", "<obj1>", "scene"]
    assert restored == to_prefix_tokens(parse_program("query_size(unique(filter_shape(filter_color(scene(), red), cube)))"))


def test_restore_rejects_a_phrase_the_question_lacks() -> None:
    assert restore_program(["count", "<obj3>", "scene"], {}, {"<obj1>": ("filter_shape[cube]",)}) is None
    assert token_slot("filter_color[<color2>]") == "<color2>" and token_slot("<obj1>") == "<obj1>"
    assert token_slot("filter_color[red]") is None


def _round_trip_rate(questions: list[dict]) -> float:
    ok = 0
    for q in questions:
        tokens = to_prefix_tokens(from_clevr(q["program"]))
        words, phrases = anonymize_phrases(tokenize(q["question"]), LEXICON, NOUNS)
        words, values = anonymize_words(words, LEXICON, per_occurrence=True)
        ok += restore_program(anonymize_program(tokens, values, phrases, words), values, phrases) == tokens
    return ok / len(questions)


def test_every_generated_question_round_trips_through_slots() -> None:
    """Own templates: slotting a program and restoring it gives the program back, always."""
    from perception.synthetic import sample_scene_graphs
    from reasoning.questions import QuestionGenerator

    questions = QuestionGenerator().generate(sample_scene_graphs(40, seed=3), 10, seed=3)
    assert len(questions) >= 300 and _round_trip_rate(questions) == 1.0


def test_official_template_questions_of_every_family_round_trip_through_slots(shared_clevr) -> None:
    from perception.synthetic import sample_scene_graphs
    from reasoning.questions import QuestionGenerator

    gen = QuestionGenerator(
        templates=shared_clevr / "templates", synonyms=read_json(shared_clevr / "synonyms.json", "synonyms")
    )
    questions = gen.generate(sample_scene_graphs(30, seed=5), 10, seed=5)
    families = {(q["template_filename"], q["question_family_index"]) for q in questions}
    assert len(families) == 90  # every official family, single_or's DAG programs included
    assert len(questions) >= 200 and _round_trip_rate(questions) == 1.0


@pytest.mark.parametrize("mode", ["greedy", "sample", "beam"])
def test_decoding_never_names_a_slot_the_question_lacks(mode: str) -> None:
    examples = [
        ParserExample("How many red cubes are there?", tuple(to_prefix_tokens(parse_program(
            "count(filter_shape(filter_color(scene(), red), cube))")))),
        ParserExample("Is there a thing left of the big ball?", tuple(to_prefix_tokens(parse_program(
            "exist(relate(unique(filter_shape(filter_size(scene(), large), sphere)), left))")))),
    ]
    config = ParserConfig(embedding_dim=16, hidden_dim=32, max_program_length=16, threads=1)
    torch.manual_seed(0)
    parser = build_parser(config, ParserData(tuple(examples))).eval()
    words, lengths, slots = parser.encode_questions([e.question for e in examples])
    for seed in range(5):
        torch.manual_seed(seed)
        dec = parser.decode(words, lengths, mode=mode, beam_size=3, allowed=parser.slot_mask(slots))
        for row, sl in zip(dec.tokens.tolist(), slots, strict=True):
            assert parser.restore([i for i in row if i], sl) is not None
