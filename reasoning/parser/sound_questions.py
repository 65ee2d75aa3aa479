"""Programs for questions about sound, by question templates (the learned video parser does not know them).

The NS-VQA video parser (:mod:`reasoning.parser.video`) is trained on CLEVRER's
question families, which never ask about sound; given "Which object is making
the sound?" it writes some other program.  Until a parser is trained on sound
questions, this module maps a fixed set of question forms to programs of the
CLEVRER catalogue's sound operations, the way the CLEVR question engine's
templates pair a text form with a program.  A question of no known form raises
a :class:`~physics.errors.ConfigError` listing the forms.  Registered as the
``templates`` video question parser (:data:`reasoning.nsdr.VIDEO_PARSERS`).

The forms (``<object>`` is an object phrase: ``the`` then optional colour and
material words and a shape word, or ``object``/``thing``, e.g. "the red metal
cube", "the sphere"; ``<order>`` is first, second or last)::

    Which object is making the sound?           describe_objects(filter_sounding(objects(), null()))
      (also: which object(s) make(s)/made/is making/are making the/a sound(s);
       what is making the sound; what makes the sound)
    What sounds after <object> collides?        describe_objects(filter_sounding_after(objects(),
                                                    filter_order(filter_collision(events(), <object>), first)))
      (also: what is sounding / what makes a sound after ... collides)
    What sound does <object> make?              query_sound(unique(<object>))
    What does the <order> collision sound like? query_sound(filter_order(filter_collision(events(),
                                                    objects()), <order>))
      (also: what sound does the <order> collision make)
    Is <object> making a sound?                 exist(filter_sounding(<object>, null()))
    How many objects are making a sound?        count(filter_sounding(objects(), null()))

>>> from reasoning.dsl import to_text
>>> to_text(parse_sound_question("What sounds after the red cube collides?"))
'describe_objects(filter_sounding_after(objects(), filter_order(filter_collision(events(), filter_shape(filter_color(objects(), red), cube)), first)))'
"""

from __future__ import annotations

import re

from physics.errors import ConfigError
from physics.worlds.clevr_properties import COLORS, MATERIALS, SHAPES
from reasoning.dsl import Program, parse_program
from reasoning.dsl.catalogue import Catalogue

__all__ = ["parse_sound_question", "SOUND_QUESTION_FORMS"]

SOUND_QUESTION_FORMS: tuple[str, ...] = (
    "Which object is making the sound?",
    "What sounds after <object> collides?",
    "What sound does <object> make?",
    "What does the <first|second|last> collision sound like?",
    "Is <object> making a sound?",
    "How many objects are making a sound?",
)

_WORDS = "|".join
_OBJECT = (rf"the\s+(?:(?P<{{p}}color>{_WORDS(COLORS)})\s+)?(?:(?P<{{p}}material>{_WORDS(MATERIALS)})\s+)?"
           rf"(?P<{{p}}shape>{_WORDS(SHAPES)}|object|thing)")


def _object(p: str = "") -> str:
    return _OBJECT.format(p=p)


_SOUND = r"(?:the\s+|a\s+)?sounds?"
_FORMS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(rf"^{pattern}$"), program) for pattern, program in (
    (rf"(?:which\s+objects?\s+(?:is\s+making|are\s+making|makes?|made)|what\s+(?:is\s+making|makes|made))\s+{_SOUND}",
     "describe_objects(filter_sounding(objects(), null()))"),
    (rf"what\s+(?:sounds|is\s+sounding|makes\s+a\s+sound)\s+after\s+{_object()}\s+(?:collides|hits\s+something)",
     "describe_objects(filter_sounding_after(objects(), filter_order(filter_collision(events(), {object}), first)))"),
    (rf"what\s+sound\s+does\s+{_object()}\s+make",
     "query_sound(unique({object}))"),
    (r"(?:what\s+does\s+the\s+(?P<order>first|second|last)\s+collision\s+sound\s+like"
     r"|what\s+sound\s+does\s+the\s+(?P<order2>first|second|last)\s+collision\s+make)",
     "query_sound(filter_order(filter_collision(events(), objects()), {order}))"),
    (rf"is\s+{_object()}\s+making\s+{_SOUND}",
     "exist(filter_sounding({object}, null()))"),
    (rf"how\s+many\s+(?:objects|things)\s+(?:are\s+making|make)\s+{_SOUND}",
     "count(filter_sounding(objects(), null()))"),
))


def _phrase(match: re.Match[str]) -> str:
    """The filter chain of the object phrase in ``match`` (colour, then material, then shape)."""
    program = "objects()"
    for attr in ("color", "material", "shape"):
        word = match.group(attr)
        if word and word not in ("object", "thing"):
            program = f"filter_{attr}({program}, {word})"
    return program


def parse_sound_question(text: str) -> Program:
    """The program of a question about sound (one of :data:`SOUND_QUESTION_FORMS`).

    Raises:
        ConfigError: the question has none of the forms (lists them).
    """
    question = " ".join(text.strip().lower().rstrip("?").split())
    for pattern, template in _FORMS:
        match = pattern.match(question)
        if match is None:
            continue
        groups = match.groupdict()
        fields = {"order": groups.get("order") or groups.get("order2") or "first"}
        if "shape" in groups:
            fields["object"] = _phrase(match)
        program = parse_program(template.format(**fields), where=f"sound question {text!r}")
        Catalogue.clevrer().check(program)
        return program
    raise ConfigError(f"no sound-question form matches {text!r}; the forms are: " + "; ".join(SOUND_QUESTION_FORMS))
