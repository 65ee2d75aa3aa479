"""Programs to and from the CLEVR node-list JSON and the NS-VQA token sequences.

CLEVR node lists (Johnson et al., CVPR 2017) store a program as a list of nodes
in post-order; each node names its function, the indices of the earlier nodes
it reads (``inputs``) and its literal side inputs; the last node is the root.
The official generator's lists are DAGs -- a node may be read by several later
nodes or by none (``single_or``: ``scene; scene; filter_size[large](1); ...;
union(1, 3); ...``) -- and are kept as read (:attr:`Program.graph`).  Two
spellings exist and both are read:

- the official CLEVR v1.0 question files: ``function`` + ``value_inputs``;
- the question generator and its templates: ``type`` + ``side_inputs``.

NS-VQA (Yi et al., "Neural-Symbolic VQA: Disentangling Reasoning from Vision
and Language Understanding", NeurIPS 2018) feeds programs to its seq2seq parser
as token sequences in prefix or postfix order, one token per node with the side
inputs fused into it: ``filter_color[red]``, ``relate[left]``, ``scene``. The
number of children of each token comes from a :class:`Catalogue`, so decoding
is unambiguous.

>>> p = from_clevr([{"function": "scene", "inputs": [], "value_inputs": []},
...                 {"function": "count", "inputs": [0], "value_inputs": []}])
>>> to_prefix_tokens(p), to_postfix_tokens(p)
(['count', 'scene'], ['scene', 'count'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from reasoning.dsl.catalogue import Catalogue
from reasoning.dsl.program import Call, Program
from reasoning.dsl.text import MAX_DEPTH, format_token, parse_token
from reasoning.errors import ProgramError

MAX_EXPANDED = 10_000  # calls in a DAG's tree expansion; official programs expand to under 40

__all__ = [
    "MAX_EXPANDED",
    "from_clevr",
    "to_clevr",
    "postorder_positions",
    "to_prefix_tokens",
    "from_prefix_tokens",
    "to_postfix_tokens",
    "from_postfix_tokens",
]


def _field(node: dict, keys: tuple[str, str], index: int, where: str, required: bool) -> Any:
    """The value of whichever of two synonymous keys the node uses."""
    a, b = keys
    if a in node:
        if b in node and node[b] != node[a]:
            raise ProgramError(
                f"{where}: node {index} has both {a!r} ({node[a]!r}) and {b!r} ({node[b]!r}) "
                "and they differ; give one of them"
            )
        return node[a]
    if b in node:
        return node[b]
    if required:
        raise ProgramError(f"{where}: node {index} has neither {a!r} nor {b!r}; one is required")
    return None


def from_clevr(nodes: Sequence[dict], where: str = "program") -> Program:
    """Read a CLEVR node list (``function``/``type``, ``inputs``, ``value_inputs``/``side_inputs``).

    Args:
        nodes: The nodes; node ``i`` may only read nodes ``< i`` and the last
            node is the root. A missing ``inputs`` or side input list means none.
            The official generator writes DAGs: a node may feed several later
            nodes, and a node may feed none.
        where: How to name the program in error messages (e.g. a question index).

    Returns:
        The program. A tree (every node but the last feeds exactly one later
        node) is a plain :class:`Program`: ``to_clevr(from_clevr(nodes))``
        gives back ``nodes`` (in the spelling chosen by ``style``) when they are
        in post-order, and other topological orders come back in post-order
        (see :func:`postorder_positions`).  Any other list keeps its nodes in
        :attr:`Program.graph` (a shared node is one :class:`Call` under each
        reader) and ``to_clevr`` writes it back unchanged.

    Raises:
        ProgramError: Naming the node index and field: not a list of objects,
            a missing or non-string function, ``inputs`` not a list of integers
            that reference earlier nodes, side inputs not strings, nesting
            deeper than :data:`MAX_DEPTH`, or a DAG whose tree expansion has
            more than :data:`MAX_EXPANDED` calls.
    """
    if not isinstance(nodes, (list, tuple)):
        raise ProgramError(
            f"{where}: a CLEVR program must be a list of nodes, got {type(nodes).__name__}"
        )
    if not nodes:
        raise ProgramError(f"{where}: the node list is empty; a program needs at least one node")
    calls: list[Call] = []
    depths: list[int] = []
    sizes: list[int] = []  # calls in each node's tree expansion
    reads = [0] * len(nodes)
    inputs_of: list[tuple[int, ...]] = []
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise ProgramError(f"{where}: node {i} must be an object, got {type(node).__name__}")
        # Fast path: one spelling present; _field sorts out the rest with messages.
        function = node.get("function")
        if function is None or "type" in node:
            function = _field(node, ("function", "type"), i, where, required=True)
        if not isinstance(function, str) or not function:
            raise ProgramError(
                f"{where}: node {i} field 'function'/'type' must be a non-empty string, got {function!r}"
            )
        inputs = node.get("inputs", ())
        if not isinstance(inputs, (list, tuple)):
            raise ProgramError(
                f"{where}: node {i} ({function}) field 'inputs' must be a list of node indices, got {inputs!r}"
            )
        depth = 1
        args = []
        for j in inputs:
            if type(j) is not int:  # bool is an int subclass; reject it too
                raise ProgramError(
                    f"{where}: node {i} ({function}) field 'inputs' holds {j!r}; "
                    f"inputs are integer indices of earlier nodes (0..{i - 1})"
                )
            if not 0 <= j < i:
                raise ProgramError(
                    f"{where}: node {i} ({function}) field 'inputs' references node {j}; "
                    f"a node may only read earlier nodes (0..{i - 1})"
                )
            reads[j] += 1
            args.append(calls[j])
            if depths[j] >= depth:
                depth = depths[j] + 1
        if depth > MAX_DEPTH:
            raise ProgramError(
                f"{where}: node {i} ({function}) is nested deeper than {MAX_DEPTH} calls"
            )
        size = 1 + sum(sizes[j] for j in inputs)
        if size > MAX_EXPANDED and size > i + 1:  # only sharing expands beyond the list
            raise ProgramError(
                f"{where}: node {i} ({function}) expands to more than {MAX_EXPANDED} calls "
                "when its shared nodes are repeated"
            )
        values = node.get("value_inputs")
        if values is None or "side_inputs" in node:
            values = _field(node, ("value_inputs", "side_inputs"), i, where, required=False)
        if values is None:
            values = ()
        elif isinstance(values, (list, tuple)):
            for v in values:
                if not isinstance(v, str):
                    raise ProgramError(
                        f"{where}: node {i} ({function}) field 'value_inputs'/'side_inputs' must "
                        f"be a list of strings, got {values!r}"
                    )
        else:
            raise ProgramError(
                f"{where}: node {i} ({function}) field 'value_inputs'/'side_inputs' must be a "
                f"list of strings, got {values!r}"
            )
        calls.append(Call(function, tuple(args), tuple(values)))
        depths.append(depth)
        sizes.append(size)
        inputs_of.append(tuple(inputs))
    if reads.count(1) == len(nodes) - 1 and not reads[-1]:  # a tree: every node feeds one parent
        return Program(calls[-1])
    return Program(calls[-1], tuple(zip(calls, inputs_of, strict=True)))


def postorder_positions(nodes: Sequence[dict], where: str = "program") -> list[int]:
    """Where each node of a CLEVR node list lands in :func:`to_clevr`'s post-order.

    CLEVR lists are topologically sorted but not always in post-order: the
    ``comparison`` templates, and the questions instantiated from them, list
    both ``filter_unique`` branches before both ``query_size`` nodes.
    ``to_clevr(from_clevr(nodes))`` writes the same tree in post-order, so node
    indices that other data refers to (template constraints such as
    ``OUT_NEQ``, execution traces) must be mapped with this permutation.

    Args:
        nodes: A valid CLEVR node list (see :func:`from_clevr`).
        where: How to name the program in error messages.

    Returns:
        ``positions`` with ``to_clevr(from_clevr(nodes))[positions[i]]``
        being node ``i`` of ``nodes``; ``list(range(len(nodes)))`` when the
        list already is in post-order or is not a tree (a DAG is written
        back in its own order).

    Raises:
        ProgramError: As :func:`from_clevr`, for an invalid node list.
    """
    if from_clevr(nodes, where).graph is not None:  # validates; a DAG is written back as read
        return list(range(len(nodes)))
    positions = [0] * len(nodes)
    order = 0
    # Iterative post-order walk over original indices: (index, children done?)
    stack: list[tuple[int, bool]] = [(len(nodes) - 1, False)]
    while stack:
        i, expanded = stack.pop()
        if expanded:
            positions[i] = order
            order += 1
            continue
        stack.append((i, True))
        for j in reversed(nodes[i].get("inputs", ())):
            stack.append((j, False))
    return positions


def to_clevr(
    program: Program | Call, style: Literal["function", "type"] = "function"
) -> list[dict]:
    """Write a program as a CLEVR node list in ``Program.nodes()`` order.

    A tree is written in post-order; a program read from a DAG node list (see
    :attr:`Program.graph`) is written as it was read, shared and unused nodes
    included.

    Args:
        program: The program (or a bare root call).
        style: ``"function"`` writes ``inputs``, ``function`` and ``value_inputs``
            on every node, as the official CLEVR v1.0 question files do;
            ``"type"`` writes ``inputs``, ``type`` and ``side_inputs`` (only when
            there are some), as the question generator and templates do.

    Returns:
        A list of JSON-ready dicts; the root is last.

    Raises:
        ProgramError: Unknown ``style``.
    """
    if style not in ("function", "type"):
        raise ProgramError(f"unknown CLEVR node style {style!r}; allowed: 'function', 'type'")
    if isinstance(program, Program) and program.graph is not None:
        order = [(call, list(inputs)) for call, inputs in program.graph]
    else:
        root = program.root if isinstance(program, Program) else program
        order = []
        index: dict[int, int] = {}  # id(call) -> node index
        for call in root.walk():
            order.append((call, [index[id(a)] for a in call.args]))
            index[id(call)] = len(order) - 1
    out: list[dict] = []
    for call, inputs in order:
        if style == "function":
            node = {"inputs": inputs, "function": call.function, "value_inputs": list(call.values)}
        else:
            node = {"inputs": inputs, "type": call.function}
            if call.values:
                node["side_inputs"] = list(call.values)
        out.append(node)
    return out


def _tokens_of(calls: list[Call]) -> list[str]:
    return [format_token(c) for c in calls]


def to_postfix_tokens(program: Program | Call) -> list[str]:
    """NS-VQA postfix tokens: children left to right, then the parent (post-order)."""
    root = program.root if isinstance(program, Program) else program
    return _tokens_of(list(root.walk()))


def to_prefix_tokens(program: Program | Call) -> list[str]:
    """NS-VQA prefix tokens: the parent, then its children left to right (pre-order)."""
    root = program.root if isinstance(program, Program) else program
    order: list[Call] = []
    stack = [root]
    while stack:
        call = stack.pop()
        order.append(call)
        stack.extend(reversed(call.args))
    return _tokens_of(order)


def _decode(
    tokens: Sequence[str],
    positions: range,
    catalogue: Catalogue,
    prefix: bool,
    where: str,
) -> Program:
    """Stack decoder shared by both orders.

    Postfix is read left to right. Prefix is read right to left, which visits
    every node after its children with the children in reverse order; popping
    them off the stack restores their left-to-right order either way.
    """
    if not isinstance(tokens, (list, tuple)):
        raise ProgramError(
            f"{where}: tokens must be a list of strings, got {type(tokens).__name__}"
        )
    if not tokens:
        raise ProgramError(f"{where}: the token list is empty; a program needs at least one token")
    stack: list[tuple[Call, int]] = []  # (call, depth)
    order = "prefix" if prefix else "postfix"
    for pos in positions:
        at = f"{where}: token {pos}"
        name, values = parse_token(tokens[pos], where=at)
        if name not in catalogue:
            try:
                catalogue.signature(name)
            except ProgramError as exc:
                raise ProgramError(f"{at} ({tokens[pos]!r}): {exc}") from None
        arity = catalogue.arity(name)
        if len(stack) < arity:
            raise ProgramError(
                f"{at} ({tokens[pos]!r}): {name} takes {arity} input(s) but only {len(stack)} "
                f"complete program(s) are available there in {order} order"
            )
        if arity:
            taken = stack[-arity:]
            del stack[-arity:]
        else:
            taken = []
        if prefix:
            taken.reverse()
        depth = 1 + max((d for _, d in taken), default=0)
        if depth > MAX_DEPTH:
            raise ProgramError(
                f"{at} ({tokens[pos]!r}): program is nested deeper than {MAX_DEPTH} calls"
            )
        stack.append((Call(name, tuple(c for c, _ in taken), values), depth))
    if len(stack) != 1:
        raise ProgramError(
            f"{where}: the {order} tokens form {len(stack)} separate programs, not one; "
            f"tokens are missing a parent or there are extra tokens"
        )
    return Program(stack[0][0])


def from_postfix_tokens(
    tokens: Sequence[str], catalogue: Catalogue | None = None, *, where: str = "tokens"
) -> Program:
    """Decode NS-VQA postfix tokens, with arities from ``catalogue`` (default: CLEVR).

    Raises:
        ProgramError: A malformed or unknown token, too few children for a
            token, or leftover tokens (the message names the token index).
    """
    cat = catalogue if catalogue is not None else Catalogue.default()
    n = len(tokens) if isinstance(tokens, (list, tuple)) else 0
    return _decode(tokens, range(n), cat, prefix=False, where=where)


def from_prefix_tokens(
    tokens: Sequence[str], catalogue: Catalogue | None = None, *, where: str = "tokens"
) -> Program:
    """Decode NS-VQA prefix tokens, with arities from ``catalogue`` (default: CLEVR).

    Raises:
        ProgramError: A malformed or unknown token, too few children for a
            token, or leftover tokens (the message names the token index).
    """
    cat = catalogue if catalogue is not None else Catalogue.default()
    n = len(tokens) if isinstance(tokens, (list, tuple)) else 0
    return _decode(tokens, range(n - 1, -1, -1), cat, prefix=True, where=where)
