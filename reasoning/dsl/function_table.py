"""One function table: the catalogue gives each function's signature, every mode its implementation.

The catalogue (:class:`~reasoning.dsl.catalogue.Catalogue`, ``clevr_functions.json``)
is the one place a function's signature is written. Each way of running
programs -- an *executor mode* -- keeps its implementations in a table keyed by
catalogue function name and declares that table here with :func:`register_mode`,
next to the implementations:

==================  =================================================  ================================
mode                implementations                                    declared in
==================  =================================================  ================================
``symbolic``        one function per op, run by the traced executor    ``reasoning.executor.ops``
``fast single``     fused closures (others: the symbolic function)     ``reasoning.executor.fast_eval``
``batched``         encoders to vectorised bitset plans                ``reasoning.executor.encode``
``node lists``      generated code per node-list structure             ``reasoning.executor.node_lists``
``question engine`` the generator's partial-program evaluator          ``reasoning.questions.search``
``soft``            NS-CL's quasi-symbolic ops over concept scores     ``reasoning.executor.soft``
``video symbolic``  CLEVRER's ops over a video scene (CLEVRER catalogue) ``reasoning.executor.video_ops``
==================  =================================================  ================================

A mode implements one catalogue, named by its ``dataset`` tag: CLEVR's modes
cover ``CLEVR-v1.0`` (the default), the video mode covers ``CLEVRER-v1.0``
(:meth:`~reasoning.dsl.Catalogue.clevrer`), whose operation names overlap CLEVR's
with other value types (``count`` of events).

:func:`coverage` compares the declared tables with a catalogue; the test
``tests/reasoning/test_function_table.py`` fails when a catalogue function has
no implementation in some mode or a mode implements a function the catalogue
does not know. Adding an operation (CLEVRER's, NS-CL's soft executor's) is one
catalogue entry plus one implementation per mode; a new mode is one
:func:`register_mode` call.

>>> from reasoning.dsl import Catalogue
>>> coverage(Catalogue.default(), {"toy": ["scene", "count", "frobnicate"]})[:1]
["mode 'toy' implements 'frobnicate', which the catalogue does not know"]
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from types import MappingProxyType

from physics.errors import DataError
from reasoning.dsl.catalogue import Catalogue

__all__ = ["register_mode", "modes", "implemented", "coverage", "check_coverage", "CLEVR"]

FunctionNames = Callable[
    [], Collection[str]
]  # reads a mode's table when called (tables may change)

CLEVR = "CLEVR-v1.0"  # the dataset tag of the default catalogue

_MODES: dict[str, FunctionNames] = {}
_DATASETS: dict[str, str] = {}  # mode -> dataset tag of the catalogue it implements


def register_mode(name: str, functions: FunctionNames, *, dataset: str = CLEVR) -> None:
    """Declare an executor mode and how to read the function names it implements.

    Args:
        name: The mode, e.g. ``"batched"``; registering a name again replaces it.
        functions: Called with no argument, returns the names of the catalogue
            functions this mode implements (read at call time, so operations
            registered later are seen).
        dataset: The ``dataset`` tag of the catalogue the mode implements.
    """
    if not name:
        raise DataError("register_mode: a mode needs a non-empty name")
    _MODES[name] = functions
    _DATASETS[name] = dataset


def modes() -> Mapping[str, FunctionNames]:
    """The declared modes (import a mode's module to declare it), by name."""
    return MappingProxyType(_MODES)


def implemented(dataset: str = CLEVR) -> dict[str, frozenset[str]]:
    """Mode name -> the function names it implements now, for the modes of one catalogue."""
    return {name: frozenset(read()) for name, read in _MODES.items() if _DATASETS.get(name, CLEVR) == dataset}


def coverage(catalogue: Catalogue, tables: Mapping[str, Iterable[str]]) -> list[str]:
    """Where the mode tables and the catalogue disagree (empty when they agree).

    Args:
        catalogue: The source of the function names.
        tables: Mode name -> names of the functions it implements (as
            :func:`implemented` returns, or any table keyed by function name).

    Returns:
        One line per disagreement, e.g. ``"mode 'batched' lacks 'count_pairs'"``
        or ``"mode 'fast single' implements 'frobnicate', which the catalogue does
        not know"``; modes in name order, functions in catalogue order.
    """
    problems: list[str] = []
    known = catalogue.names
    for mode in sorted(tables):
        names = set(tables[mode])
        problems.extend(
            f"mode {mode!r} implements {n!r}, which the catalogue does not know"
            for n in sorted(names - set(known))
        )
        problems.extend(f"mode {mode!r} lacks {n!r}" for n in known if n not in names)
    return problems


def check_coverage(catalogue: Catalogue, tables: Mapping[str, Iterable[str]] | None = None) -> None:
    """Raise unless every mode implements exactly the catalogue's functions.

    Args:
        catalogue: The source of the function names.
        tables: Mode tables to compare; default: every declared mode of the catalogue's
            dataset (:func:`implemented`).

    Raises:
        DataError: listing every disagreement (see :func:`coverage`).
    """
    problems = coverage(catalogue, implemented(catalogue.dataset or CLEVR) if tables is None else tables)
    if problems:
        raise DataError(
            f"function table of {catalogue.dataset or 'the catalogue'} disagrees: "
            + "; ".join(problems)
        )
