"""Checkpoints (plain Hugging Face directories) and the full training state for exact resume.

- ``RUN/checkpoints/<name>/``: ``model.safetensors`` + ``config.json`` + tokenizer files +
  ``checkpoint.json`` (step, tokens seen) + ``README.md``, a model card (:func:`model_card`) when the
  loop passes the run's context (:func:`card_context`). Loadable by ``AutoModelForMaskedLM`` /
  ``AutoTokenizer``.
- ``RUN/state/state.pt``: model, optimizer, schedule position, RNG states (torch, CUDA, numpy, python),
  the data position (the step: batches are a pure function of seed and step), log accumulators.
  It holds only tensors and plain Python values (numpy's RNG state is stored as a tensor) and is
  read with ``torch.load(weights_only=True)``, whose unpickler refuses every global outside torch's
  tensor allow-list: a crafted state file cannot run code, it is refused with a UserError.

Both are written to a temporary name and renamed, so a kill never leaves a half-written one; their
modes follow the umask (:func:`metaxlm.rundir.apply_umask`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np


def save_checkpoint(model, tokenizer, directory: Path, info: dict[str, Any],
                    card: dict[str, Any] | None = None) -> Path:
    """Write ``directory`` (replacing it atomically); ``card`` (:func:`card_context`) adds ``README.md``."""
    from metaxlm.rundir import apply_umask_tree, umask_mkdtemp

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(umask_mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    from transformers.utils import logging as hf_logging

    from metaxlm.train.tokenizer import save_tokenizer

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(tmp))
        save_tokenizer(tokenizer, tmp)
        (tmp / "checkpoint.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if card is not None:
            (tmp / "README.md").write_text(model_card(info, card, directory.resolve()), encoding="utf-8")
        apply_umask_tree(tmp)  # safetensors writes the weights owner-only
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return directory


def rng_state() -> dict[str, Any]:
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    from metaxlm.rundir import umask_mkstemp

    fd, tmp = umask_mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> dict[str, Any]:
    """The saved training state; anything but tensors and plain values is refused (no code runs)."""
    import pickle

    import torch

    from metaxlm.errors import UserError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is not a training state metaxlm can load safely ({first[:160]}); it was not "
                        "loaded and no code in it ran; delete the state/ folder to restart the run from its "
                        "beginning, or restore the file") from None


# ---------------------------------------------------------------------------------------------
# Model cards: RUN/checkpoints/<name>/README.md
# ---------------------------------------------------------------------------------------------

def card_context(run_dir: Path, meta: dict, config, phases: list[dict], tokens_per_step: int,
                 data: dict[str, dict], tokenizer, model) -> dict[str, Any]:
    """What every checkpoint's card of one run shares: regime, phases, model, data, tokenizer, provenance.

    ``phases`` are :meth:`Phase.describe` dicts, ``data`` is
    :func:`metaxlm.train.tokcache.describe`, ``meta`` the run's meta.json. Reads nothing from disk.
    """
    from metaxlm.train.sampling import language_probs
    from metaxlm.train.tokcache import tokenizer_sha256

    total = sum(p["tokens"] for p in phases) or config.total_tokens
    train_tokens = {lang: d.get("train_tokens", 0) for lang, d in data.items()}
    out_phases = []
    for p in phases:
        try:
            probs = language_probs({lang: train_tokens.get(lang, 0) for lang in p["languages"]}, config.alpha)
        except ValueError:  # a language without training tokens (never trained on): no shares to show
            probs = {}
        out_phases.append({**p, "fraction": p["tokens"] / total if total else 0.0,
                           "sampling": {lang: float(v) for lang, v in probs.items()}})
    mc = model.config
    versions = meta.get("versions") or {}
    return {
        "run_dir": str(Path(run_dir).resolve()),
        "regime": config.regime, "seed": config.seed, "alpha": config.alpha,
        "total_tokens": config.total_tokens, "tokens_per_step": tokens_per_step,
        "languages": sorted(data),
        "phases": out_phases,
        "model": {"preset": config.model, "parameters": int(sum(p.numel() for p in model.parameters())),
                  **{k: getattr(mc, k, None) for k in ("model_type", "num_hidden_layers", "hidden_size",
                                                        "num_attention_heads", "intermediate_size", "vocab_size",
                                                        "max_position_embeddings")},
                  "seq_len": config.seq_len},
        "data": {lang: {"path": d.get("path"), "sha256": d.get("sha256"), "train_tokens": d.get("train_tokens"),
                        "lines": d.get("lines")} for lang, d in sorted(data.items())},
        "tokenizer": {"type": type(tokenizer.backend_tokenizer.model).__name__, "vocab_size": len(tokenizer),
                      "sha256": tokenizer_sha256(tokenizer)},
        "metaxlm_version": versions.get("metaxlm"), "git_sha": meta.get("git_sha"),
        "versions": {k: versions[k] for k in ("python", "torch", "transformers", "tokenizers") if k in versions},
    }


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def model_card(checkpoint: dict[str, Any], run: dict[str, Any], path: str | Path) -> str:
    """The README.md of a checkpoint directory: YAML front matter (``library_name``, ``pipeline_tag``,
    ``language``, ``tags``) then regime, phases, tokens seen, model, data hashes, tokenizer,
    provenance and how to load it. ``checkpoint`` is its ``checkpoint.json``, ``run`` a
    :func:`card_context`, ``path`` the directory. Pure: the same inputs give the same text."""
    import yaml

    regime, name = run["regime"], checkpoint.get("name", Path(path).name)
    front = {"library_name": "transformers", "pipeline_tag": "fill-mask", "language": list(run["languages"]),
             "tags": ["metaxlm", f"regime-{regime}", "masked-lm"]}
    m, tok = run["model"], run["tokenizer"]
    steps_total = sum(p["steps"] for p in run["phases"])
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# metaxlm `{regime}` encoder, checkpoint `{name}`", ""]
    if run["phases"]:
        lines += [f"A masked-language-model encoder pretrained from scratch by metaxlm under the `{regime}` regime "
                  f"(seed {run['seed']}). This checkpoint was saved after {checkpoint.get('tokens_seen', 0):,} "
                  f"tokens (optimizer step {checkpoint.get('step', 0):,} of {steps_total:,}"
                  + (f", phase `{checkpoint['phase']}`" if checkpoint.get("phase") else "") + ")."]
    else:
        lines += [f"Not pretrained: the random initialisation (seed {run['seed']}) of the `{regime}` regime, "
                  "metaxlm's no-pretraining control, with the same architecture and tokenizer as the "
                  "pretrained regimes."]
    lines += ["", "## Regime and phases", ""]
    if run["phases"]:
        lines += [f"Budget {run['total_tokens']:,} tokens in steps of {run['tokens_per_step']:,} tokens. Within a "
                  f"phase each block's language is drawn with p(lang) ∝ (training tokens of lang)^{run['alpha']:g}.",
                  "", "| phase | languages | tokens | fraction of budget | steps | sampling |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        for p in run["phases"]:
            sampling = ", ".join(f"{lang} {v:.1%}" for lang, v in p["sampling"].items())
            lines.append(f"| {_cell(p['name'])} | {', '.join(p['languages'])} | {p['tokens']:,} | "
                         f"{p['fraction']:.1%} | {p['steps']:,} | {sampling} |")
    else:
        lines.append("No phase (zero training steps).")
    seen = checkpoint.get("tokens_seen_by_lang") or {}
    lines += ["", "## Tokens seen per language", "", "| language | tokens |", "| --- | ---: |"]
    lines += [f"| {lang} | {n:,} |" for lang, n in sorted(seen.items())]
    lines += [f"| total | {sum(seen.values()):,} |", "", "## Model", "",
              f"- preset `{m.get('preset')}`, {m.get('model_type')}: {m['parameters']:,} parameters",
              f"- {m.get('num_hidden_layers')} layers, hidden size {m.get('hidden_size')}, "
              f"{m.get('num_attention_heads')} attention heads, feed-forward {m.get('intermediate_size')}",
              f"- vocabulary {m.get('vocab_size'):,}, trained on blocks of {m.get('seq_len')} tokens "
              f"(max positions {m.get('max_position_embeddings')})",
              "", "## Data", "", "| language | source | SHA256 | lines | training tokens |",
              "| --- | --- | --- | ---: | ---: |"]
    for lang, d in run["data"].items():
        n_lines = f"{d['lines']:,}" if isinstance(d.get("lines"), int) else ""
        n_tok = f"{d['train_tokens']:,}" if isinstance(d.get("train_tokens"), int) else ""
        lines.append(f"| {lang} | {_cell(d.get('path'))} | `{d.get('sha256')}` | {n_lines} | {n_tok} |")
    versions = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items())
    lines += ["", "## Tokenizer", "",
              f"{tok['type']}, {tok['vocab_size']:,} pieces, SHA256 `{tok['sha256']}` (of its serialized "
              "`tokenizer.json`, the token cache's key), saved in this directory.",
              "", "## Provenance", "",
              f"- metaxlm {run.get('metaxlm_version') or 'unknown'}, git commit `{run.get('git_sha') or 'unknown'}`",
              f"- run directory: `{run['run_dir']}` (its `config.yaml`, `meta.json`, `metrics.jsonl` and "
              "`results/pretrain.json` describe the whole run)"]
    if versions:
        lines.append(f"- {versions}")
    lines += ["", "## How to load", "", "```python", "from transformers import AutoModelForMaskedLM, AutoTokenizer",
              "", f"model = AutoModelForMaskedLM.from_pretrained({str(path)!r})",
              f"tokenizer = AutoTokenizer.from_pretrained({str(path)!r})", "```", ""]
    return "\n".join(lines)
