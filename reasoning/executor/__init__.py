"""The symbolic CLEVR executor: programs on scene graphs, one at a time or batched.

>>> from reasoning.dsl import parse_program
>>> from perception.synthetic import sample_scene_graph
>>> scene = sample_scene_graph(seed=0)
>>> result = execute(parse_program("count(scene())"), scene)
>>> result.answer == str(len(scene))
True

* :func:`execute` / :class:`SymbolicExecutor` -- one program, one scene, with a trace
  (:class:`ExecutionResult`, :class:`TraceStep`);
* :func:`execute_batch` -- many programs over many scenes, grouped by program
  structure and run as vectorised bitset plans (same answers, far faster);
* :func:`answer_node_lists` -- CLEVR node lists (parsed JSON, DAGs included)
  answered without building a Program per question, single or batched;
* :data:`OPS` / :func:`attach` -- the operation table: implementations attached by
  name to the catalogue's signatures (:mod:`reasoning.dsl.function_table` checks that
  every executor mode covers the catalogue); :func:`register` adds an experiment
  with its own signature;
* :func:`bind_scene` -- the cached per-scene bitset tables.
"""

from reasoning.executor.batched import BatchPlan, compile_batch, execute_batch
from reasoning.executor.bound_scene import BoundScene, bind_scene, clear_binding_cache
from reasoning.executor.node_lists import answer_node_lists
from reasoning.executor.ops import OPS, InvalidExecution, OpSpec, attach, register
from reasoning.executor.result import ExecutionResult, TraceStep, format_answer
from reasoning.executor.sampling import ProgramSampler, random_program, random_programs
from reasoning.executor.scene_table import SceneTable
from reasoning.executor.symbolic import SymbolicExecutor, default_executor, execute

__all__ = [
    "execute",
    "execute_batch",
    "answer_node_lists",
    "compile_batch",
    "BatchPlan",
    "SceneTable",
    "SymbolicExecutor",
    "default_executor",
    "ExecutionResult",
    "TraceStep",
    "format_answer",
    "BoundScene",
    "bind_scene",
    "clear_binding_cache",
    "OPS",
    "OpSpec",
    "attach",
    "register",
    "InvalidExecution",
    "ProgramSampler",
    "random_program",
    "random_programs",
]
