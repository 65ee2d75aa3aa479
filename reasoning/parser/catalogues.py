"""The program catalogues a question parser can write: CLEVR's, and CLEVRER's with an option hole.

A parser is built for one catalogue, named in its checkpoint (``clevr``, the
default of checkpoints that name none, or ``clevrer``).

CLEVRER judges a multiple-choice option by running the option's postfix tokens
and then the question's (:func:`reasoning.dsl.clevrer_format.join_choice`): the
question's program alone lacks one input, the first leaf of its postfix form,
which the option's value fills.  The parser writes that missing input as the
zero-input token :data:`CHOICE` (output ``Object|Event``, the type of every
option's value), so a multiple-choice question is a complete tree it can decode
under the type grammar; the token is dropped again when the program is written
as CLEVRER tokens.  An option's own program is parsed on its own, with its root
of type :data:`CHOICE_ROOT`.

>>> cat = parser_catalogue("clevrer")
>>> cat.signature(CHOICE).output, CHOICE in parser_catalogue("clevr")
('Object|Event', False)
"""

from __future__ import annotations

from functools import cache

from physics.errors import ConfigError
from reasoning.dsl import Catalogue

__all__ = ["CATALOGUES", "CHOICE", "CHOICE_ROOT", "KINDS", "parser_catalogue"]

CATALOGUES = ("clevr", "clevrer")
CHOICE = "choice"  # the option's value in a multiple-choice question's program
CHOICE_ROOT = "Object|Event"  # what an option's program returns
# what a parsed text is: a question (descriptive, or any CLEVR one), a multiple-choice
# question (its program holds one CHOICE), or one of its options (rooted at CHOICE_ROOT)
KINDS = ("question", "multiple_choice", "choice")


@cache
def parser_catalogue(name: str) -> Catalogue:
    """The catalogue of parser programs called ``name`` (one of :data:`CATALOGUES`).

    Raises:
        ConfigError: an unknown name.
    """
    if name == "clevr":
        return Catalogue.default()
    if name == "clevrer":
        return Catalogue.clevrer().extend(
            [{"name": CHOICE, "inputs": [], "output": CHOICE_ROOT}], where="the parser's option hole")
    raise ConfigError(f"unknown parser catalogue {name!r}; choose one of {', '.join(CATALOGUES)}")
