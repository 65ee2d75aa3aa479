"""Errors of the reasoning layer (members of the framework's one family)."""

from physics.errors import NesyError

__all__ = ["ProgramError", "ExecutionError", "TemplateError"]


class ProgramError(NesyError, ValueError):
    """A program is malformed: bad syntax, unknown function, wrong arity or types.

    The message names the node (its index or position) and what was expected.
    """


class ExecutionError(NesyError, RuntimeError):
    """A program could not run on a scene for a reason other than CLEVR invalidity.

    (An invalid CLEVR execution, such as ``unique`` on a set of two objects, is a
    normal outcome reported in the result, not an exception.)
    """


class TemplateError(NesyError, ValueError):
    """A question template is malformed (names the file, template and field)."""
