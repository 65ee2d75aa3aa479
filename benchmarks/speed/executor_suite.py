"""The ``executor`` speed suite: questions per second of the symbolic CLEVR executor.

Measured on one process, on synthetic CLEVR scenes
(:func:`perception.synthetic.sample_scene_graphs`) and CLEVR-like questions:
``shapes`` program shapes are drawn at random from the operation table (answerable
on some scene), and each question instantiates one shape with fresh side inputs
so that it is valid on its scene, as CLEVR's 90 templates are instantiated.

Modes, each timed over all questions (best of ``repeats`` round-robin runs, wall
time and process CPU time; the binding cache is cleared before every run, so
binding or tensorising the scenes is included):

* ``single_trace_off`` / ``single_trace_on`` -- :func:`reasoning.executor.execute`
  one question at a time (includes scene binding, answer normalisation and the
  result object; excludes program parsing: programs are already ``Program`` objects);
* ``plain_baseline`` -- :mod:`benchmarks.speed.baseline`, a plain per-question
  interpreter of CLEVR semantics on the JSON forms (scene dicts and node lists,
  prepared before timing);
* ``batched`` -- :func:`reasoning.executor.execute_batch` split into its stages:
  ``encode`` (programs -> structure keys and codes, per-question Python work of
  the kind parsing does), ``tensorise`` (scenes -> bitset arrays, straight from
  the SceneGraphs) and ``run`` (the vectorised plans and answer formatting).  The
  headline ``batched`` rate counts tensorise + run; ``batched_end_to_end``
  counts all three stages.

End to end from parsed JSON (``end_to_end`` in the result, and the table
``nesy bench speed`` prints): ``questions`` official-shaped questions,
``questions_per_scene`` per scene on their own scenes, as the official generator
writes them (composites expanded, two-branch programs as DAGs with a shared and
an unread ``scene`` node, half spelled ``function``/``value_inputs`` and half
``type``/``side_inputs``), answered by
:func:`reasoning.executor.node_lists.answer_node_lists` in single and batched
mode with program decoding (the structure cache is cleared before every run),
scene binding or tensorising, execution and answers all timed, against the
plain interpreter on the same questions (given function-style node lists and
scene dicts, built before timing) and against ``from_clevr`` + ``execute``.
Both sides read node lists decoded by ``json.loads`` from one JSON text, as a
questions file gives them: lists built in this process would share their key
strings with the executor's code and flatter every dict lookup (about 0.14x of
the single-mode ratio: docs/results/executor-speed.md).
``end_to_end.compiled_path`` says whether the C module (:mod:`reasoning.executor.compiled`)
answered, and how many questions each mode left to the Python path.
The speed-ups over the plain interpreter are ``end_to_end.speedup_vs_plain``;
the targets are :data:`E2E_TARGETS`.

All modes must give the same answers; the result reports the disagreements
(expected 0).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from benchmarks.speed.baseline import plain_answer
from benchmarks.speed.config import SpeedConfig
from perception.scene_graph import SceneGraph
from perception.synthetic import sample_scene_graphs
from physics.errors import ConfigError
from reasoning.dsl import Call, Program, expand_composites, from_clevr, to_clevr
from reasoning.executor import (
    OPS,
    ProgramSampler,
    SceneTable,
    bind_scene,
    clear_binding_cache,
    compile_batch,
    compiled,
    default_executor,
)
from reasoning.executor.node_lists import answer_node_lists, clear_structure_cache

__all__ = [
    "executor_suite",
    "make_questions",
    "official_nodes",
    "generator_dag",
    "format_table",
    "E2E_TARGETS",
]

SHAPE_CHECK_SCENES = 8  # scenes a candidate shape is tried on before it joins the pool
E2E_TARGETS = {"single": 2.0, "batched": 8.0}  # end-to-end speed-ups over the plain interpreter
# end-to-end modes; "_warm": the structures were compiled by an earlier run (a long-lived process)
E2E_MODES = ("plain", "single", "batched", "single_warm", "batched_warm", "single_decoded")


def make_questions(
    scenes: list[SceneGraph],
    n: int,
    shapes: int,
    seed: int,
    *,
    progress: bool = True,
    per_scene: int | None = None,
) -> tuple[list[Program], list[int]]:
    """``n`` CLEVR-like questions over ``scenes``: (programs, scene index per program).

    Scenes are drawn at random, or, with ``per_scene``, taken in order with
    ``per_scene`` consecutive questions each (as CLEVR asks about ten per image).
    """
    rng = np.random.default_rng(seed)
    sampler = ProgramSampler()
    m = len(scenes)
    pool: list[Program] = []
    while len(pool) < shapes:
        shape = sampler.sample(rng, scene=scenes[int(rng.integers(m))])
        trials = [scenes[int(rng.integers(m))] for _ in range(SHAPE_CHECK_SCENES)]
        ok = sum(
            default_executor.answer(sampler.instantiate(shape, rng, scene=s, tries=5), s)
            is not None
            for s in trials
        )
        if ok * 2 >= SHAPE_CHECK_SCENES:  # answerable on at least half the scenes, like a template
            pool.append(shape)
    programs: list[Program] = []
    if per_scene is None:
        indices = rng.integers(m, size=n).tolist()
    else:
        indices = [(k // per_scene) % m for k in range(n)]
    for i in tqdm(indices, desc="questions", unit="q", disable=not progress, mininterval=1.0):
        for _ in range(3):
            p = sampler.instantiate(
                pool[int(rng.integers(len(pool)))], rng, scene=scenes[i], tries=5
            )
            if default_executor.answer(p, scenes[i]) is not None:
                break
        programs.append(p)
    return programs, indices


def official_nodes(program: Program, style: str) -> list[dict]:
    """``program`` as the official CLEVR generator writes it: composites expanded, DAG form.

    Template composites (``filter_count`` ...) become their primitive chains,
    and a program with two or more ``scene`` leaves is written as the generator
    writes ``single_or`` and the other two-branch templates: one unread
    ``scene`` node first, and one shared ``scene`` read by every branch.
    """

    def padded(call: Call) -> Call:
        spec = OPS[call.function]
        missing = len(spec.side_inputs) - len(call.values) if spec.optional_side else 0
        return Call(call.function, tuple(map(padded, call.args)), call.values + ("",) * missing)

    return generator_dag(to_clevr(expand_composites(Program(padded(program.root))), style=style))  # type: ignore[arg-type]


def generator_dag(nodes: list[dict]) -> list[dict]:
    """A tree node list as the official generator writes two-branch programs (``single_or`` ...).

    With two or more ``scene`` leaves: one unread ``scene`` node first, then one
    ``scene`` node that every branch reads; otherwise ``nodes`` unchanged.
    """
    key = "function" if "function" in nodes[0] else "type"
    if sum(node[key] == "scene" for node in nodes) < 2:
        return nodes
    scene = next(node for node in nodes if node[key] == "scene")
    out = [dict(scene), dict(scene)]
    index: dict[int, int] = {}
    for i, node in enumerate(nodes):
        if node[key] == "scene":
            index[i] = 1
            continue
        index[i] = len(out)
        out.append({**node, "inputs": [index[j] for j in node["inputs"]]})
    return out


def _timed_rounds(modes: dict[str, Callable[[], object]], repeats: int) -> tuple[dict, dict]:
    """Run every mode once per round, ``repeats`` rounds (round-robin, so load drift hits all
    modes alike); returns ({mode: (fastest wall s, fastest CPU s)}, {mode: last result}).

    CPU time is reported beside wall time because a shared machine preempts the
    process: wall time then includes other processes' work.  The binding cache is
    cleared before every run, and, as :mod:`timeit` does, the cyclic garbage
    collector is run before and paused during each run, so one mode's garbage
    does not bill the next.
    """
    best = {m: (float("inf"), float("inf")) for m in modes}
    last: dict[str, object] = {}
    for _ in range(max(1, repeats)):
        for mode, fn in modes.items():
            clear_binding_cache()
            last.pop(mode, None)
            gc.collect()
            gc.disable()
            try:
                w0, c0 = time.perf_counter(), time.process_time()
                last[mode] = fn()
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            finally:
                gc.enable()
            best[mode] = (min(best[mode][0], wall), min(best[mode][1], cpu))
    return best, last


def _machine() -> dict:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _end_to_end_data(
    n: int, shapes: int, seed: int, per_scene: int
) -> tuple[list[SceneGraph], list[list[dict]], list[list[dict]], list[int], float]:
    """``n`` official-shaped questions, ``per_scene`` per scene, on their own scenes.

    Returns:
        (scenes, node lists -- half in each spelling, generator DAGs included --,
        the plain interpreter's function-style node lists, scene index per
        question, fraction of DAG programs).
    """
    scenes = sample_scene_graphs(-(-n // per_scene), seed=seed)
    programs, idx = make_questions(scenes, n, shapes, seed + 1, per_scene=per_scene)
    nodes = [official_nodes(p, "type" if k % 2 else "function") for k, p in enumerate(programs)]
    plain = [official_nodes(p, "function") for p in programs]
    # what a questions file gives: json.loads output, not lists sharing this process's strings
    nodes, plain = json.loads(json.dumps([nodes, plain]))
    dags = sum(from_clevr(nl).graph is not None for nl in nodes)
    return scenes, nodes, plain, idx, dags / max(1, len(nodes))


def executor_suite(config: SpeedConfig) -> dict:
    """Run the suite (see the module docstring) and return the JSON-ready result."""
    counts = (
        config.questions,
        config.scenes,
        config.shapes,
        config.repeats,
        config.questions_per_scene,
    )
    if min(counts) < 1:
        raise ConfigError(
            "--questions, --scenes, --shapes, --repeats and --questions-per-scene must be at "
            f"least 1, got {', '.join(map(str, counts))}"
        )
    t0 = time.perf_counter()
    scenes = sample_scene_graphs(config.scenes, seed=config.seed)
    programs, idx = make_questions(scenes, config.questions, config.shapes, config.seed + 1)
    generation_s = time.perf_counter() - t0
    n = len(programs)
    pairs = [(p, scenes[i]) for p, i in zip(programs, idx, strict=True)]
    ex = default_executor

    # plain interpreter inputs: JSON forms, built outside the timing (parsing is excluded)
    scene_dicts = [s.to_clevr() for s in scenes]
    node_lists = [to_clevr(p) for p in programs]
    plain_pairs = [(nodes, scene_dicts[i]) for nodes, i in zip(node_lists, idx, strict=True)]

    def single(trace: bool) -> list:
        return [ex.execute(p, s, trace=trace).answer for p, s in pairs]

    # end to end from parsed JSON on official-shaped questions (see _end_to_end_data)
    e2e_scenes, e2e_nodes, e2e_plain_nodes, e2e_idx, dag_fraction = _end_to_end_data(
        config.questions, config.shapes, config.seed + 2, config.questions_per_scene
    )
    e2e_dicts = [s.to_clevr() for s in e2e_scenes]
    n_e2e = len(e2e_nodes)

    runs: dict[str, dict] = {}  # what the compiled path did, per mode (the last run of each)

    def e2e(batched: bool, cold: bool = True) -> list:
        if cold:
            clear_structure_cache()  # compiling each structure is part of decoding
        out = answer_node_lists(e2e_nodes, e2e_scenes, e2e_idx, batched=batched)
        runs[("batched" if batched else "single") + ("" if cold else "_warm")] = dict(
            compiled.LAST_RUN
        )
        return out

    plan = compile_batch(programs)
    table = SceneTable(scenes)
    timings, last = _timed_rounds(
        {
            "e2e_plain": lambda: [
                plain_answer(nl, e2e_dicts[i])
                for nl, i in zip(e2e_plain_nodes, e2e_idx, strict=True)
            ],
            # each warm run follows the cold run of its mode, which compiled its structures
            "e2e_single": lambda: e2e(False),
            "e2e_single_warm": lambda: e2e(False, cold=False),
            "e2e_batched": lambda: e2e(True),
            "e2e_batched_warm": lambda: e2e(True, cold=False),
            "e2e_single_decoded": lambda: [
                ex.execute(from_clevr(nl), e2e_scenes[i], trace=False).answer
                for nl, i in zip(e2e_nodes, e2e_idx, strict=True)
            ],
            "single_trace_off": lambda: single(False),
            "single_trace_on": lambda: single(True),
            "plain_baseline": lambda: [plain_answer(nl, sd) for nl, sd in plain_pairs],
            "batched_encode": lambda: compile_batch(programs),
            "batched_tensorise": lambda: SceneTable(scenes),
            "batched_run": lambda: plan.run(table, idx, scenes),
            "bind_all_scenes": lambda: [bind_scene(s) for s in scenes],
        },
        config.repeats,
    )
    answers: dict[str, list] = {
        "single_trace_off": last["single_trace_off"],  # type: ignore[dict-item]
        "single_trace_on": last["single_trace_on"],  # type: ignore[dict-item]
        "plain_baseline": last["plain_baseline"],  # type: ignore[dict-item]
        "batched": last["batched_run"],  # type: ignore[dict-item]
    }

    def rates(k: int) -> dict[str, float]:
        t = {name: v[k] for name, v in timings.items()}
        return {
            "single_trace_off": round(n / t["single_trace_off"], 1),
            "single_trace_on": round(n / t["single_trace_on"], 1),
            "plain_baseline": round(n / t["plain_baseline"], 1),
            "batched": round(n / (t["batched_tensorise"] + t["batched_run"]), 1),
            "batched_run_only": round(n / t["batched_run"], 1),
            "batched_end_to_end": round(
                n / (t["batched_encode"] + t["batched_tensorise"] + t["batched_run"]), 1
            ),
        }

    def differ(a: list) -> int:
        return sum(x != y for x, y in zip(a, answers["single_trace_off"], strict=True))

    wall_rates, cpu_rates = rates(0), rates(1)

    def e2e_rates(k: int) -> dict[str, float]:
        return {
            m: round(n_e2e / timings[f"e2e_{m}"][k], 1)
            for m in E2E_MODES
        }

    e2e_wall, e2e_cpu = e2e_rates(0), e2e_rates(1)
    e2e_truth = last["e2e_plain"]
    end_to_end = {
        "questions": n_e2e,
        "scenes": len(e2e_scenes),
        "questions_per_scene": config.questions_per_scene,
        "structures": len({tuple(n.get("function", n.get("type")) for n in nl) for nl in e2e_nodes}),
        "dag_fraction": round(dag_fraction, 4),
        "valid_fraction": round(sum(a is not None for a in e2e_truth) / n_e2e, 4),  # type: ignore[union-attr]
        "questions_per_second": e2e_wall,
        "questions_per_second_cpu": e2e_cpu,
        "speedup_vs_plain": {
            m: {
                "wall": round(e2e_wall[m] / e2e_wall["plain"], 2),
                "cpu": round(e2e_cpu[m] / e2e_cpu["plain"], 2),
            }
            for m in E2E_MODES[1:]
        },
        "targets_vs_plain": dict(E2E_TARGETS),
        # whether the C module answered (reasoning.executor.compiled) and how many questions
        # it left to the Python path, per mode
        "compiled_path": {**compiled.status(), "runs": runs},
        "disagreements_with_plain": {
            m: sum(x != y for x, y in zip(last[f"e2e_{m}"], e2e_truth, strict=True))  # type: ignore[call-overload]
            for m in E2E_MODES[1:]
        },
        "included": "from parsed JSON: node lists (half function/value_inputs, half type/side_inputs, "
        "generator DAGs) and SceneGraphs; single and batched include decoding (compiling each "
        "structure: the cache is cleared per run), scene binding or tensorising, execution and "
        "answers; plain_baseline gets function-style node lists and scene dicts prepared outside "
        "the timing; *_warm reuse the structures compiled by an earlier run; single_decoded is "
        "from_clevr + execute per question",
    }
    return {
        "suite": "executor",
        "questions": n,
        "scenes": len(scenes),
        "shapes": config.shapes,
        "structures_after_canonicalisation": len(plan.groups),
        "seed": config.seed,
        "repeats": config.repeats,
        "valid_fraction": round(sum(a is not None for a in answers["single_trace_off"]) / n, 4),
        "mean_program_nodes": round(float(np.mean([len(p) for p in programs])), 2),
        "questions_per_second": wall_rates,
        "questions_per_second_cpu": cpu_rates,
        "seconds_wall": {k: round(v[0], 4) for k, v in timings.items()},
        "seconds_cpu": {k: round(v[1], 4) for k, v in timings.items()},
        "question_generation_seconds": round(generation_s, 3),
        "speedup_single_vs_plain": {
            "wall": round(wall_rates["single_trace_off"] / wall_rates["plain_baseline"], 2),
            "cpu": round(cpu_rates["single_trace_off"] / cpu_rates["plain_baseline"], 2),
        },
        "speedup_batched_vs_single": {
            "wall": round(wall_rates["batched"] / wall_rates["single_trace_off"], 2),
            "cpu": round(cpu_rates["batched"] / cpu_rates["single_trace_off"], 2),
        },
        "end_to_end": end_to_end,
        "disagreements_with_single": {
            "single_trace_on": differ(answers["single_trace_on"]),
            "plain_baseline": differ(answers["plain_baseline"]),
            "batched": differ(answers["batched"]),
        },
        "included": {
            "single": "scene binding (cache cleared per run), execution, answer normalisation; not parsing",
            "plain_baseline": "execution on CLEVR JSON dicts; not building those dicts",
            "batched": "scene tensorisation (SceneGraphs -> bitset arrays) + vectorised run + answer "
            "formatting; batched_end_to_end adds program encoding (Program -> key + codes, grouping)",
        },
        "machine": _machine(),
    }


def format_table(result: dict) -> str:
    """The end-to-end figures of an executor suite result as a small terminal table."""
    e2e = result["end_to_end"]
    rates = e2e["questions_per_second"]
    lines = [
        f"end to end from parsed JSON: {e2e['questions']} official-shaped questions on "
        f"{e2e['scenes']} scenes ({e2e['questions_per_scene']} per scene, "
        f"{e2e['dag_fraction']:.0%} DAGs), seed {result['seed']}",
        f"{'mode':<16}{'questions/s':>14}{'x plain (wall)':>16}{'x plain (cpu)':>15}{'target':>8}"
        f"{'differ':>8}",
    ]
    for mode in E2E_MODES:
        speedup = e2e["speedup_vs_plain"].get(mode, {"wall": 1.0, "cpu": 1.0})
        target = E2E_TARGETS.get(mode)
        differ = e2e["disagreements_with_plain"].get(mode, 0)
        lines.append(
            f"{mode:<16}{rates[mode]:>14,.0f}{speedup['wall']:>16.2f}{speedup['cpu']:>15.2f}"
            f"{'' if target is None else f'{target:.0f}x':>8}{differ:>8}"
        )
    path = e2e.get("compiled_path")
    if path is not None:  # below the rows, not between the header and them
        used = {m: r for m, r in path["runs"].items() if r.get("compiled")}
        lines.append(
            "compiled path: "
            + (
                "used (" + ", ".join(f"{m}: {r['fallback']} left to Python" for m, r in used.items()) + ")"
                if used
                else "not used (" + ("turned off" if path["available"] else "C module not built") + ")"
            )
        )
    return "\n".join(lines)
