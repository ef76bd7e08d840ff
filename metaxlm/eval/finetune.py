"""Fine-tuning an encoder + head on English and predicting every language.

- Sequence tasks: ``AutoModelForSequenceClassification``; token tasks:
  ``AutoModelForTokenClassification`` with the label on the first subword of each word (the other
  subwords get -100). A sentence longer than ``max_length`` subwords is split into consecutive
  word chunks; predictions of the chunks are concatenated back into one tag per word.
- Batches: dynamic padding (each batch padded to its longest item) with length-sorted batches —
  for training, items are sorted by length inside random pools of 50 batches and the batch order is
  shuffled; for prediction, all items are sorted and outputs put back in input order.
- Prediction runs under ``torch.inference_mode``.
- Device and precision (:mod:`metaxlm.devices`): ``device`` ``auto`` (CUDA when present), ``cpu``,
  ``cuda``, ``cuda:N``; on a GPU training and prediction run under bf16 autocast (fp16 with loss
  scaling where bf16 is not native); on the CPU in plain fp32.
- The epoch is chosen on English dev (primary metric); the best weights are restored.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from metaxlm.devices import autocast, grad_scaler, pick_precision, resolve_device
from metaxlm.eval.formats import SeqExample, TokExample
from metaxlm.eval.tasks import TaskSpec
from metaxlm.models import ModelRef, check_tokenizer_matches, load_config, load_model, load_tokenizer

POOL_BATCHES = 50  # training: sort by length inside pools of this many batches


def default_lr(config) -> float:
    """Learning rate by encoder width: small encoders need a larger step. Measured on the topic task
    (3,000 examples, 2 epochs): a 4-layer hidden-256 encoder collapses to the majority class at 1e-4
    and learns at 5e-4; 2e-5–5e-5 is the usual range for base-size (768) encoders."""
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    if hidden and hidden <= 256:
        return 5e-4
    if hidden and hidden <= 512:
        return 1e-4
    return 3e-5


@dataclass(frozen=True)
class FinetuneParams:
    lr: float | None = None  # None: default_lr(model config)
    epochs: int = 3
    batch_size: int = 32
    max_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_batch_size: int = 64
    grad_clip: float = 1.0


def quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - logging API drift must never break an evaluation
        pass


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# encoding


def position_limit(config) -> int | None:
    """Longest input the model's position table allows (RoBERTa-style tables reserve pad+1 slots)."""
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        return None
    if "roberta" in str(getattr(config, "model_type", "")) or getattr(config, "model_type", "") == "camembert":
        n -= (getattr(config, "pad_token_id", 1) or 0) + 1
    return int(n)


def encode_sequence(tokenizer, examples: Sequence[SeqExample], max_length: int,
                    label2id: dict[str, int] | None = None) -> list[dict]:
    """One feature per example: ``{input_ids, [token_type_ids], label}`` (no padding)."""
    a = [e.a for e in examples]
    pair = any(e.b is not None for e in examples)
    b = [e.b or "" for e in examples] if pair else None
    feats = []
    step = 4096
    for start in range(0, len(a), step):
        enc = tokenizer(a[start:start + step], b[start:start + step] if b is not None else None,
                        truncation=True, max_length=max_length, add_special_tokens=True)
        tt = enc.get("token_type_ids")
        for i, ids in enumerate(enc["input_ids"]):
            f = {"input_ids": list(ids)}
            if tt is not None:
                f["token_type_ids"] = list(tt[i])
            ex = examples[start + i]
            if label2id is not None:
                f["label"] = label2id[ex.label]
            feats.append(f)
    return feats


def _special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special ids a single sequence gets before and after its words (e.g. <s> … </s>)."""
    enc = tokenizer(["x"], is_split_into_words=True, add_special_tokens=True)
    plain = tokenizer(["x"], is_split_into_words=True, add_special_tokens=False)["input_ids"]
    ids = list(enc["input_ids"])
    n = len(plain)
    for i in range(len(ids) - n + 1):
        if ids[i:i + n] == list(plain):
            return ids[:i], ids[i + n:]
    return [], []


def encode_tokens(tokenizer, examples: Sequence[TokExample], max_length: int,
                  label2id: dict[str, int] | None = None) -> list[dict]:
    """Word-chunked features: ``{input_ids, word_pos, sent, start, [labels]}``.

    ``word_pos`` are the positions of each word's first subword; ``sent``/``start`` say which sentence
    and which word the chunk begins with. A word with no subword gets the unknown token; a word with
    more subwords than fit is cut to what fits.
    """
    pre, post = _special_frame(tokenizer)
    room = max(1, max_length - len(pre) - len(post))
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    # tokenize every distinct word once, without special tokens
    vocab: dict[str, list[int]] = {}
    distinct = list({w for ex in examples for w in ex.words})
    for start in range(0, len(distinct), 8192):
        chunk = distinct[start:start + 8192]
        enc = tokenizer([[w] for w in chunk], is_split_into_words=True, add_special_tokens=False)["input_ids"]
        for w, ids in zip(chunk, enc):
            vocab[w] = list(ids) or [unk]
    feats = []
    for si, ex in enumerate(examples):
        pieces = [vocab[w][:room] for w in ex.words]
        start = 0
        while start < len(pieces) or (start == 0 and not pieces):
            ids, pos, used = list(pre), [], 0
            end = start
            while end < len(pieces) and used + len(pieces[end]) <= room:
                pos.append(len(ids))
                ids.extend(pieces[end])
                used += len(pieces[end])
                end += 1
            ids.extend(post)
            f = {"input_ids": ids, "word_pos": pos, "sent": si, "start": start}
            if label2id is not None:
                lab = [-100] * len(ids)
                for p, tag in zip(pos, ex.tags[start:end]):
                    lab[p] = label2id[tag]
                f["labels"] = lab
            feats.append(f)
            if end == start:
                break
            start = end
    return feats


# --------------------------------------------------------------------------------------------
# batching


def length_batches(lengths: Sequence[int], batch_size: int, *, sort: bool = True,
                   rng: random.Random | None = None) -> list[list[int]]:
    """Index batches. Prediction (``rng`` None): sorted by length (longest first) when ``sort``.
    Training (``rng`` given): shuffled, sorted inside pools of ``POOL_BATCHES`` batches, batch order
    shuffled."""
    idx = list(range(len(lengths)))
    if rng is None:
        if sort:
            idx.sort(key=lambda i: -lengths[i])
        return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    rng.shuffle(idx)
    batches = []
    pool = batch_size * POOL_BATCHES
    for p in range(0, len(idx), pool):
        chunk = idx[p:p + pool]
        if sort:
            chunk.sort(key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(feats: Sequence[dict], pad_id: int, pad_to: int | None = None) -> dict:
    """Tensors for one batch, padded to the longest item (or to ``pad_to``)."""
    import torch

    width = max(len(f["input_ids"]) for f in feats)
    if pad_to is not None:
        width = max(width, pad_to)
    n = len(feats)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask}
    has_tt = "token_type_ids" in feats[0]
    if has_tt:
        out["token_type_ids"] = torch.zeros((n, width), dtype=torch.long)
    if "labels" in feats[0]:
        out["labels"] = torch.full((n, width), -100, dtype=torch.long)
    elif "label" in feats[0]:
        out["labels"] = torch.tensor([f["label"] for f in feats], dtype=torch.long)
    for i, f in enumerate(feats):
        L = len(f["input_ids"])
        ids[i, :L] = torch.tensor(f["input_ids"], dtype=torch.long)
        mask[i, :L] = 1
        if has_tt:
            out["token_type_ids"][i, :L] = torch.tensor(f["token_type_ids"], dtype=torch.long)
        if "labels" in f:
            out["labels"][i, :L] = torch.tensor(f["labels"], dtype=torch.long)
    return out


def predict_ids(model, feats: Sequence[dict], batch_size: int, pad_id: int, *, sort: bool = True,
                pad_to: int | None = None, device=None, precision: str = "fp32") -> list:
    """Argmax class per feature (sequence) or per word position (token), in input order; inputs go to
    ``device`` (None: the model's) and the forward pass runs under ``precision``'s autocast."""
    import torch

    model.eval()
    if device is None:
        device = next(model.parameters()).device
    token = bool(feats) and "word_pos" in feats[0]
    out: list = [None] * len(feats)
    keys = ("input_ids", "attention_mask", "token_type_ids")
    with torch.inference_mode():
        for b in length_batches([len(f["input_ids"]) for f in feats], batch_size, sort=sort):
            batch = collate([_strip(feats[i]) for i in b], pad_id, pad_to)
            inputs = {k: v.to(device) for k, v in batch.items() if k in keys}
            with autocast(device, precision):
                logits = model(**inputs).logits
            best = logits.argmax(-1).cpu().numpy()
            for j, i in enumerate(b):
                out[i] = best[j][feats[i]["word_pos"]].tolist() if token else int(best[j])
    return out


def _strip(f: dict) -> dict:
    return {k: f[k] for k in ("input_ids", "token_type_ids") if k in f}


# --------------------------------------------------------------------------------------------
# the fine-tuned predictor


class FineTuner:
    """Encoder + head for one task. ``fit`` fine-tunes a fresh copy for one seed; ``predict`` labels
    examples. The tokenizer and config are loaded (and checked) once. ``device``: see
    :func:`metaxlm.devices.resolve_device` (None = auto)."""

    def __init__(self, ref: ModelRef, spec: TaskSpec, labels: Sequence[str], params: FinetuneParams,
                 device=None):
        quiet_transformers()
        self.ref, self.spec, self.params = ref, spec, params
        self.labels = list(labels)
        self.label2id = {lab: i for i, lab in enumerate(self.labels)}
        self.config = load_config(ref)
        self.tokenizer = load_tokenizer(ref)
        check_tokenizer_matches(self.tokenizer, self.config, ref.path)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = getattr(self.config, "pad_token_id", None) or 0
        self.lr = params.lr or default_lr(self.config)
        limit = position_limit(self.config)
        self.max_length = min(params.max_length, limit) if limit else params.max_length
        self.device = resolve_device(device)
        self.precision = pick_precision(self.device)
        self.model = None
        self.best_epoch = None
        self.dev_history: list[float] = []

    def encode(self, examples: Sequence, with_labels: bool = True) -> list[dict]:
        l2i = self.label2id if with_labels else None
        if self.spec.kind == "token":
            return encode_tokens(self.tokenizer, examples, self.max_length, l2i)
        return encode_sequence(self.tokenizer, examples, self.max_length, l2i)

    def _new_model(self):
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

        cls = AutoModelForTokenClassification if self.spec.kind == "token" else AutoModelForSequenceClassification
        model = load_model(self.ref, cls, num_labels=len(self.labels),
                           id2label=dict(enumerate(self.labels)), label2id=dict(self.label2id),
                           ignore_mismatched_sizes=True)
        return model.to(self.device)

    def fit(self, train: Sequence, dev: Sequence, seed: int,
            dev_score: Callable[[Sequence, list], float], progress=None) -> None:
        import torch

        p = self.params
        set_seed(seed)
        model = self._new_model()
        feats = self.encode(train)
        rng = random.Random(seed)
        lengths = [len(f["input_ids"]) for f in feats]
        steps_per_epoch = math.ceil(len(feats) / p.batch_size)
        total = max(1, steps_per_epoch * p.epochs)
        warm = int(total * p.warmup_ratio)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        groups = [
            {"params": [w for n, w in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": p.weight_decay},
            {"params": [w for n, w in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        scaler = grad_scaler(self.precision)  # fp16 only: loss scaling
        best, best_state, self.dev_history = -math.inf, None, []
        for epoch in range(1, p.epochs + 1):
            model.train()
            for b in length_batches(lengths, p.batch_size, rng=rng):
                batch = {k: v.to(self.device) for k, v in collate([feats[i] for i in b], self.pad_id).items()}
                with autocast(self.device, self.precision):
                    loss = model(**batch).loss
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                if p.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                if progress is not None:
                    progress.advance(1, loss=loss.item())
            self.model = model
            score = dev_score(dev, self.predict(dev))
            self.dev_history.append(score)
            if score > best:
                best, self.best_epoch = score, epoch
                if epoch < p.epochs:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    best_state = None  # the current weights are the best
        if best_state is not None:
            model.load_state_dict(best_state)
        self.model = model

    def steps(self, n_train: int) -> int:
        return math.ceil(n_train / self.params.batch_size) * self.params.epochs

    def predict(self, examples: Sequence) -> list:
        feats = self.encode(examples, with_labels=False)
        ids = predict_ids(self.model, feats, self.params.eval_batch_size, self.pad_id, device=self.device,
                          precision=self.precision)
        if self.spec.kind != "token":
            return [self.labels[i] for i in ids]
        per_sent: list[list[str]] = [[] for _ in examples]
        for f, tags in zip(feats, ids):
            per_sent[f["sent"]].extend(self.labels[t] for t in tags)
        return per_sent

    def release(self) -> None:
        self.model = None
