"""The MLM loss computed only where it is needed: at the masked positions.

:func:`masked_lm_loss_sum` runs the embeddings and all but the last encoder layer on every position,
then the last layer only for the masked positions' queries (keys and values still come from every
position), then ``model.lm_head`` on those rows only: no full-vocabulary logits, and no last-layer
feed-forward for the ~85% of positions whose output no loss reads. It uses the model's own modules
(``model.roberta``, ``model.lm_head``), so checkpoints stay plain ``XLMRobertaForMaskedLM`` weights;
:func:`full_forward_loss_sum` is the reference it is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _supports_sparse_last_layer(model) -> bool:
    try:
        last = model.roberta.encoder.layer[-1]
        sa = last.attention.self
        return (not model.config.is_decoder and hasattr(sa, "query") and hasattr(last, "intermediate")
                and hasattr(last.output, "LayerNorm") and getattr(sa, "attention_head_size", None) is not None)
    except AttributeError:
        return False


def _last_layer_at(layer, h: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` at the masked positions of ``h`` (B, L, H) → (n_masked, H)."""
    sa = layer.attention.self
    B, L, H = h.shape
    nh, hd = sa.num_attention_heads, sa.attention_head_size
    k = sa.key(h).view(B, L, nh, hd).transpose(1, 2)
    v = sa.value(h).view(B, L, nh, hd).transpose(1, 2)
    counts = masked.sum(1)
    kmax = int(counts.max())
    # positions of the masked tokens of each block, padded to kmax (padding rows are dropped below)
    order = torch.argsort((~masked).to(torch.int8), dim=1, stable=True)[:, :kmax]  # (B, kmax)
    valid = torch.arange(kmax, device=h.device)[None, :] < counts[:, None]
    h_q = torch.gather(h, 1, order[:, :, None].expand(B, kmax, H))  # (B, kmax, H)
    q = sa.query(h_q).view(B, kmax, nh, hd).transpose(1, 2)
    drop = sa.dropout.p if sa.training else 0.0
    ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, scale=sa.scaling)
    ctx = ctx.transpose(1, 2).reshape(B, kmax, H)[valid]  # (n, H), blocks in order, positions ascending
    res = h_q[valid]
    att = layer.attention.output
    a = att.LayerNorm(att.dropout(att.dense(ctx)) + res)
    out = layer.output
    return out.LayerNorm(out.dropout(out.dense(layer.intermediate(a))) + a)


def masked_hidden(model, input_ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Final hidden states at the masked positions, (n_masked, H), in row-major order."""
    if not _supports_sparse_last_layer(model):
        return model.roberta(input_ids=input_ids).last_hidden_state[masked]
    r = model.roberta
    h = r.embeddings(input_ids=input_ids)
    layers = r.encoder.layer
    for layer in layers[:-1]:
        out = layer(h)
        h = out[0] if isinstance(out, tuple) else out
    return _last_layer_at(layers[-1], h, masked)


def masked_lm_loss_sum(model, input_ids: torch.Tensor, masked: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of the cross-entropies at the masked positions (labels in row-major order of ``masked``)."""
    logits = model.lm_head(masked_hidden(model, input_ids, masked))
    return F.cross_entropy(logits.float(), labels, reduction="sum")


class MaskedLoss(torch.nn.Module):
    """:func:`masked_lm_loss_sum` of ``model`` as a module's forward, so that DDP can wrap it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, masked, labels):
        return masked_lm_loss_sum(self.model, input_ids, masked, labels)


def full_forward_loss_sum(model, input_ids, masked, labels) -> torch.Tensor:
    """The reference: the plain model forward with full-vocabulary logits everywhere."""
    lab = torch.full_like(input_ids, -100)
    lab[masked] = labels
    logits = model(input_ids=input_ids).logits
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), lab.view(-1), reduction="sum",
                           ignore_index=-100)
