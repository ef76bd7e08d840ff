"""SIGKILL of a real `metaxlm compare --preset smoke` at several points, then the same command again:
the comparison must finish with the same results as an uninterrupted run.

The killed command runs in a child process with a small hook that, at the chosen point, writes a
marker file and waits; the test then SIGKILLs the child from outside (no cleanup, no atexit: its
locks, temporary directories and half-finished runs stay behind), checks what the kill left on
disk (steps.json says the step is running), and starts the next command. Kill points, in order:

1. ``tokenizer``: the shared tokenizer is trained and saved into its temporary directory, not yet
   renamed into place;
2. ``train-early``: pretraining ``single`` at step 3, before its first saved state (the run restarts);
3. ``train-late``: pretraining ``meta`` at step 17 (state saved at step 15, the ``english`` phase
   checkpoint written): the run resumes from its state;
4. ``analysis``: ``tatoeba:meta-s0`` after its result file was written, before the run is marked
   done: the analysis is redone.

Both comparisons use ``--set train.save_every=5`` (the smoke preset saves every 50 steps, more
than its 23) so that point 3 exercises a resume from a saved state; saving does not change results.
About 60-90 s on 2 CPU cores (two smoke comparisons plus four restarts).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.conftest import FIXTURES

BENCH = FIXTURES / "bench"
ARGS = ["compare", "--preset", "smoke", "--data", str(BENCH), "--set", "train.save_every=5"]

HOOK = r'''
import os, time
from pathlib import Path

_point, _marker = os.environ.get("KILL_POINT"), os.environ.get("KILL_MARKER")


def _pause(what):
    Path(_marker).write_text(what)
    while True:  # wait for the SIGKILL
        time.sleep(1)


if _point == "tokenizer":
    import metaxlm.train.tokenizer as T

    _real_save = T.save_tokenizer

    def _save(tok, directory):
        _real_save(tok, directory)
        _pause(f"tokenizer saved into {directory}")

    T.save_tokenizer = _save
elif _point in ("train-early", "train-late"):
    import metaxlm.train.loop as L

    _real_lr = L.lr_at
    _at = (("single", 3) if _point == "train-early" else ("meta", 17))

    def _lr_at(phases, step, warmup):
        regime = "meta" if len(phases) == 2 else "single" if phases[0].name == "multilingual" else "en-only"
        if (regime, step) == _at:
            _pause(f"{regime} at step {step}")
        return _real_lr(phases, step, warmup)

    L.lr_at = _lr_at
elif _point == "analysis":
    from metaxlm import rundir

    _real_write = rundir.RunDir.write_result

    def _write(self, name, payload):
        path = _real_write(self, name, payload)
        if name == "tatoeba" and self.path.name == "meta-s0":
            _pause(f"tatoeba result written to {path}")
        return path

    rundir.RunDir.write_result = _write

from metaxlm.cli import main

main()
'''

# keys whose values are timings or machine facts, not results
DROP = {"seconds", "wall_seconds", "timing", "versions", "created_at", "started_at", "finished_at"}


def _env(cache: Path, **extra) -> dict:
    return {**os.environ, "METAXLM_PROGRESS": "0", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "METAXLM_CACHE": str(cache), **extra}


def _steps(cmp: Path) -> dict:
    return json.loads((cmp / "steps.json").read_text())


def _run_to_end(cmp: Path, cache: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-c", HOOK, *ARGS, "--out", str(cmp)], env=_env(cache),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _run_and_kill(cmp: Path, cache: Path, point: str, tmp: Path) -> tuple[str, str]:
    """Start the command with the hook at ``point``; SIGKILL it when it gets there."""
    marker = tmp / f"marker-{point}"
    err = tmp / f"stderr-{point}.txt"
    with open(err, "w") as f:
        p = subprocess.Popen([sys.executable, "-c", HOOK, *ARGS, "--out", str(cmp)], stdout=subprocess.DEVNULL,
                             stderr=f, env=_env(cache, KILL_POINT=point, KILL_MARKER=str(marker)))
        try:
            deadline = time.time() + 240
            while not marker.exists() and p.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            assert marker.exists(), f"{point}: the command never got there (exit {p.poll()}): " \
                                    f"{err.read_text()[-3000:]}"
            os.kill(p.pid, signal.SIGKILL)
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert p.returncode == -signal.SIGKILL
    return marker.read_text(), err.read_text()


def _normalise(obj, roots: dict[str, str], drop: set[str]):
    if isinstance(obj, dict):
        return {k: _normalise(v, roots, drop) for k, v in obj.items() if k not in drop}
    if isinstance(obj, list):
        return [_normalise(v, roots, drop) for v in obj]
    if isinstance(obj, str):
        for root, name in roots.items():
            obj = obj.replace(root, name)
        return re.sub(r"(tokens/[a-z]{2,3})-[0-9a-f]{24}", r"\1-<KEY>", obj) if "<KEY>" in roots.values() else obj
    return obj


def _results(cmp: Path, cache: Path, tokenizer_noise: bool) -> dict[str, dict]:
    roots = {str(cmp): "<CMP>", str(cache): "<CACHE>"}
    drop = set(DROP)
    if tokenizer_noise:  # token cache entries are keyed by the tokenizer's hash
        roots["<KEY>"] = "<KEY>"
        drop.add("tokenizer_sha256")
    out = {}
    for p in sorted(cmp.rglob("results/*.json")):
        rel = p.relative_to(cmp)
        if rel.parts[0] != "replaced":
            out[str(rel)] = _normalise(json.loads(p.read_text()), roots, drop)
    return out


def _tokenizer_noise(a: Path, b: Path) -> bool:
    """Whether two tokenizer.json differ, and then only by trainer noise: the same pieces in the same
    order, scores within 1e-9. The `tokenizers` Unigram trainer iterates hash maps in a per-process
    random order, so its float sums differ in the last digits between processes (measured on the smoke
    tokenizer: 2 of 6 fresh processes differ, in the minimum score, -9.085942345354177 vs
    -9.08594234535417), killed or not; the token cache then keys the same tokens under another hash."""
    ta, tb = json.loads(a.read_text()), json.loads(b.read_text())
    if ta == tb:
        return False
    va, vb = ta["model"].pop("vocab"), tb["model"].pop("vocab")
    assert ta == tb, "the tokenizers differ beyond their scores"
    assert [p for p, _ in va] == [p for p, _ in vb], "the tokenizers' pieces differ"
    assert max(abs(x - y) for (_, x), (_, y) in zip(va, vb)) < 1e-9, "the tokenizers' scores differ"
    return True


def _diff(a, b, where=""):
    """The first path where two normalised results differ (for a readable failure)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}: only in {'killed' if k in b else 'uninterrupted'}"
            d = _diff(a[k], b[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = _diff(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{where}: {a!r} != {b!r}"


def test_killed_comparison_finishes_with_the_same_results(tmp_path):
    from safetensors.torch import load_file

    ref, ref_cache = tmp_path / "ref", tmp_path / "cache-ref"
    cmp, cache = tmp_path / "killed", tmp_path / "cache-killed"

    # 1. during tokenizer training: saved into its temporary directory, not renamed into place
    where, _ = _run_and_kill(cmp, cache, "tokenizer", tmp_path)
    assert _steps(cmp)["tokenizer"]["status"] == "running", where
    assert not (cmp / "tokenizer").exists() and list(cmp.glob(".tokenizer.*"))
    assert (cmp / ".lock").is_file()  # left by the killed process

    # 2. pretraining `single` at step 3, before any saved state
    where, err = _run_and_kill(cmp, cache, "train-early", tmp_path)
    assert "removed a stale lock" in err  # the dead process's CMP/.lock was taken over
    assert _steps(cmp)["train:single-s0"]["status"] == "running", where
    single = cmp / "train" / "single-s0"
    assert not (single / "state").exists() and (single / ".lock").is_file()

    # 3. pretraining `meta` at step 17: state saved at step 15, metrics beyond it
    where, _ = _run_and_kill(cmp, cache, "train-late", tmp_path)
    assert _steps(cmp)["train:single-s0"]["status"] == "done"
    assert _steps(cmp)["train:meta-s0"]["status"] == "running", where
    meta = cmp / "train" / "meta-s0"
    assert (meta / "state" / "state.pt").is_file() and (meta / "checkpoints" / "english").is_dir()
    assert not (meta / "checkpoints" / "final").exists()
    assert json.loads((meta / "meta.json").read_text())["status"] == "running"

    # 4. an analysis whose result file is written but whose run is not marked done
    where, _ = _run_and_kill(cmp, cache, "analysis", tmp_path)
    tato = cmp / "eval" / "tatoeba" / "meta-s0"
    assert _steps(cmp)["tatoeba:meta-s0"]["status"] == "running", where
    assert (tato / "results" / "tatoeba.json").is_file()
    assert json.loads((tato / "meta.json").read_text())["status"] == "running"

    # the same command again: it finishes
    _run_to_end(cmp, cache)
    steps = _steps(cmp)
    assert all(v["status"] == "done" for v in steps.values()), steps
    assert json.loads((cmp / "meta.json").read_text())["status"] == "done"
    assert json.loads((meta / "meta.json").read_text())["resumed"][0]["step"] == 15  # from its saved state
    assert not list(cmp.rglob(".lock"))  # no lock left behind
    assert not list(cmp.glob(".tokenizer.*"))  # nor the killed tokenizer step's temporary directory
    assert (cmp / "report.html").is_file()

    # ... with the results of an uninterrupted run
    _run_to_end(ref, ref_cache)
    noise = _tokenizer_noise(ref / "tokenizer" / "tokenizer.json", cmp / "tokenizer" / "tokenizer.json")
    got, want = _results(cmp, cache, noise), _results(ref, ref_cache, noise)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], f"{name}: {_diff(want[name], got[name])}"
    for regime in ("single", "meta", "en-only", "none"):
        for ck in ("final", *(("english",) if regime == "meta" else ())):
            wa = load_file(str(ref / "train" / f"{regime}-s0" / "checkpoints" / ck / "model.safetensors"))
            wb = load_file(str(cmp / "train" / f"{regime}-s0" / "checkpoints" / ck / "model.safetensors"))
            assert all(torch.equal(wa[k], wb[k]) for k in wa), f"{regime} {ck}"
