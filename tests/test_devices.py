"""``--device`` everywhere: the resolution table, one-line errors before any run directory, the device
reaching the fine-tuner and the encoder (directly and from compare's steps), what meta.json records,
the mixed-precision code paths, and the faiss GPU choice (with a fake faiss module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from metaxlm import devices
from metaxlm.errors import UserError

from _models import make_tiny_xlmr

FIX = Path(__file__).parent / "fixtures"
BENCH = FIX / "bench"
FAST = ("--seeds", "0", "--epochs", "1", "--batch-size", "8", "--train-size", "10")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_xlmr(tmp_path_factory.mktemp("tiny") / "xlmr")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """torch believes in two GPUs, device 0 current, compute capability 8.0 (tensors stay on the CPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.version, "hip", None)


def _meta(run: Path) -> dict:
    return json.loads((run / "meta.json").read_text())


def _one_line_error(res, needle: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.output


# -- the resolution table ------------------------------------------------------------------------

def test_resolution_without_a_gpu(no_cuda):
    for spec in ("auto", None, "cpu", torch.device("cpu")):
        assert devices.resolve_device(spec) == torch.device("cpu")
    for spec in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(UserError, match=r"no CUDA GPU is visible to torch.*use --device cpu or auto"):
            devices.resolve_device(spec)
    assert devices.pick_precision(torch.device("cpu")) == "fp32"
    assert devices.device_meta("cpu") == {"device": "cpu", "precision": "fp32"}


def test_resolution_with_gpus(two_gpus):
    assert devices.resolve_device("auto") == torch.device("cuda", 0)  # always with its number
    assert devices.resolve_device("cuda") == torch.device("cuda", 0)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert devices.resolve_device("cuda", index=1) == torch.device("cuda", 1)  # e.g. a local rank
    assert devices.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match=r"--device cuda:2: torch sees 2 GPU\(s\), numbered 0..1"):
        devices.resolve_device("cuda:2")
    assert devices.pick_precision(torch.device("cuda", 0)) == "bf16"
    assert devices.pick_precision(torch.device("cuda", 0), "fp32") == "fp32"  # an explicit request wins


def test_fp16_where_bf16_is_not_native(two_gpus, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert devices.pick_precision("cuda:0") == "fp16"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler warns that CUDA is missing on this machine
        assert isinstance(devices.grad_scaler("fp16"), torch.amp.GradScaler)
    assert devices.grad_scaler("bf16") is None and devices.grad_scaler("fp32") is None


@pytest.mark.parametrize("spec", ["gpu", "tpu", "cuda:x", "CUDA", "cuda:", "cpu:0", ""])
def test_unknown_device_names_the_choices(spec):
    with pytest.raises(UserError, match=r"not a device; choose auto \(CUDA when present, else CPU\), cpu, cuda or cuda:N"):
        devices.check_device(spec)


# -- bad --device through the real CLI: one line, exit 2, nothing written ------------------------

def _commands(tiny: Path, out: Path) -> dict[str, list]:
    return {
        "eval topic": ["eval", "topic", "--model", tiny, "--data", BENCH, *FAST, "--out", out],
        "eval topic (control)": ["eval", "topic", "--model", "majority", "--data", BENCH, "--out", out],
        "eval tatoeba": ["eval", "tatoeba", "--model", tiny, "--data", BENCH, "--out", out],
        "eval bucc": ["eval", "bucc", "--model", tiny, "--data", BENCH, "--out", out],
        "probe align": ["probe", "align", "--model", tiny, "--data", BENCH, "--out", out],
        "compare": ["compare", "--preset", "smoke", "--data", BENCH, "--out", out],
        "train": ["train", "--model-size", "tiny", "--corpus", BENCH / "corpus", "--vocab-size", "300", "--out", out],
    }


@pytest.mark.parametrize("command", ["eval topic", "eval topic (control)", "eval tatoeba", "eval bucc",
                                     "probe align", "compare", "train"])
def test_bad_device_is_one_line_and_writes_nothing(cli, tiny, tmp_path, no_cuda, command):
    out = tmp_path / "out"
    args = _commands(tiny, out)[command]
    _one_line_error(cli(*args, "--device", "cuda"), "--device cuda: no CUDA GPU is visible to torch")
    _one_line_error(cli(*args, "--device", "gpu"), "--device gpu: not a device; choose auto")
    assert not out.exists()


def test_cuda_without_gpu_in_a_real_process(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "METAXLM_PROGRESS": "0"}
    p = subprocess.run([sys.executable, "-c", "from metaxlm.cli import main; main()", "eval", "topic", "--model",
                        "majority", "--data", str(BENCH), "--device", "cuda", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines() == ["error: --device cuda: no CUDA GPU is visible to torch "
                                     "(torch.cuda.is_available() is False); use --device cpu or auto"]
    assert "Traceback" not in p.stdout + p.stderr and not out.exists()


def test_compare_refuses_a_numbered_gpu_for_pretraining(cli, tmp_path):
    out = tmp_path / "cmp"
    _one_line_error(cli("compare", "--preset", "smoke", "--data", BENCH, "--out", out, "--device", "cuda:1"),
                    "pretraining (metaxlm train) takes auto, cpu or cuda")
    assert not out.exists()


# -- the device reaches the fine-tuner and the encoder; meta.json records it -----------------------

def test_eval_device_reaches_the_finetuner(cli, tiny, tmp_path, monkeypatch):
    import metaxlm.eval.transfer as T

    seen = []

    class Recording(T.FineTuner):
        def __init__(self, *args, device=None, **kwargs):
            seen.append(device)
            super().__init__(*args, device=device, **kwargs)

    monkeypatch.setattr(T, "FineTuner", Recording)
    out = tmp_path / "run"
    res = cli("eval", "topic", "--model", tiny, "--data", BENCH, *FAST, "--device", "cpu", "--out", out)
    assert res.exit_code == 0, res.output
    assert seen == [torch.device("cpu")]
    assert yaml_device(out) == "cpu"
    meta = _meta(out)
    assert meta["device"] == "cpu" and meta["precision"] == "fp32" and meta["status"] == "done"


def yaml_device(run: Path):
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["device"]


def test_control_records_the_cpu(cli, tmp_path):
    out = tmp_path / "maj"
    assert cli("eval", "topic", "--model", "majority", "--data", BENCH, "--seeds", "0", "--out", out).exit_code == 0
    assert _meta(out)["device"] == "cpu"


def _recording_encoder(monkeypatch) -> list:
    import metaxlm.encode as E

    seen, real = [], E.encode_layers

    def encode_layers(*args, device=None, **kwargs):
        seen.append(device)
        return real(*args, device=device, **kwargs)

    monkeypatch.setattr(E, "encode_layers", encode_layers)
    return seen


@pytest.mark.parametrize("command, extra, result", [
    ("tatoeba", ("--layer", "1", "--pooling", "mean", "--max-pairs", "6"), "tatoeba"),
    ("bucc", ("--layer", "1", "--pooling", "mean", "--no-sweep"), "bucc"),
    ("align", ("--layer", "1", "--bootstrap", "5", "--max-sentences", "8"), "align"),
])
def test_retrieval_and_probe_device_reaches_the_encoder(cli, tiny, tmp_path, monkeypatch, command, extra, result):
    monkeypatch.setenv("METAXLM_PROGRESS", "0")
    seen = _recording_encoder(monkeypatch)
    out = tmp_path / command
    group = "probe" if command == "align" else "eval"
    res = cli(group, command, "--model", tiny, "--data", BENCH, *extra, "--device", "cpu", "--out", out)
    assert res.exit_code == 0, res.output
    assert seen and all(d == torch.device("cpu") for d in seen)
    meta = _meta(out)
    assert (meta["device"], meta["precision"], meta["status"]) == ("cpu", "fp32", "done")
    assert json.loads((out / "results" / f"{result}.json").read_text())["search_backend"] == "cpu"


def test_compare_passes_the_device_to_every_step(cli, monkeypatch, tmp_path):
    import typer

    import metaxlm.compare as C
    from metaxlm import config as cfg
    from metaxlm.eval.bucc import BuccConfig
    from metaxlm.eval.tatoeba import TatoebaConfig
    from metaxlm.eval.transfer import TransferConfig
    from metaxlm.probe.align import AlignConfig

    got = {}

    def fake_compare(config, out, force=()):
        got["config"] = config
        raise typer.Exit(0)

    monkeypatch.setattr(C, "compare", fake_compare)
    res = cli("compare", "--preset", "smoke", "--data", BENCH, "--out", tmp_path / "cmp", "--device", "cpu",
              "--set", "bucc.device=auto")  # a step's own key wins
    assert res.exit_code == 0, res.output
    config = got["config"]
    assert config.device == "cpu"

    seen: dict[str, list] = {}

    def record(step: str, config) -> None:
        seen.setdefault(step, []).append(config.device)

    def transfer(c, out):
        record(c["model"] if c["model"] in ("majority", "lexical") else "topic", cfg.build(TransferConfig, c))

    monkeypatch.setattr(C, "_train", lambda tc, out: record("train", tc))
    monkeypatch.setattr(C, "_transfer", transfer)
    monkeypatch.setattr(C, "_retrieval", lambda name, c, out: record(
        name, cfg.build(TatoebaConfig if name == "tatoeba" else BuccConfig, c)))
    monkeypatch.setattr(C, "_align", lambda c, out: record("align", cfg.build(AlignConfig, c)))
    training = C.plan_training(tmp_path / "cmp", config, BENCH)
    for step in training.steps[1:] + C.plan_analyses(training):  # [0] is the tokenizer
        step.run()
    assert set(seen) == {"train", "topic", "majority", "lexical", "tatoeba", "bucc", "align"}
    assert seen.pop("bucc") == ["auto"] * 4
    assert all(d == ["cpu"] * len(d) for d in seen.values()), seen
    assert len(seen["train"]) == 4 and len(seen["align"]) == 5  # 4 models + the meta × single pair


# -- mixed precision: the autocast and loss-scaling branches run (on the CPU here) ------------------

@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_finetuner_trains_and_predicts_under_autocast(tiny, no_cuda, precision):
    from metaxlm.eval.finetune import FineTuner, FinetuneParams
    from metaxlm.eval.formats import load_task
    from metaxlm.eval.tasks import TASKS
    from metaxlm.models import resolve_model

    spec = TASKS["topic"]
    data = load_task(spec, BENCH)
    ft = FineTuner(resolve_model(str(tiny)), spec, data.labels, FinetuneParams(epochs=1, batch_size=8), device="cpu")
    assert (ft.device, ft.precision) == (torch.device("cpu"), "fp32")
    ft.precision = precision  # what a GPU would pick; CPU autocast has both dtypes; without CUDA the
    # GradScaler is disabled (scale/unscale_/step/update pass through), so this checks the code path, not scaling
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft.fit(data.train[:16], data.dev[:8], 0, lambda ex, p: 0.0)
    pred = ft.predict(data.test["de"][:5])
    assert len(pred) == 5 and set(pred) <= set(data.labels)


# -- faiss on the GPU when a GPU build sees the device ----------------------------------------------

class _FakeIndex:
    def __init__(self, d):
        self.d, self.gpu, self.db = d, None, None

    def add(self, x):
        self.db = np.array(x)

    def search(self, q, k):
        sims = q @ self.db.T
        ids = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, ids, 1).astype(np.float32), ids.astype(np.int64)


def _fake_faiss(monkeypatch, n_gpus: int | None, gpu_build: bool = True) -> list:
    """Install a fake ``faiss`` (``n_gpus`` None: no get_num_gpus at all); returns the GPU moves made."""
    from metaxlm.eval import retrieval as R

    moves: list = []

    def index_cpu_to_gpu(res, gpu, index):
        moves.append(gpu)
        index.gpu = gpu
        return index

    fake = types.SimpleNamespace(IndexFlatIP=_FakeIndex)
    if n_gpus is not None:
        fake.get_num_gpus = lambda: n_gpus
    if gpu_build:
        fake.StandardGpuResources = object
        fake.index_cpu_to_gpu = index_cpu_to_gpu
    monkeypatch.setitem(sys.modules, "faiss", fake)
    monkeypatch.setattr(R, "_gpu_res", {})
    return moves


def test_faiss_gpu_branch_when_gpus_are_reported(monkeypatch):
    from metaxlm.eval import retrieval as R

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 4)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
    expected = R.knn(x, y, 3)  # the real faiss, on the CPU
    moves = _fake_faiss(monkeypatch, n_gpus=2)
    assert R.faiss_gpu(torch.device("cuda", 1)) == 1 and R.faiss_gpu("cuda") == 0
    gpu = R.faiss_gpu("cuda:0")
    assert R._index(y, gpu).gpu == 0 and moves == [0]
    sims, ids = R.knn(x, y, 3, gpu=gpu)
    assert moves == [0, 0] and np.array_equal(ids, expected[1]) and np.allclose(sims, expected[0], atol=1e-6)
    assert R.faiss_backend(gpu) == "faiss-gpu:0"


@pytest.mark.parametrize("device, n_gpus, gpu_build", [
    ("cpu", 2, True),  # the model is on the CPU
    ("cuda:0", 0, True),  # a GPU build that sees no GPU
    ("cuda:1", 1, True),  # faiss does not see that GPU
    ("cuda:0", 0, False),  # faiss-cpu: get_num_gpus but no GPU symbols
    ("cuda:0", None, False),  # an older faiss-cpu without get_num_gpus
])
def test_faiss_cpu_branch_otherwise(monkeypatch, device, n_gpus, gpu_build):
    from metaxlm.eval import retrieval as R

    moves = _fake_faiss(monkeypatch, n_gpus, gpu_build)
    gpu = R.faiss_gpu(device)
    assert gpu is None and R.faiss_backend(gpu) == "cpu"
    assert R._index(np.eye(3, dtype=np.float32), gpu).gpu is None and moves == []
