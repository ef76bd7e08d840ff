"""OpenMP's wait policy, chosen once per process from the load the machine has when it starts.

torch's CPU kernels run on OpenMP threads (one per core by default) that *spin* between parallel
regions. On a quiet machine that is the fastest choice; next to another busy process a spinning
thread holds a core the other process needs and waits on one it does not get: measured on 2 cores,
the demo's pretraining ran 6.8× slower next to one busy process. ``OMP_WAIT_POLICY=PASSIVE`` (threads
sleep instead of spinning) keeps most of the speed under load but costs 25–50% on a quiet machine.

So the CLI samples the machine for a quarter of a second before torch loads
(:func:`choose_wait_policy`, called by ``metaxlm.cli.main``): when other processes keep at least
half a core busy, it sets ``OMP_WAIT_POLICY=PASSIVE`` for this process; otherwise it leaves OpenMP's
default. The wait policy changes how threads wait, never what they compute (the thread count stays
torch's default), so numbers are the same either way. ``METAXLM_WAIT_POLICY`` overrides the choice
(``auto``, the default; ``passive``; ``active``; ``default`` = leave OpenMP alone), as does an
``OMP_WAIT_POLICY`` the user set. The decision is recorded in every run's ``meta.json``
(:func:`decision`). OpenMP reads its environment once, when torch loads: load that starts later is
not seen (benchmarks/bench_train.py --contention measures both policies and the choice).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import MutableMapping, Sequence

ENV = "METAXLM_WAIT_POLICY"
CHOICES = ("auto", "passive", "active", "default")
BUSY_THRESHOLD = 0.5  # cores kept busy by other processes from which spinning costs more than it gains
SAMPLE_SECONDS = 0.25

_decision: dict | None = None


def read_cpu_times(cpus: Sequence[int] | None = None, path: str | Path = "/proc/stat") -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cpus`` (None: all), or None where /proc/stat is unreadable."""
    try:
        lines = Path(path).read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    want = None if cpus is None else {f"cpu{c}" for c in cpus}
    busy = total = 0.0
    seen = False
    for line in lines:
        parts = line.split()
        if not parts or not parts[0].startswith("cpu") or parts[0] == "cpu":
            continue
        if want is not None and parts[0] not in want:
            continue
        vals = [float(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
        t = sum(vals)
        busy += t - vals[3] - (vals[4] if len(vals) > 4 else 0.0)
        total += t
        seen = True
    return (busy, total) if seen else None


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def compute_busy_cores(before: Sequence[float], after: Sequence[float], n_cpus: int,
                       own_busy: float = 0.0) -> float:
    """Cores kept busy by *other* processes between two (busy, total) samples of /proc/stat.

    ``own_busy`` is this process's share of the busy time (in jiffies), taken out.
    """
    d_busy = after[0] - before[0] - own_busy
    d_total = after[1] - before[1]
    if d_total <= 0:
        return 0.0
    return max(0.0, d_busy / d_total * n_cpus)


def decide(setting: str, user_policy: str | None, busy_cores: float | None) -> tuple[str | None, str]:
    """The OMP_WAIT_POLICY to set (None = leave unset) and the reason, as recorded."""
    if user_policy:
        return None, f"OMP_WAIT_POLICY={user_policy} set by the user"
    if setting == "default":
        return None, f"{ENV}=default: OpenMP's default"
    if setting in ("passive", "active"):
        return setting.upper(), f"{ENV}={setting}"
    if busy_cores is None:
        return None, "auto: machine load unknown (no /proc/stat); OpenMP's default"
    if busy_cores >= BUSY_THRESHOLD:
        return "PASSIVE", f"auto: other processes kept {busy_cores:.1f} cores busy at start"
    return None, f"auto: quiet machine at start ({busy_cores:.1f} cores busy); OpenMP's default"


def choose_wait_policy(environ: MutableMapping[str, str] | None = None, *,
                       sample_seconds: float = SAMPLE_SECONDS) -> dict:
    """Set ``OMP_WAIT_POLICY`` in ``environ`` (default: this process's) as :func:`decide` says; once.

    Does nothing (and says so) when torch is already loaded: OpenMP has read its environment then.
    """
    global _decision
    environ = os.environ if environ is None else environ
    setting = (environ.get(ENV) or "auto").strip().lower()
    if setting not in CHOICES:
        setting = "auto"
    if "torch" in sys.modules:
        _decision = {"omp_wait_policy": environ.get("OMP_WAIT_POLICY") or "default",
                     "reason": "torch was loaded before metaxlm could choose"}
        return _decision
    busy = None
    if setting == "auto" and not environ.get("OMP_WAIT_POLICY"):
        cpus = _cpus()  # the cores torch's threads would run on
        before, t0 = read_cpu_times(cpus), time.process_time()
        if before is not None:
            time.sleep(sample_seconds)
            after = read_cpu_times(cpus)
            own = (time.process_time() - t0) * os.sysconf("SC_CLK_TCK")
            if after is not None:
                busy = compute_busy_cores(before, after, len(cpus), own)
    policy, reason = decide(setting, environ.get("OMP_WAIT_POLICY"), busy)
    if policy is not None:
        environ["OMP_WAIT_POLICY"] = policy
    _decision = {"omp_wait_policy": environ.get("OMP_WAIT_POLICY") or "default", "reason": reason}
    if busy is not None:
        _decision["busy_cores_at_start"] = round(busy, 2)
    return _decision


def decision() -> dict:
    """What this process runs with (for meta.json): the policy and why."""
    if _decision is not None:
        return dict(_decision)
    return {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or "default",
            "reason": "not chosen by metaxlm (Python API or tests)"}
