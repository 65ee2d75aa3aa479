"""The NS-VQA question parser: question text -> Program (Yi et al., arXiv 1810.02338).

An attention seq2seq model (bi-LSTM encoder, LSTM decoder) reads question words
and writes program tokens in prefix order, side inputs fused into the tokens
(``filter_color[red]``).  It is pretrained on a few hundred (question, program)
pairs and fine-tuned with REINFORCE on (question, answer) pairs, the reward
being whether the executed program answers correctly.

The same model parses CLEVRER's video questions and their options into
CLEVRER programs (:mod:`reasoning.parser.video`, ``nesy train video-parser``):
a parser is built for one catalogue (:mod:`reasoning.parser.catalogues`).

>>> parser = load_default_parser()                            # doctest: +SKIP
>>> [str(p) for p in parser.parse(["How many red cubes are there?"])]  # doctest: +SKIP
"""

from reasoning.parser.checkpoint import (
    DEFAULT_CHECKPOINT,
    load_default_parser,
    load_parser,
    save_parser,
)
from reasoning.parser.config import ParserConfig
from reasoning.parser.data import (
    ParserData,
    ParserExample,
    examples_from_questions,
    generate_parser_data,
    load_parser_data,
    select_supervised,
)
from reasoning.parser.model import QuestionParser
from reasoning.parser.train import evaluate_parser, train_parser
from reasoning.parser.vocab import ProgramVocabulary, Vocabulary, template_words, tokenize

__all__ = [
    "QuestionParser",
    "ParserConfig",
    "ParserData",
    "ParserExample",
    "Vocabulary",
    "ProgramVocabulary",
    "tokenize",
    "template_words",
    "train_parser",
    "evaluate_parser",
    "examples_from_questions",
    "load_parser_data",
    "generate_parser_data",
    "select_supervised",
    "load_parser",
    "save_parser",
    "load_default_parser",
    "DEFAULT_CHECKPOINT",
]
