"""Build step for the optional C extension; everything else is in pyproject.toml.

``reasoning.executor._cnodes`` answers CLEVR node lists in C (see
``reasoning/executor/compiled.py``).  It is optional: without a C compiler or the
Python headers the build prints a warning and the install goes on, and the
executor answers the same questions with its pure-Python path.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "reasoning.executor._cnodes",
            ["reasoning/executor/_cnodes.c"],
            optional=True,
        )
    ]
)
