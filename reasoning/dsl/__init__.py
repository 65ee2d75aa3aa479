"""The program DSL: the Program AST, its text form, CLEVR/NS-VQA formats and the catalogue.

>>> from reasoning.dsl import parse_program, to_clevr, Catalogue
>>> p = parse_program("count(filter_color(scene(), red))")
>>> Catalogue.default().check(p)
'Integer'
>>> [n["function"] for n in to_clevr(p)]
['scene', 'filter_color', 'count']
"""

from reasoning.dsl.catalogue import Catalogue, FunctionSpec
from reasoning.dsl.formats import (
    from_clevr,
    from_postfix_tokens,
    from_prefix_tokens,
    postorder_positions,
    to_clevr,
    to_postfix_tokens,
    to_prefix_tokens,
)
from reasoning.dsl.program import Call, Program
from reasoning.dsl.rewrite import expand_composites
from reasoning.dsl.sampling import sample_program
from reasoning.dsl.text import parse_program, to_text

__all__ = [
    "Call",
    "Program",
    "parse_program",
    "to_text",
    "from_clevr",
    "to_clevr",
    "to_prefix_tokens",
    "from_prefix_tokens",
    "to_postfix_tokens",
    "from_postfix_tokens",
    "Catalogue",
    "FunctionSpec",
    "postorder_positions",
    "sample_program",
    "expand_composites",
]
