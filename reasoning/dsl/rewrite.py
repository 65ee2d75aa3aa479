"""Program rewrites: expanding the CLEVR template composites into primitive nodes.

The CLEVR question templates use composite nodes (``filter_unique``,
``relate_filter_count``, ...) that the question generator spells out when it
instantiates a question (Johnson et al., CVPR 2017, ``generate_questions.py``):
``relate`` with the relation, then one ``filter_<attribute>`` per attribute the
question mentions, in the composite's side-input order, then ``unique`` /
``count`` / ``exist`` as the composite's name says. Unmentioned attributes
(empty side inputs) get no filter. :func:`expand_composites` performs that
rewrite, so a program written with composites can be compared with, written as,
or executed like an official CLEVR question program.

The rewrite reads the catalogue rather than a fixed table: the primitive for a
side-input type ``T`` is the one non-composite function with exactly one input
and the single side input ``T`` (``Color`` -> ``filter_color``, ``Relation`` ->
``relate``); the closing function is the composite name's last word when that
names a function (``filter_count`` -> ``count``).
"""

from __future__ import annotations

from reasoning.dsl.catalogue import Catalogue, FunctionSpec
from reasoning.dsl.program import Call, Program
from reasoning.errors import ProgramError

__all__ = ["expand_composites"]


def _primitive_for(catalogue: Catalogue, vtype: str) -> FunctionSpec:
    found = [
        s
        for s in (catalogue.signature(n) for n in catalogue.names)
        if not s.template_only and s.arity == 1 and s.side_inputs == (vtype,)
    ]
    if len(found) != 1:
        names = [s.name for s in found]
        raise ProgramError(
            f"cannot expand composites: the catalogue needs exactly one one-input function "
            f"whose only side input is {vtype}, found {names or 'none'}"
        )
    return found[0]


def expand_composites(program: Program | Call, catalogue: Catalogue | None = None) -> Program:
    """Rewrite template composite nodes into the primitive chains CLEVR questions use.

    Args:
        program: A program that type-checks (template parameters such as ``<C>``
            are kept as the side input of their filter).
        catalogue: Function signatures (default: the CLEVR catalogue).

    Returns:
        An equivalent program without template-only nodes; programs without
        composites come back equal to the input.

    Raises:
        ProgramError: The program does not type-check, or the catalogue lacks a
            primitive for some side-input type.

    >>> from reasoning.dsl import parse_program
    >>> str(expand_composites(parse_program("filter_count(scene(), large, _, _, cube)")))
    'count(filter_shape(filter_size(scene(), large), cube))'
    """
    cat = catalogue if catalogue is not None else Catalogue.default()
    root = program.root if isinstance(program, Program) else program
    cat.check(root, allow_placeholders=True)
    primitives: dict[str, FunctionSpec] = {}
    done: dict[int, Call] = {}  # id(original call) -> rewritten call
    for call in root.walk():
        args = tuple(done[id(a)] for a in call.args)
        spec = cat.signature(call.function)
        if not spec.template_only:
            done[id(call)] = Call(call.function, args, call.values)
            continue
        if len(args) != 1:
            raise ProgramError(f"cannot expand {call.function}: composites take exactly one input")
        current = args[0]
        for vtype, value in zip(spec.side_inputs, call.values, strict=True):
            if value == "":
                continue
            if vtype not in primitives:
                primitives[vtype] = _primitive_for(cat, vtype)
            current = Call(primitives[vtype].name, (current,), (value,))
        last_word = call.function.rsplit("_", 1)[-1]
        if (
            last_word != call.function
            and last_word in cat
            and not cat.signature(last_word).template_only
            and cat.arity(last_word) == 1
        ):
            current = Call(last_word, (current,))
        done[id(call)] = current
    expanded = Program(done[id(root)])
    got = cat.check(expanded, allow_placeholders=True, allow_composites=False)
    want = cat.signature(root.function).output
    if got != want:  # a catalogue whose composite names do not follow the CLEVR pattern
        raise ProgramError(
            f"cannot expand {root.function}: its primitive chain returns {got}, not {want}"
        )
    return expanded
