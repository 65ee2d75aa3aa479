"""The question parser on CLEVR's own question language (official templates and synonyms, read in place)."""

from __future__ import annotations

import pytest
import torch

from perception.synthetic import sample_scene_graphs
from physics.errors import DataError
from reasoning.dsl import from_clevr, from_prefix_tokens, to_prefix_tokens
from reasoning.executor import execute
from reasoning.parser import ParserConfig, generate_parser_data
from reasoning.parser.data import OFFICIAL_PREFIX, official_template_set
from reasoning.parser.train import build_parser
from reasoning.questions import QuestionGenerator
from tests.conftest import SINGLE_OR


@pytest.fixture(scope="module")
def official(shared_clevr):
    """Official-template questions of all 90 families over 30 synthetic scenes, with the scenes."""
    templates, synonyms = official_template_set(shared_clevr)
    scenes = sample_scene_graphs(30, seed=5)
    questions = QuestionGenerator(templates=templates, synonyms=synonyms).generate(scenes, 10, seed=5)
    return questions, {s.image_index: s for s in scenes}


def test_tree_form_of_official_programs_answers_like_the_node_list(official) -> None:
    """The parser decodes prefix trees; an official DAG (single_or's shared node) answers like its tree."""
    questions, scenes = official
    for q in questions:
        program = from_clevr(q["program"])
        tree = from_prefix_tokens(to_prefix_tokens(program))
        assert execute(tree, scenes[q["image_index"]]).answer == q["answer"], q["question"]
    dag = from_clevr(SINGLE_OR)
    tree = from_prefix_tokens(to_prefix_tokens(dag))
    assert dag.graph is not None and tree.graph is None and tree.root == dag.root
    for scene in scenes.values():
        assert execute(tree, scene).answer == execute(dag, scene).answer


def test_generated_data_joins_official_questions_scene_by_scene(shared_clevr) -> None:
    data = generate_parser_data(6, 3, seed=2, official=shared_clevr)
    official = [e for e in data.examples if e.template.startswith(OFFICIAL_PREFIX)]
    own = [e for e in data.examples if not e.template.startswith(OFFICIAL_PREFIX)]
    assert official and own and len(official) + len(own) == len(data.examples)
    order = [e.image_index for e in data.examples]
    assert order == sorted(order)  # any prefix (the REINFORCE pool) holds both languages
    assert {"either", "has", "anything", "visible"} <= set(data.extra_words)
    assert data.synonyms["thing"] and data.source["generated"]["official"] == str(shared_clevr)


def test_parser_built_with_official_data_knows_every_official_word(shared_clevr, official) -> None:
    questions, _ = official
    data = generate_parser_data(2, 2, seed=2, official=shared_clevr)
    parser = build_parser(ParserConfig(embedding_dim=8, hidden_dim=8, programs=4, threads=1), data)
    assert not any(parser.unknown_words([q["question"] for q in questions]))


def test_official_template_set_names_what_is_missing(tmp_path) -> None:
    with pytest.raises(DataError, match="no 'templates' folder"):
        official_template_set(tmp_path)
    (tmp_path / "templates").mkdir()
    with pytest.raises(DataError, match="no synonyms.json"):
        official_template_set(tmp_path)


def test_shipped_parser_is_trained_on_the_official_language(official) -> None:
    """The packaged checkpoint says it read the official templates, knows their words and answers them."""
    from reasoning.parser import DEFAULT_CHECKPOINT, load_default_parser

    if not DEFAULT_CHECKPOINT.exists():
        pytest.skip("no shipped parser checkpoint in this checkout")
    meta = torch.load(DEFAULT_CHECKPOINT, weights_only=True)["meta"]
    assert "--official-templates" in meta["command"]
    questions, scenes = official
    parser = load_default_parser()
    texts = [q["question"] for q in questions]
    assert not any(parser.unknown_words(texts))
    programs = parser.parse(texts)
    right = sum(
        p is not None and execute(p, scenes[q["image_index"]]).answer == q["answer"]
        for p, q in zip(programs, questions, strict=True)
    )
    assert right >= 0.95 * len(questions)


def test_cli_names_a_missing_official_folder_before_generating_anything(tmp_path, capsys) -> None:
    from benchmarks.cli import main

    rc = main(["train", "parser", "--official-templates", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.pt"),
               "--quiet"])
    assert rc == 2
    assert "no 'templates' folder" in capsys.readouterr().err and not (tmp_path / "p.pt").exists()
