"""The Ray fan-out backend on a local Ray instance (2 CPUs, no dashboard) started by this module.

Run with the ``ray`` extra installed (``pip install -e '.[dev,ray]'``); without it
every test here is skipped, saying so.  Selected alone with ``-m ray``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from physics.errors import ConfigError
from physics.fanout import make_fanout

ray = pytest.importorskip("ray", reason="the Ray backend needs the ray extra: pip install -e '.[ray]'")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray instance for the module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _square(x: int) -> int:
    return x * x


def _dies_once(job: tuple[str, int]) -> int:
    """Kills its own worker process the first time it sees item 3 (a marker file remembers)."""
    folder, x = job
    marker = Path(folder) / f"seen_{x}"
    if x == 3 and not marker.exists():
        marker.write_text("killed here")
        os.kill(os.getpid(), signal.SIGKILL)
    (Path(folder) / f"done_{x}").write_text("")
    return x * x


def test_ray_returns_results_in_input_order():
    fan = make_fanout("ray", 2)
    assert list(fan.imap(_square, range(20))) == [x * x for x in range(20)]


def test_a_killed_ray_worker_loses_only_its_own_item_which_is_redone(tmp_path):
    fan = make_fanout("ray", 2)
    assert list(fan.imap(_dies_once, [(str(tmp_path), x) for x in range(6)])) == [x * x for x in range(6)]
    assert (tmp_path / "seen_3").exists()  # the worker did die on item 3
    assert sorted(p.name for p in tmp_path.glob("done_*")) == [f"done_{x}" for x in range(6)]


def test_address_needs_the_ray_backend():
    with pytest.raises(ConfigError, match="--backend ray"):
        make_fanout("process", 2, address="auto")


def test_clevr_build_on_ray_is_byte_identical_to_serial(tmp_path, shared_clevr):
    from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr

    common = dict(n=2, seed=5, split="val", questions_per_scene=2, templates=str(shared_clevr / "templates"),
                  width=160, height=120, min_pixels=40)
    build_clevr(ClevrDataConfig(out=str(tmp_path / "serial"), backend="serial", **common), progress=False)
    build_clevr(ClevrDataConfig(out=str(tmp_path / "ray"), backend="ray", workers=2, **common), progress=False)
    assert _files(tmp_path / "ray") == _files(tmp_path / "serial")


def test_dynamics_build_on_ray_is_byte_identical_to_serial(tmp_path):
    from benchmarks.datasets.dynamics_builder import DynamicsDataConfig, build_dynamics_split

    common = dict(world="cradle", n=3, seed=2, steps=8, split="valid")
    build_dynamics_split(DynamicsDataConfig(out=str(tmp_path / "serial"), backend="serial", **common), progress=False)
    build_dynamics_split(DynamicsDataConfig(out=str(tmp_path / "ray"), backend="ray", workers=2, **common),
                         progress=False)
    assert _files(tmp_path / "ray") == _files(tmp_path / "serial")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_eval_clevr_perception_on_ray_matches_one_process(tmp_path):
    from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
    from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr

    build_clevr(ClevrDataConfig(n=2, out=str(tmp_path), seed=3, split="test", questions_per_scene=4), progress=False)
    one = evaluate_clevr(ClevrEvalConfig(data=str(tmp_path), parser="gt", threads=1), progress=False)
    on_ray = evaluate_clevr(ClevrEvalConfig(data=str(tmp_path), parser="gt", backend="ray", workers=2), progress=False)
    assert {k: v for k, v in on_ray.items() if k not in ("seconds", "config")} == \
        {k: v for k, v in one.items() if k not in ("seconds", "config")}


def test_eval_clevr_nscl_on_ray_gives_one_processs_soft_answers(tmp_path, monkeypatch):
    # Ray's workers send each scene's concept scores back, so NS-CL's answers stay soft, as in one process
    from benchmarks.datasets.clevr_builder import ClevrDataConfig, build_clevr
    from benchmarks.eval_clevr import ClevrEvalConfig, evaluate_clevr
    from reasoning.nsvqa import NSVQA

    def no_fallback(*args, **kwargs):
        raise AssertionError("an NS-CL scene was answered by the symbolic fallback: its concept scores were lost")

    build_clevr(ClevrDataConfig(n=2, out=str(tmp_path), seed=3, split="test", questions_per_scene=4), progress=False)
    monkeypatch.setattr(NSVQA, "answer_programs", staticmethod(no_fallback))
    common = {"data": str(tmp_path), "model": "nscl", "parser": "gt", "threads": 1}
    one = evaluate_clevr(ClevrEvalConfig(**common), progress=False)
    on_ray = evaluate_clevr(ClevrEvalConfig(**common, backend="ray", workers=2), progress=False)
    assert {k: v for k, v in on_ray.items() if k not in ("seconds", "config")} == \
        {k: v for k, v in one.items() if k not in ("seconds", "config")}
