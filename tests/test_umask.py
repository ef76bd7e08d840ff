"""Files and directories metaxlm writes follow the user's umask (0644/0755 under 022, 0600/0700 under 077)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from _train_support import FIXTURE_CORPUS, tiny

from metaxlm import rundir

BENCH = Path(__file__).parent / "fixtures" / "bench"


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after it)."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> int:
        os.umask(mask)
        return mask

    yield set_
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def _bad_modes(roots: list[Path], mask: int) -> list[str]:
    """Every file and directory under ``roots`` whose mode is not 0666/0777 less ``mask``."""
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    bad = []
    for root in roots:
        for p in [root, *root.rglob("*")]:
            if p.is_symlink():
                continue
            want = want_dir if p.is_dir() else want_file
            if _mode(p) != want:
                bad.append(f"{oct(_mode(p))} (want {oct(want)}) {p}")
    return bad


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_helpers_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert rundir.current_umask() == mask
    rundir.atomic_write_text(tmp_path / "a.txt", "x")
    rundir.atomic_write_json(tmp_path / "sub" / "b.json", {"k": 1})
    fd, tmp = rundir.umask_mkstemp(prefix=".t.", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    d = rundir.umask_mkdtemp(prefix=".d.", dir=tmp_path)
    assert _mode(Path(tmp)) == 0o666 & ~mask and _mode(Path(d)) == 0o777 & ~mask
    assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "sub" / "b.json") == 0o666 & ~mask
    # the lock of a run directory too
    run = rundir.create(tmp_path / "run", {"x": 1}, kind="eval", seed=0)
    assert _mode(run.path / rundir.LOCK_NAME) == 0o666 & ~mask
    run.done()
    assert _bad_modes([tmp_path / "run", tmp_path / "sub"], mask) == []
    # a tree written by a library with its own modes is brought in line
    (tmp_path / "lib").mkdir(mode=0o700)
    (tmp_path / "lib" / "w.bin").write_bytes(b"")
    os.chmod(tmp_path / "lib" / "w.bin", 0o600)
    rundir.apply_umask_tree(tmp_path / "lib")
    assert _bad_modes([tmp_path / "lib"], mask) == []


def test_current_umask_does_not_change_it(umask):
    umask(0o027)
    for _ in range(3):
        assert rundir.current_umask() == 0o027
    assert os.umask(0o027) == 0o027


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_tokenizer_training_eval_report_follow_the_umask(tmp_path, umask, cli, monkeypatch, mask):
    """A tokenizer, a training run (checkpoints, token cache, TensorBoard when installed), an eval (and
    its encoding cache) and a report: every file 0666 & ~umask, every directory 0777 & ~umask."""
    from metaxlm.train import train, train_tokenizer
    from metaxlm.trackers import TRACKERS  # noqa: F401 - the tracker module imports without its packages

    monkeypatch.setenv("METAXLM_PROGRESS", "0")
    cache = tmp_path / "cache"
    monkeypatch.setenv("METAXLM_CACHE", str(cache))
    umask(mask)
    out = tmp_path / "out"
    out.mkdir()  # made by the test under the umask, like a user's own directory
    tok = train_tokenizer(FIXTURE_CORPUS, out / "tok", vocab_size=300)
    try:
        import tensorboard  # noqa: F401

        tracker = "tensorboard"
    except ImportError:
        tracker = "none"
    run = train(tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, tracker=tracker), out / "train")
    assert (run / "checkpoints" / "final" / "README.md").is_file()
    if tracker == "tensorboard":
        assert list((run / "tb").iterdir())
    r = cli("eval", "tatoeba", "--model", run, "--data", BENCH, "--out", out / "tatoeba")
    assert r.exit_code == 0, r.output
    r = cli("report", run, out / "tatoeba", "--out", out / "report.html")
    assert r.exit_code == 0, r.output
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert (cache / "tokens").is_dir()
    assert _bad_modes([out, *cache.iterdir()], mask) == []
