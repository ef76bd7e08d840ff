"""XLM-R-style MLM encoders (transformers ``XLMRobertaForMaskedLM``) from presets or explicit sizes.

Presets (architecture and default training budget; any key can be overridden with ``model_args``
and the TrainConfig fields):

=======  ======  ======  =====  =====  =======  =====  =====  ============
preset   layers  hidden  heads  ffn    seq_len  batch  lr     total_tokens
=======  ======  ======  =====  =====  =======  =====  =====  ============
tiny     2       32      2      64     64       8      1e-3   20k  (tests; dropout 0)
demo     4       128     4      512    128      32     1e-3   5M   (2 CPU cores; dropout 0)
small    6       512     8      2048   256      128    5e-4   500M (one GPU)
base     12      768     12     3072   512      256    3e-4   2B   (GPUs)
=======  ======  ======  =====  =====  =======  =====  =====  ============
"""

from __future__ import annotations

from typing import Any

from metaxlm.errors import UserError

ARCH_KEYS = {
    "hidden_size": int, "num_hidden_layers": int, "num_attention_heads": int, "intermediate_size": int,
    "hidden_dropout_prob": float, "attention_probs_dropout_prob": float, "max_position_embeddings": int,
    "vocab_size": int, "hidden_act": str, "layer_norm_eps": float, "initializer_range": float,
}

PRESETS: dict[str, dict[str, Any]] = {
    # tiny and demo train for a short budget on CPUs: no dropout (as in budget-limited BERT recipes,
    # e.g. "Cramming"), which also keeps SDPA on its fused kernel; small and base use XLM-R's 0.1.
    "tiny": {"arch": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
             "seq_len": 64, "batch_size": 8, "lr": 1e-3, "total_tokens": 20_000},
    "demo": {"arch": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
             "seq_len": 128, "batch_size": 32, "lr": 1e-3, "total_tokens": 5_000_000},
    "small": {"arch": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048),
              "seq_len": 256, "batch_size": 128, "lr": 5e-4, "total_tokens": 500_000_000},
    "base": {"arch": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
             "seq_len": 512, "batch_size": 256, "lr": 3e-4, "total_tokens": 2_000_000_000},
}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise UserError(f"model preset {name!r} is unknown; choose one of {', '.join(PRESETS)} "
                        "(and override sizes with model_args)")
    return PRESETS[name]


def model_config(name: str, overrides: dict[str, Any], vocab_size: int, seq_len: int):
    """The ``XLMRobertaConfig`` for a preset + overrides, sized for ``vocab_size`` and ``seq_len``."""
    from transformers import XLMRobertaConfig

    arch = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    arch.update(preset(name)["arch"])
    for k, v in overrides.items():
        if k not in ARCH_KEYS:
            raise UserError(f"model_args: unknown key {k!r}; known keys are: {', '.join(sorted(ARCH_KEYS))}")
        tp = ARCH_KEYS[k]
        if tp is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, tp) or isinstance(v, bool):
            raise UserError(f"model_args.{k}: expected {tp.__name__}, got {v!r}")
        arch[k] = v
    if "vocab_size" in arch:
        if arch["vocab_size"] < vocab_size:
            raise UserError(f"the tokenizer has {vocab_size} tokens but model_args.vocab_size is "
                            f"{arch['vocab_size']}; the vocabulary does not match the model "
                            "(drop model_args.vocab_size or use a smaller tokenizer)")
    else:
        arch["vocab_size"] = vocab_size
    if arch["hidden_size"] % arch["num_attention_heads"]:
        raise UserError(f"model: hidden_size {arch['hidden_size']} is not a multiple of "
                        f"num_attention_heads {arch['num_attention_heads']}")
    # XLM-R position ids start after the padding index (1): room for seq_len + 2
    arch.setdefault("max_position_embeddings", max(514, seq_len + 2))
    if arch["max_position_embeddings"] < seq_len + 2:
        raise UserError(f"model_args.max_position_embeddings must be at least seq_len + 2 = {seq_len + 2}")
    return XLMRobertaConfig(bos_token_id=0, pad_token_id=1, eos_token_id=2, type_vocab_size=1, **arch)


def build_model(config, seed: int):
    """A randomly initialised ``XLMRobertaForMaskedLM`` (same seed → same weights)."""
    import torch
    from transformers import XLMRobertaForMaskedLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = XLMRobertaForMaskedLM(config)
    return model
