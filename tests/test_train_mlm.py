"""The masked-only MLM loss equals the plain model's full-vocabulary loss (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaxlm.train.batches import MaskSpec, mask_blocks
from metaxlm.train.mlm import full_forward_loss_sum, masked_lm_loss_sum
from metaxlm.train.model import build_model, model_config


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_masked_only_loss_equals_full_forward(layers):
    V, L, B = 500, 40, 6
    model = build_model(model_config("tiny", {"num_hidden_layers": layers}, V, L), 0)
    model.train()  # dropout is 0 in the tiny preset: train mode is deterministic
    rng = np.random.default_rng(0)
    blocks = rng.integers(5, V, size=(B, L))
    blocks[:, 0], blocks[:, 17] = 0, 2
    x, m, y = (torch.from_numpy(a) for a in mask_blocks(blocks, MaskSpec(0.15, 0.8, 0.1, 4, V, (0, 1, 2, 3, 4)), rng))
    m[2, :] = False  # a block with one masked position, one with none
    m[2, 5] = True
    m[3, :] = False
    y = torch.from_numpy(blocks)[m]
    params = list(model.parameters())
    a = masked_lm_loss_sum(model, x, m, y)
    f = full_forward_loss_sum(model, x, m, y)
    assert a.item() == pytest.approx(f.item(), rel=1e-5)
    ga = torch.autograd.grad(a, params, allow_unused=True)
    gf = torch.autograd.grad(full_forward_loss_sum(model, x, m, y), params, allow_unused=True)
    for u, w in zip(ga, gf):
        if u is not None and w is not None:
            assert torch.allclose(u, w, atol=1e-5)
