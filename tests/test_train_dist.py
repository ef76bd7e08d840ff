"""Multi-process training (torchrun, gloo on CPU) and a resume after SIGKILL, through real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from _train_support import FIXTURE_CORPUS, tiny

from metaxlm import rundir
from metaxlm.config import to_dict
from metaxlm.train import train, train_tokenizer

ENV = {**os.environ, "METAXLM_PROGRESS": "0", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


def _losses(run):
    return [r["loss"] for r in rundir.iter_metrics(run) if r["type"] == "train"]


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"],
    # accelerate's multi-process launcher (torchrun underneath; gloo when no GPU is visible)
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"],
}


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_two_processes_match_one(tmp_path, tok, launcher):
    if launcher == "accelerate":
        pytest.importorskip("accelerate")
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, model_args=no_dropout, grad_accum=2,
               total_tokens=8 * 32 * 8, val_every=4, save_every=100)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    script = tmp_path / "run.py"
    script.write_text("import sys\nfrom metaxlm.train import train\ntrain(sys.argv[1], sys.argv[2])\n")
    proc = subprocess.run(LAUNCHERS[launcher] + [str(script), str(tmp_path / "c.yaml"), str(tmp_path / "two")],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch.set_num_threads(1)
    one = train(cfg, tmp_path / "one")
    two = tmp_path / "two"
    assert json.loads((two / "meta.json").read_text())["world_size"] == 2
    la, lb = _losses(one), _losses(two)
    assert len(la) == len(lb) == 8
    assert la == pytest.approx(lb, abs=1e-5)
    va = [r["val_loss"] for r in rundir.iter_metrics(one) if r["type"] == "val"]
    vb = [r["val_loss"] for r in rundir.iter_metrics(two) if r["type"] == "val"]
    for a, b in zip(va, vb):
        assert a == pytest.approx(b, abs=1e-5)
    ra = json.loads((one / "results" / "pretrain.json").read_text())
    rb = json.loads((two / "results" / "pretrain.json").read_text())
    assert ra["tokens_seen"] == rb["tokens_seen"]


def test_resume_after_sigkill(tmp_path, tok):
    from safetensors.torch import load_file

    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, total_tokens=8 * 32 * 200, save_every=10,
               val_every=100, log_every=5)
    full = train(cfg, tmp_path / "full")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    run = tmp_path / "killed"
    cli = [sys.executable, "-c", "from metaxlm.cli import main; main()", "train"]
    p = subprocess.Popen(cli + ["--config", str(tmp_path / "c.yaml"), "--out", str(run)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = run / "state" / "state.pt"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if state.is_file() and max((r["step"] for r in rundir.iter_metrics(run)), default=0) >= 30:
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert json.loads((run / "meta.json").read_text())["status"] == "running"
    assert not (run / "checkpoints" / "final").exists()
    r = subprocess.run(cli + ["--resume", str(run)], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "meta.json").read_text())["status"] == "done"
    wa, wb = load_file(str(full / "checkpoints" / "final" / "model.safetensors")), \
        load_file(str(run / "checkpoints" / "final" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    steps = [r["step"] for r in rundir.iter_metrics(run) if r["type"] == "train"]
    assert steps == sorted(set(steps)) == list(range(5, 201, 5))  # no duplicated or missing lines
