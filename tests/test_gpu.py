"""The GPU path on a real GPU (marker ``gpu``; skipped where torch sees no CUDA device).

Run by ``scripts/gpu_check.sh`` on a GPU machine (``python -m pytest -m gpu``): a bf16 and an fp16
training step, exact-enough resume on the GPU, fine-tuning on the GPU, autocast encoding against fp32
encoding, and faiss GPU search against CPU search (when a GPU build of faiss is installed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _models import BENCH, make_tiny_xlmr
from _train_support import FIXTURE_CORPUS, interrupt_at, tiny

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from metaxlm.train import train_tokenizer

    return train_tokenizer(FIXTURE_CORPUS, tmp_path_factory.mktemp("tok") / "tok", vocab_size=300)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return make_tiny_xlmr(tmp_path_factory.mktemp("enc") / "xlmr")


def _train_losses(run: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(x)["type"] == "train"]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_step_in_mixed_precision(tmp_path, tok, precision):
    from metaxlm.train import train

    run = train(tiny(corpus=FIXTURE_CORPUS, tokenizer=tok, device="cuda", precision=precision), tmp_path / "r")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["device"].startswith("cuda") and meta["precision"] == precision
    losses = _train_losses(run)
    assert losses and all(np.isfinite(losses)) and losses[-1] < losses[0] + 0.5


def test_resume_on_the_gpu(tmp_path, tok, monkeypatch):
    from safetensors.torch import load_file

    from metaxlm.train import train

    cfg = tiny(regime="meta", corpus=FIXTURE_CORPUS, tokenizer=tok, device="cuda", save_every=3)
    full = train(cfg, tmp_path / "full")
    undo = interrupt_at(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut")
    undo()
    train(None, tmp_path / "cut", resume=True)
    a = load_file(str(full / "checkpoints" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "final" / "model.safetensors"))
    # GPU kernels are not bit-reproducible across processes; the continuation must be the same run
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=2e-3, rtol=2e-3), k
    assert np.allclose(_train_losses(full), _train_losses(tmp_path / "cut"), atol=2e-3)


def test_finetuning_on_the_gpu(encoder):
    from metaxlm.eval.finetune import FineTuner, FinetuneParams
    from metaxlm.eval.formats import load_task
    from metaxlm.eval.tasks import TASKS
    from metaxlm.models import resolve_model

    spec = TASKS["topic"]
    data = load_task(spec, BENCH)
    ft = FineTuner(resolve_model(str(encoder)), spec, data.labels, FinetuneParams(epochs=1, batch_size=8),
                   device="cuda")
    assert ft.device.type == "cuda" and ft.precision in ("bf16", "fp16")
    ft.fit(data.train[:32], data.dev[:8], 0, lambda ex, p: 0.0)
    assert next(ft.model.parameters()).device.type == "cuda"
    pred = ft.predict(data.test["de"][:8])
    assert len(pred) == 8 and set(pred) <= set(data.labels)


def test_autocast_encoding_matches_fp32(encoder):
    from _models import fixture_sentences

    from metaxlm.encode import encode_layers
    from metaxlm.models import resolve_model

    sents = fixture_sentences()[:64]
    ref = resolve_model(str(encoder))
    gpu = encode_layers(ref, sents, ("mean",), device="cuda", use_cache=False)["mean"]
    cpu = encode_layers(ref, sents, ("mean",), device="cpu", use_cache=False)["mean"]
    assert gpu.shape == cpu.shape and gpu.dtype == np.float32
    cos = (gpu * cpu).sum(-1) / (np.linalg.norm(gpu, axis=-1) * np.linalg.norm(cpu, axis=-1) + 1e-9)
    assert cos.min() > 0.99, cos.min()


def test_faiss_gpu_search_equals_cpu_search():
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        pytest.skip("faiss is not a GPU build that sees a GPU")
    from metaxlm.eval import retrieval as R

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 64)).astype(np.float32)
    y = rng.normal(size=(3000, 64)).astype(np.float32)
    s_cpu, i_cpu = R.knn(x, y, 4)
    gpu = R.faiss_gpu("cuda:0")
    assert gpu == 0
    s_gpu, i_gpu = R.knn(x, y, 4, gpu=gpu)
    assert (i_gpu[:, 0] == i_cpu[:, 0]).mean() > 0.999 and np.allclose(s_gpu, s_cpu, atol=1e-4)
