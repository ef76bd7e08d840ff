"""Bad input is one line on stderr, exit code 2, no traceback, and nothing written: a table of bad
inputs walked over every command (output locations, corrupt models, numbers, tokenizer options, JSON
of the wrong type), the boundary's translation of the OS's and libraries' errors (metaxlm.errors),
and one real process."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from _models import make_tiny_xlmr

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"
CORPUS = BENCH / "corpus"
RESULTS = FIX / "results" / "full"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")
    monkeypatch.delenv("METAXLM_DEBUG", raising=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Read-only inputs: a tiny model, the same with a truncated model.safetensors or a broken
    tokenizer.json, a run directory whose meta.json is a list, a run whose only result is a list, a
    benchmark whose stats.json is a list."""
    root = tmp_path_factory.mktemp("bad-inputs")
    good = make_tiny_xlmr(root / "model", layers=1, hidden=16, vocab=120)
    corrupt = root / "corrupt"
    shutil.copytree(good, corrupt)
    w = corrupt / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    badtok = root / "badtok"
    shutil.copytree(good, badtok)
    (badtok / "tokenizer.json").write_text('{"model": 5}')
    badmeta = root / "badmeta"
    shutil.copytree(good, badmeta / "checkpoints" / "final")
    (badmeta / "meta.json").write_text("[1, 2]\n")
    listrun = root / "listrun"
    (listrun / "results").mkdir(parents=True)
    (listrun / "meta.json").write_text(json.dumps({"kind": "eval", "status": "done"}))
    (listrun / "results" / "topic.json").write_text("[1, 2]\n")
    badbench = root / "badbench"
    badbench.mkdir()
    (badbench / "stats.json").write_text("[1, 2]\n")
    return {"model": good, "corrupt": corrupt, "badtok": badtok, "badmeta": badmeta, "listrun": listrun,
            "badbench": badbench}


def _tree(root: Path) -> dict:
    """Every path under ``root`` with its bytes (None for directories): what a failed command must not change."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


TRAIN = ["train", "--model-size", "tiny", "--corpus", "{corpus}"]
TOK = ["tokenizer", "train", "--corpus", "{corpus}"]
TOPIC = ["eval", "topic", "--model", "majority", "--data", "{bench}"]
TATOEBA = ["eval", "tatoeba", "--data", "{bench}", "--device", "cpu"]
BUCC = ["eval", "bucc", "--data", "{bench}", "--device", "cpu"]
ALIGN = ["probe", "align", "--data", "{bench}", "--device", "cpu"]
NAN, INF = float("nan"), float("inf")

# (id, argv, what the line must contain, a --config YAML mapping or None). In argv, {out} is a path that
# does not exist, {file} an existing file (both under the case's work directory, which must be left as
# it was), {cfg} the YAML file; the others are the inputs above.
CASES = [
    # -- the output location: an existing file, or a path below one (every command that writes) -------
    ("train-out-file", [*TRAIN, "--out", "{file}"], "existing file", None),
    ("train-out-below-file", [*TRAIN, "--out", "{file}/run"], "below a file", None),
    ("train-resume-file", ["train", "--resume", "{file}"], "existing file", None),
    ("tokenizer-out-file", [*TOK, "--out", "{file}"], "existing file", None),
    ("tokenizer-out-below-file", [*TOK, "--out", "{file}/tok"], "below a file", None),
    ("topic-out-file", [*TOPIC, "--out", "{file}"], "existing file", None),
    ("tatoeba-out-file", [*TATOEBA, "--model", "{model}", "--out", "{file}"], "existing file", None),
    ("bucc-out-below-file", [*BUCC, "--model", "{model}", "--out", "{file}/x"], "below a file", None),
    ("align-out-file", [*ALIGN, "--model", "{model}", "--out", "{file}"], "existing file", None),
    ("compare-out-file", ["compare", "--preset", "smoke", "--data", "{bench}", "--out", "{file}"], "{file}", None),
    ("report-out-below-file", ["report", "{results}", "--out", "{file}/report.html"], "{file}", None),
    # -- a model whose model.safetensors is truncated or tokenizer.json broken; a meta.json that is a list -
    ("tatoeba-corrupt-weights", [*TATOEBA, "--model", "{corrupt}", "--out", "{out}"], "model.safetensors", None),
    ("bucc-corrupt-weights", [*BUCC, "--model", "{corrupt}", "--out", "{out}"], "model.safetensors", None),
    ("topic-corrupt-weights", ["eval", "topic", "--model", "{corrupt}", "--data", "{bench}", "--out", "{out}"],
     "model.safetensors", None),
    ("align-corrupt-weights", [*ALIGN, "--model", "{corrupt}", "--out", "{out}"], "model.safetensors", None),
    ("tatoeba-corrupt-tokenizer", [*TATOEBA, "--model", "{badtok}", "--out", "{out}"], "tokenizer", None),
    ("topic-corrupt-tokenizer", ["eval", "topic", "--model", "{badtok}", "--data", "{bench}", "--out", "{out}"],
     "tokenizer", None),
    ("align-corrupt-tokenizer", [*ALIGN, "--model", "{badtok}", "--out", "{out}"], "tokenizer", None),
    ("train-corrupt-tokenizer", [*TRAIN, "--tokenizer", "{badtok}", "--out", "{out}"], "tokenizer", None),
    ("tatoeba-meta-json-list", [*TATOEBA, "--model", "{badmeta}", "--out", "{out}"], "meta.json", None),
    # -- numbers: NaN, infinity, negative, out of range, not a number -----------------------------------
    ("train-lr-nan", [*TRAIN, "--lr", "nan", "--out", "{out}"], "lr", None),
    ("train-alpha-negative", [*TRAIN, "--alpha", "-1", "--out", "{out}"], "alpha", None),
    ("train-total-tokens-word", [*TRAIN, "--total-tokens", "many", "--out", "{out}"], "--total-tokens", None),
    ("train-seed-negative", [*TRAIN, "--seed", "-1", "--out", "{out}"], "seed", None),
    *[(f"train-config-{key}-{val}", [*TRAIN, "--config", "{cfg}", "--out", "{out}"], key, {key: val})
      for key, val in [("alpha", NAN), ("adam_eps", NAN), ("adam_eps", 0.0), ("lr", INF), ("lr", -0.001),
                       ("warmup", -0.1), ("warmup", INF), ("weight_decay", -0.01), ("clip", NAN),
                       ("mask_prob", NAN), ("mask_random", -0.1), ("mask_replace", NAN), ("meta_split", NAN),
                       ("val_fraction", NAN), ("adam_betas", [0.9, NAN]), ("checkpoint_points", [NAN]),
                       ("vocab_size", 2 ** 32), ("lr", "1e-3")]],
    ("train-config-phase-lr-inf", [*TRAIN, "--config", "{cfg}", "--out", "{out}"], "lr",
     {"regime": "custom", "phases": [{"name": "a", "lr": INF}]}),
    ("train-config-phase-warmup-negative", [*TRAIN, "--config", "{cfg}", "--out", "{out}"], "warmup",
     {"regime": "custom", "phases": [{"name": "a", "schedule": "linear", "warmup": -1.0}]}),
    ("topic-lr-nan", [*TOPIC, "--lr", "nan", "--out", "{out}"], "lr", None),
    ("topic-lr-negative", [*TOPIC, "--lr", "-1", "--out", "{out}"], "lr", None),
    ("topic-warmup-nan", [*TOPIC, "--warmup", "nan", "--out", "{out}"], "warmup", None),
    ("topic-seeds-word", [*TOPIC, "--seeds", "three", "--out", "{out}"], "--seeds", None),
    ("tatoeba-margin-k-word", [*TATOEBA, "--model", "{model}", "--margin-k", "x", "--out", "{out}"], "--margin-k",
     None),
    ("align-bootstrap-zero", [*ALIGN, "--model", "{model}", "--bootstrap", "0", "--out", "{out}"], "bootstrap",
     None),
    ("align-seed-negative", [*ALIGN, "--model", "{model}", "--seed", "-1", "--out", "{out}"], "seed", None),
    ("train-unknown-option", [*TRAIN, "--bogus", "--out", "{out}"], "--bogus", None),
    ("topic-missing-model", ["eval", "topic", "--out", "{out}"], "--model", None),
    # -- tokenizer train: options the tokenizers library would choke on, or silently ignore ------------
    ("tokenizer-max-lines-0", [*TOK, "--max-lines", "0", "--out", "{out}"], "--max-lines", None),
    ("tokenizer-vocab-2**32-1", [*TOK, "--vocab-size", str(2 ** 32 - 1), "--out", "{out}"], "--vocab-size", None),
    ("tokenizer-vocab-2**32", [*TOK, "--vocab-size", str(2 ** 32), "--out", "{out}"], "--vocab-size", None),
    ("tokenizer-vocab-tiny", [*TOK, "--vocab-size", "3", "--out", "{out}"], "--vocab-size", None),
    ("tokenizer-vocab-word", [*TOK, "--vocab-size", "abc", "--out", "{out}"], "--vocab-size", None),
    ("tokenizer-alpha-nan", [*TOK, "--alpha", "nan", "--out", "{out}"], "--alpha", None),
    ("tokenizer-seed-negative", [*TOK, "--seed", "-1", "--out", "{out}"], "--seed", None),
    ("tokenizer-type-unknown", [*TOK, "--type", "wordpiece", "--out", "{out}"], "--type", None),
    # -- JSON of the wrong type ------------------------------------------------------------------------
    ("report-result-list", ["report", "{listrun}", "--out", "{out}/report.html"], "", None),
    ("data-info-stats-list", ["data", "info", "{badbench}"], "stats.json", None),
    ("compare-seeds-word", ["compare", "--preset", "smoke", "--data", "{bench}", "--seeds", "1,x",
                            "--out", "{out}"], "--seeds", None),
]


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize("name, argv, needle, config", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_one_line(cli, inputs, tmp_path, name, argv, needle, config):
    work = tmp_path / "work"
    work.mkdir()
    (work / "existing").write_text("keep me\n")
    cfg = tmp_path / "config.yaml"
    if config is not None:
        cfg.write_text(yaml.safe_dump(config))
    paths = {"out": work / "out", "file": work / "existing", "cfg": cfg, "bench": BENCH, "corpus": CORPUS,
             "results": RESULTS, **inputs}
    before = _tree(work)
    res = cli(*[a.format(**paths) for a in argv])
    line = _one_error_line(res)
    assert needle.format(**paths) in line, line
    assert _tree(work) == before  # nothing created, nothing changed


# -- an output location that cannot be written (root ignores permission bits: simulated) --------------

WRITERS = {
    "train": [*TRAIN, "--out", "{ro}/run"],
    "tokenizer": [*TOK, "--out", "{ro}/tok"],
    "topic": [*TOPIC, "--out", "{ro}/run"],
    "tatoeba": [*TATOEBA, "--model", "{model}", "--out", "{ro}/run"],
    "bucc": [*BUCC, "--model", "{model}", "--out", "{ro}/run"],
    "align": [*ALIGN, "--model", "{model}", "--out", "{ro}/run"],
}


@pytest.mark.parametrize("fs", ["permissions", "read-only-fs"])
@pytest.mark.parametrize("command", list(WRITERS))
def test_unwritable_output_is_refused_before_any_work(cli, inputs, tmp_path, monkeypatch, command, fs):
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access, real_statvfs = os.access, os.statvfs

    def access(p, mode, *a, **kw):
        if Path(p) == ro and mode & os.W_OK:
            return False
        return real_access(p, mode, *a, **kw)

    def statvfs(p):
        if Path(p) == ro and fs == "read-only-fs":
            return types.SimpleNamespace(f_flag=os.ST_RDONLY)
        return real_statvfs(p)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "statvfs", statvfs)
    res = cli(*[a.format(ro=ro, bench=BENCH, corpus=CORPUS, **inputs) for a in WRITERS[command]])
    line = _one_error_line(res)
    assert str(ro) in line and ("read-only file system" if fs == "read-only-fs" else "permission denied") in line
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_directory_for_real(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = _one_error_line(cli(*[a.format(corpus=CORPUS) for a in TOK], "--out", ro / "tok"))
        assert "permission denied" in line and str(ro) in line and list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# -- the boundary: the OS's errors that name a path are one line; everything else is a bug ------------

@pytest.mark.parametrize("make, needle", [
    (lambda p: PermissionError(errno.EACCES, "Permission denied", str(p)), "permission denied ({p})"),
    (lambda p: OSError(errno.EROFS, "Read-only file system", str(p)), "read-only file system ({p})"),
    (lambda p: OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
    (lambda p: OSError(errno.EDQUOT, "Disk quota exceeded", str(p)), "disk quota exceeded ({p})"),
    (lambda p: IsADirectoryError(errno.EISDIR, "Is a directory", str(p)), "is a directory"),
    (lambda p: FileExistsError(errno.EEXIST, "File exists", str(p)), "already exists"),
    (lambda p: NotADirectoryError(errno.ENOTDIR, "Not a directory", str(p / "sub")), "a file is in the way"),
    (lambda p: OSError(errno.ENOTDIR, "Not a directory", "/tmp/x.tmp", None, str(p / "sub")), "({p})"),
], ids=["EACCES", "EROFS", "ENOSPC", "EDQUOT", "EISDIR", "EEXIST", "ENOTDIR", "rename-ENOTDIR"])
def test_os_errors_at_the_boundary(cli, tmp_path, monkeypatch, make, needle):
    import metaxlm.eval.transfer as transfer

    p = tmp_path / "thing"
    p.write_text("x")

    def fail(*a, **kw):
        raise make(p)

    monkeypatch.setattr(transfer, "run_transfer", fail)
    line = _one_error_line(cli(*[a.format(bench=BENCH) for a in TOPIC], "--out", tmp_path / "o"))
    assert needle.format(p=p) in line, line


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), KeyError("x"), OSError(errno.EIO, "I/O error", "/x"),
                                 PermissionError(errno.EACCES, "Permission denied")],
                         ids=["RuntimeError", "KeyError", "EIO", "EACCES-without-path"])
def test_other_exceptions_stay_bugs(cli, tmp_path, monkeypatch, exc):
    import metaxlm.eval.transfer as transfer

    def fail(*a, **kw):
        raise exc

    monkeypatch.setattr(transfer, "run_transfer", fail)
    with pytest.raises(type(exc)):
        cli(*[a.format(bench=BENCH) for a in TOPIC], "--out", tmp_path / "o")


def test_debug_shows_the_traceback(cli, tmp_path, monkeypatch):
    import metaxlm.eval.transfer as transfer

    def fail(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(transfer, "run_transfer", fail)
    monkeypatch.setenv("METAXLM_DEBUG", "1")
    with pytest.raises(PermissionError):
        cli(*[a.format(bench=BENCH) for a in TOPIC], "--out", tmp_path / "o")


def _raised(fn, path: Path) -> BaseException:
    try:
        fn(path)
    except BaseException as e:  # noqa: BLE001 - the exception is what is tested
        return e
    raise AssertionError("did not raise")


def test_library_errors_name_the_file(inputs, tmp_path):
    from safetensors import safe_open
    from tokenizers import Tokenizer

    from metaxlm.errors import as_user_error

    bad_json = tmp_path / "results.json"
    bad_json.write_text('{"a": 1,')
    not_utf8 = tmp_path / "corpus.txt"
    not_utf8.write_bytes(b"caf\xe9\n")
    bad_tok = tmp_path / "tokenizer.json"
    bad_tok.write_text('{"model": 5}')
    weights = inputs["corrupt"] / "model.safetensors"

    def open_weights(path):
        with safe_open(str(path), framework="numpy"):
            pass

    for path, fn, needle in [
        (bad_json, lambda path: json.loads(path.read_text()), "not valid JSON"),
        (not_utf8, lambda path: path.read_text(encoding="utf-8"), "not UTF-8"),
        (bad_tok, lambda path: Tokenizer.from_file(str(path)), "tokenizers library"),
        (weights, open_weights, "corrupt or truncated weights file"),
    ]:
        err = as_user_error(_raised(fn, path))
        assert err is not None and needle in str(err) and f"({path})" in str(err), err
        assert "\n" not in str(err)
    assert as_user_error(ValueError("math domain error")) is None
    assert as_user_error(Exception("something else")) is None


def test_check_output(tmp_path):
    from metaxlm.errors import UserError
    from metaxlm.paths import check_output

    f = tmp_path / "f.html"
    f.write_text("x")
    assert check_output(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert check_output(tmp_path) == tmp_path  # an existing directory: rundir.create decides
    assert check_output(f, "report file", file=True) == f  # an existing file may be replaced
    with pytest.raises(UserError, match="existing directory"):
        check_output(tmp_path, "report file", file=True)
    with pytest.raises(UserError, match="existing file"):
        check_output(f)
    with pytest.raises(UserError, match="below a file"):
        check_output(f / "a" / "b", "report file", file=True)


def test_config_numbers_are_finite_unless_allowed():
    from dataclasses import dataclass, field

    from metaxlm import config as cfg
    from metaxlm.errors import UserError

    @dataclass(frozen=True)
    class C:
        x: float = 1.0
        y: float = field(default=math.inf, metadata=cfg.NONFINITE)
        z: tuple[float, ...] = ()

    assert cfg.build(C, {"x": 2, "y": math.inf, "z": [1, 2.5]}) == C(2.0, math.inf, (1.0, 2.5))
    assert math.isnan(cfg.build(C, {"y": NAN}).y)
    for data in ({"x": NAN}, {"x": -INF}, {"z": [1.0, INF]}, {"x": "1e-3"}, {"x": 10 ** 400}):
        with pytest.raises(UserError, match=r"^config\.[xz]"):
            cfg.build(C, data)


def test_real_process_stderr_is_one_line(inputs, tmp_path):
    """The installed entry point, as a user runs it: one line on stderr, exit code 2, no traceback."""
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "METAXLM_PROGRESS": "0"}
    p = subprocess.run([sys.executable, "-c", "from metaxlm.cli import main; main()", "eval", "tatoeba",
                        "--model", str(inputs["corrupt"]), "--data", str(BENCH), "--device", "cpu",
                        "--out", str(out)], capture_output=True, text=True, env=env, timeout=180)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: corrupt or truncated weights file"), p.stderr
    assert str(inputs["corrupt"] / "model.safetensors") in lines[0]
    assert not out.exists()
