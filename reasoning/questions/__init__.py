"""Question generation from templates (CLEVR's generator, rewritten).

Templates in the CLEVR template JSON format are instantiated over scene graphs:
parameter values are found by a search over the template program with the
scene, constraints are honoured, degenerate and over-represented questions are
rejected, and each question comes with its program (basic CLEVR functions) and
answer, in the official questions-JSON format.  Templates are checked against
the function catalogue :class:`reasoning.dsl.Catalogue` (CLEVR's
``metadata.json`` format).

>>> from perception.synthetic import sample_scene_graphs
>>> qs = QuestionGenerator().generate(sample_scene_graphs(3, seed=1), per_scene=2, seed=0)
>>> len(qs) > 0 and qs[0]["question_index"] == 0
True

Reference: Johnson et al., "CLEVR", CVPR 2017.
"""

from reasoning.questions.balance import AnswerBalancer, answer_domain
from reasoning.questions.config import GeneratorConfig
from reasoning.questions.engine import SceneIndex
from reasoning.questions.generator import (
    QUESTION_KEYS,
    QuestionGenerator,
    save_questions,
)
from reasoning.questions.question_types import (
    FAMILIES,
    QUESTION_TYPE_LABELS,
    QUESTION_TYPES,
    question_type,
)
from reasoning.questions.search import Instance, instantiate, is_degenerate
from reasoning.questions.template import (
    DEFAULT_TEMPLATES,
    Constraint,
    Param,
    Template,
    TemplateNode,
    load_templates,
    parse_template,
)
from reasoning.questions.vocab import ATTRIBUTE_TYPES, DEFAULT_SYNONYMS, load_synonyms

__all__ = [
    "ATTRIBUTE_TYPES",
    "AnswerBalancer",
    "Constraint",
    "DEFAULT_SYNONYMS",
    "DEFAULT_TEMPLATES",
    "FAMILIES",
    "GeneratorConfig",
    "Instance",
    "Param",
    "QUESTION_KEYS",
    "QUESTION_TYPES",
    "QUESTION_TYPE_LABELS",
    "QuestionGenerator",
    "SceneIndex",
    "Template",
    "TemplateNode",
    "answer_domain",
    "instantiate",
    "is_degenerate",
    "load_synonyms",
    "load_templates",
    "parse_template",
    "question_type",
    "save_questions",
]
