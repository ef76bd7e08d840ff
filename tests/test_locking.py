"""One writer per run or comparison directory (RUN/.lock), stale locks, and retrying a failed eval run.

The second writers here are real: a lock held by another live process (a small holder process, or a
real ``metaxlm train --resume``), and stale locks left by processes that are gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _train_support import FIXTURE_CORPUS, tiny

from metaxlm import rundir
from metaxlm.errors import UserError
from metaxlm.train import train, train_tokenizer
from tests.conftest import FIXTURES

BENCH = FIXTURES / "bench"
ENV = {"METAXLM_PROGRESS": "0", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
HOLD = ("import sys, time\nfrom metaxlm import rundir\nrundir.acquire_lock(sys.argv[1], command='holder')\n"
        "print('locked', flush=True)\ntime.sleep(120)\n")


@contextlib.contextmanager
def holder(path: Path):
    """Another live process holding ``path``'s lock until the block ends (or it is killed)."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, **ENV})
    try:
        assert p.stdout.readline().strip() == "locked"
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def _dead_pid() -> int:
    """The pid of a process that has finished (and been reaped)."""
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


def _stale_lock(directory: Path, pid: int | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / rundir.LOCK_NAME).write_text(json.dumps({
        "pid": pid or _dead_pid(), "hostname": socket.gethostname(), "started_at": "2020-01-01T00:00:00+00:00",
        "command": "metaxlm gone", "token": "x"}))


def _error_lines(result) -> list[str]:
    return [ln for ln in result.output.splitlines() if ln.startswith("error:")]


# -- the lock itself ----------------------------------------------------------------------------

def test_lock_records_its_owner_and_is_given_back(tmp_path):
    run = rundir.create(tmp_path / "r", {"a": 1}, kind="eval", seed=0, command="metaxlm eval topic")
    owner = json.loads((run.path / ".lock").read_text())
    assert owner["pid"] == os.getpid() and owner["hostname"] == socket.gethostname()
    assert owner["command"] == "metaxlm eval topic" and owner["started_at"]
    run.done()
    assert not (run.path / ".lock").exists()
    run = rundir.create(tmp_path / "f", {}, kind="eval", seed=0)
    run.failed("boom")
    assert not (run.path / ".lock").exists()


def test_locked_block_releases_on_error_and_interrupt(tmp_path):
    for exc in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc):
            with rundir.locked(tmp_path / "c"):
                assert (tmp_path / "c" / ".lock").is_file()
                raise exc
        assert not (tmp_path / "c" / ".lock").exists()


def test_same_process_nests_run_dirs_inside_a_locked_dir(tmp_path):
    cmp = tmp_path / "cmp"
    with rundir.locked(cmp):
        step = rundir.create(cmp / "eval" / "topic" / "m", {}, kind="eval", seed=0)  # its own lock
        assert (step.path / ".lock").is_file()
        step.done()
        with rundir.locked(cmp):  # re-entrant: the outer block keeps the lock
            pass
        assert (cmp / ".lock").is_file()
    assert not (cmp / ".lock").exists()
    d = tmp_path / "d"
    with rundir.locked(d):
        run = rundir.create(d, {}, kind="test", seed=0)  # a run in the locked directory itself
        run.done()  # the `locked` block keeps its lock until it ends
        assert (d / ".lock").is_file()
    assert not (d / ".lock").exists()


def test_second_writer_is_refused_then_takes_the_stale_lock(tmp_path, capsys):
    run = tmp_path / "r"
    with holder(run) as p:
        with pytest.raises(UserError) as e:
            rundir.create(run, {}, kind="eval", seed=0)
        msg = str(e.value)
        assert "\n" not in msg
        assert f"is in use by pid {p.pid} on {socket.gethostname()} since " in msg
        assert "(command holder); wait for it or, if that process is gone, rerun" in msg
        assert sorted(os.listdir(run)) == [".lock"]  # nothing written
        os.kill(p.pid, signal.SIGKILL)  # the owner dies without giving the lock back
        p.wait()
    r = rundir.create(run, {}, kind="eval", seed=0)
    assert "removed a stale lock" in capsys.readouterr().err
    assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
    r.done()


def test_stale_locks_of_gone_processes_are_taken(tmp_path, capsys):
    _stale_lock(tmp_path / "a")  # the pid of a finished process
    rundir.create(tmp_path / "a", {}, kind="eval", seed=0).done()
    # a live pid that now belongs to another process (started at another time): stale too
    _stale_lock(tmp_path / "b", pid=os.getppid())
    lock = json.loads((tmp_path / "b" / ".lock").read_text())
    (tmp_path / "b" / ".lock").write_text(json.dumps({**lock, "pid_start": "1"}))
    rundir.create(tmp_path / "b", {}, kind="eval", seed=0).done()
    assert capsys.readouterr().err.count("removed a stale lock") == 2


def test_locks_that_cannot_be_judged_are_respected(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / ".lock").write_text(json.dumps({"pid": 1, "hostname": "elsewhere", "started_at": "t", "command": "c"}))
    with pytest.raises(UserError, match=r"on elsewhere .*delete .*\.lock \(it was taken on another host"):
        rundir.create(d, {}, kind="eval", seed=0)
    (d / ".lock").write_text("")  # being written right now by another process
    with pytest.raises(UserError, match="being taken by another process"):
        rundir.create(d, {}, kind="eval", seed=0)
    old = time.time() - 3600  # ... or left half-written by a crash long ago
    os.utime(d / ".lock", (old, old))
    rundir.create(d, {}, kind="eval", seed=0).done()


# -- train --resume ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


def _interrupted(tmp_path, tok, monkeypatch, at: int, **kw) -> Path:
    """A training run stopped by Ctrl-C at step ``at`` (state saved, status running)."""
    from _train_support import interrupt_at

    undo = interrupt_at(monkeypatch, at)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny(regime="single", corpus=FIXTURE_CORPUS, tokenizer=tok, **kw), run)
    undo()
    assert json.loads((run / "meta.json").read_text())["status"] == "running"
    assert not (run / ".lock").exists()  # given back on Ctrl-C
    return run


def test_second_train_resume_is_refused_and_writes_nothing(tmp_path, tok, monkeypatch, cli):
    run = _interrupted(tmp_path, tok, monkeypatch, at=6)
    metrics, meta = (run / "metrics.jsonl").read_bytes(), (run / "meta.json").read_bytes()
    with holder(run) as p:
        r = cli("train", "--resume", run)
        assert r.exit_code == 2, r.output
        lines = _error_lines(r)
        assert len(lines) == 1 and f"is in use by pid {p.pid}" in lines[0], r.output
        assert (run / "metrics.jsonl").read_bytes() == metrics and (run / "meta.json").read_bytes() == meta
    # the owner is gone: its lock is stale, removed, and the resume proceeds
    r = cli("train", "--resume", run)
    assert r.exit_code == 0, r.output
    assert "removed a stale lock" in r.output
    assert json.loads((run / "meta.json").read_text())["status"] == "done"
    steps = [x["step"] for x in rundir.iter_metrics(run) if x["type"] == "train"]
    assert steps == sorted(set(steps)) == list(range(1, 13))
    assert not (run / ".lock").exists()


def test_two_real_train_resumes_have_one_writer(tmp_path, tok, monkeypatch, cli):
    run = _interrupted(tmp_path, tok, monkeypatch, at=10, total_tokens=8 * 32 * 120, save_every=5,
                       log_every=5, val_every=100)
    cmd = [sys.executable, "-c", "from metaxlm.cli import main; main()", "train", "--resume", str(run)]
    p = subprocess.Popen(cmd, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:
            try:
                if json.loads((run / ".lock").read_text()).get("pid") == p.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert p.poll() is None, "the first resume ended before the second started"
        r = cli("train", "--resume", run)
        assert r.exit_code == 2, r.output
        assert f"is in use by pid {p.pid}" in r.output and "train --resume" in r.output
        assert p.wait(timeout=120) == 0, p.stderr.read()[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    steps = [x["step"] for x in rundir.iter_metrics(run) if x["type"] == "train"]
    assert steps == sorted(set(steps)) == list(range(5, 121, 5))  # no duplicated records
    assert not (run / ".lock").exists()


# -- compare ----------------------------------------------------------------------------------

MINI = ["compare", "--preset", "smoke", "--data", BENCH, "--regimes", "none", "--no-controls",
        "--set", "analyses=[topic]"]


def test_second_compare_on_a_locked_comparison_is_refused(tmp_path, cli):
    cmp = tmp_path / "cmp"
    with holder(cmp) as p:
        r = cli(*MINI, "--out", cmp)
        assert r.exit_code == 2, r.output
        lines = _error_lines(r)
        assert len(lines) == 1 and f"{cmp} is in use by pid {p.pid}" in lines[0], r.output
        assert sorted(os.listdir(cmp)) == [".lock"]  # no config.yaml, no step started


def test_compare_takes_a_stale_lock_and_locks_its_steps(tmp_path, cli, monkeypatch):
    import metaxlm.eval.transfer as T

    cmp = tmp_path / "cmp"
    _stale_lock(cmp)
    seen = {}
    real = T.evaluate

    def spy(*a, **k):  # a step runs while the comparison and the step hold their own locks
        run = a[-1]
        seen["locks"] = [json.loads((d / ".lock").read_text())["pid"] for d in (cmp, run.path)]
        return real(*a, **k)

    monkeypatch.setattr(T, "evaluate", spy)
    r = cli(*MINI, "--out", cmp)
    assert r.exit_code == 0, r.output
    assert "removed a stale lock" in r.output
    assert seen == {"locks": [os.getpid(), os.getpid()]}
    assert json.loads((cmp / "meta.json").read_text())["status"] == "done"
    assert not list(cmp.rglob(".lock"))


# -- eval: a failed run directory can be retried ------------------------------------------------

def _eval(cli, out, *extra):
    return cli("eval", "topic", "--model", "majority", "--data", BENCH, "--seeds", "0", "--out", out, *extra)


def test_failed_eval_run_is_retried_and_done_is_kept(tmp_path, cli, monkeypatch):
    import metaxlm.eval.transfer as T

    out = tmp_path / "e"
    real = T.evaluate

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(T, "evaluate", broken)
    with pytest.raises(RuntimeError):
        _eval(cli, out)
    monkeypatch.setattr(T, "evaluate", real)
    assert json.loads((out / "meta.json").read_text())["status"] == "failed"
    assert not (out / ".lock").exists()
    r = _eval(cli, out)  # the same command again: starts it again cleanly
    assert r.exit_code == 0, r.output
    assert "status failed" in r.output and "moved to" in r.output
    assert json.loads((out / "meta.json").read_text())["status"] == "done"
    (old,) = (out / "replaced").iterdir()
    assert json.loads((old / "meta.json").read_text())["status"] == "failed"  # kept, not deleted
    assert (old / "config.yaml").is_file() and (out / "results" / "topic.json").is_file()
    before = (out / "meta.json").read_bytes()
    r = _eval(cli, out)
    assert r.exit_code == 2 and "never overwritten" in r.output
    assert (out / "meta.json").read_bytes() == before


def test_killed_eval_run_is_retried_unless_its_writer_lives(tmp_path, cli):
    out = tmp_path / "e"
    run = rundir.create(out, {}, kind="eval", seed=0)
    (out / "partial.txt").write_text("x")
    rundir.release_lock(out)
    _stale_lock(out)  # as if its process was killed mid-run: status running, a stale lock
    assert run.status == "running"
    r = _eval(cli, out)
    assert r.exit_code == 0, r.output
    assert "removed a stale lock" in r.output and "status running" in r.output
    (old,) = (out / "replaced").iterdir()
    assert (old / "partial.txt").is_file()
    # a running eval whose writer is alive is left alone
    live = tmp_path / "live"
    rundir.create(live, {}, kind="eval", seed=0)
    rundir.release_lock(live)
    with holder(live) as p:
        r = _eval(cli, live)
        assert r.exit_code == 2 and f"in use by pid {p.pid}" in r.output
        assert not (live / "replaced").exists()


def test_unfinished_training_run_is_still_resumed_not_replaced(tmp_path):
    run = rundir.create(tmp_path / "t", {}, kind="train", seed=0)
    run.failed("x")
    with pytest.raises(UserError, match="pass --resume"):
        rundir.create(tmp_path / "t", {}, kind="train", seed=0)
    assert not (tmp_path / "t" / "replaced").exists() and not (tmp_path / "t" / ".lock").exists()
