"""OpenMP's wait policy chosen from the machine's load at start (metaxlm.cpuload)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from metaxlm import cpuload

STAT = """cpu  {a} 0 0 {i} 0 0 0 0 0 0
cpu0 {a0} 0 0 {i0} 0 0 0 0 0 0
cpu1 {a1} 0 0 {i1} 0 0 0 0 0 0
intr 1
"""


def _stat(tmp_path, name, a0, i0, a1, i1):
    p = tmp_path / name
    p.write_text(STAT.format(a=a0 + a1, i=i0 + i1, a0=a0, i0=i0, a1=a1, i1=i1))
    return p


def test_busy_cores_from_two_samples(tmp_path):
    before = cpuload.read_cpu_times(path=_stat(tmp_path, "b", 100, 100, 100, 100))
    after = cpuload.read_cpu_times(path=_stat(tmp_path, "a", 200, 100, 100, 200))  # cpu0 busy, cpu1 idle
    assert before == (200.0, 400.0) and after == (300.0, 600.0)
    assert cpuload.compute_busy_cores(before, after, 2) == pytest.approx(1.0)
    assert cpuload.compute_busy_cores(before, after, 2, own_busy=50) == pytest.approx(0.5)
    only1 = cpuload.read_cpu_times([1], path=_stat(tmp_path, "c", 5, 7, 11, 13))
    assert only1 == (11.0, 24.0)
    assert cpuload.read_cpu_times(path=tmp_path / "missing") is None
    assert cpuload.compute_busy_cores((1, 1), (1, 1), 2) == 0.0


@pytest.mark.parametrize("setting,user,busy,policy", [
    ("auto", None, 1.0, "PASSIVE"),
    ("auto", None, 0.1, None),
    ("auto", None, None, None),
    ("auto", "ACTIVE", 2.0, None),  # the user's own OMP_WAIT_POLICY wins
    ("passive", None, 0.0, "PASSIVE"),
    ("active", None, 2.0, "ACTIVE"),
    ("default", None, 2.0, None),
])
def test_decide(setting, user, busy, policy):
    got, reason = cpuload.decide(setting, user, busy)
    assert got == policy and reason


def test_choose_sets_the_environment_once_torch_is_not_loaded():
    # in this test process torch may already be loaded: the choice must then leave OpenMP alone
    env = {}
    d = cpuload.choose_wait_policy(env, sample_seconds=0.01)
    if "torch" in sys.modules:
        assert env == {} and "torch was loaded" in d["reason"]
    assert cpuload.decision()["omp_wait_policy"] == d["omp_wait_policy"]


CHILD = ("import json, os; from metaxlm import cpuload; d = cpuload.choose_wait_policy(); "
         "import torch; print(json.dumps([d, os.environ.get('OMP_WAIT_POLICY')]))")


def _child(env_extra=None):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", cpuload.ENV)}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_busy_machine_gets_passive_before_torch_loads():
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        d, env = _child()
    finally:
        for s in spinners:
            s.kill()
            s.wait()
    assert env == "PASSIVE" and d["omp_wait_policy"] == "PASSIVE", d
    assert d["busy_cores_at_start"] >= cpuload.BUSY_THRESHOLD


def test_overrides():
    d, env = _child({cpuload.ENV: "default"})
    assert env is None and d["omp_wait_policy"] == "default"
    d, env = _child({"OMP_WAIT_POLICY": "ACTIVE"})
    assert env == "ACTIVE" and "set by the user" in d["reason"]
