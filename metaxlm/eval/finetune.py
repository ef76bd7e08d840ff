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
- The recipe (:class:`FinetuneParams`): for each learning rate of a small grid (default: 3 values
  around :func:`default_lr`; one ``lr`` = no search), train by steps with warmup + linear decay over
  the budget (``epochs``, capped by ``max_steps``), score English dev every epoch (or every
  ``eval_every`` steps), stop after ``patience`` evaluations without improvement (not before
  ``min_steps``) and restore the best step's weights; the lr with the best English dev score wins.
  Everything is chosen on English dev (primary metric) only.
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
    """Learning rate by encoder width (the centre of the default grid): small encoders need a larger
    step. Measured on the topic task: a 4-layer hidden-256 encoder collapses to the majority class at
    1e-4 and learns at 5e-4 (3,000 examples, 2 epochs); the demo's 4 × 128 encoder (2,000 examples,
    8 epochs) reaches English dev 0.585 at 1e-3, 0.511 at 2.5e-3 (docs/transfer.md); 2e-5–5e-5 is the
    usual range for base-size (768) encoders."""
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    if hidden and hidden <= 256:
        return 1e-3
    if hidden and hidden <= 512:
        return 1e-4
    return 3e-5


def lr_grid_around(lr: float) -> tuple[float, ...]:
    """The default search: ``lr`` / 2.5, ``lr``, ``lr`` × 2.5 (rounded to 2 significant digits)."""
    return tuple(float(f"{x:.2g}") for x in (lr / 2.5, lr, lr * 2.5))


@dataclass(frozen=True)
class FinetuneParams:
    lr: float | None = None  # one learning rate: no search
    lr_grid: tuple[float, ...] | None = None  # None (and no lr): lr_grid_around(default_lr(model config))
    lr_search: str = "first"  # first: search the grid on the first seed, reuse its lr | every: on every seed
    epochs: int = 5  # the most epochs (early stopping may end sooner); topic: 8 (tasks.py)
    max_steps: int = 0  # the most optimizer steps; 0: epochs decide
    min_steps: int = 0  # never stop early before this step
    patience: int = 3  # dev evaluations without a better score before stopping; 0: never stop early
    eval_every: int = 0  # steps between English-dev evaluations; 0: every epoch, at most EVAL_EVERY steps
    batch_size: int = 32
    max_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_batch_size: int = 64
    grad_clip: float = 1.0


EVAL_EVERY = 500  # eval_every=0: once an epoch, or every this many steps when an epoch is longer


def budget_steps(n_train: int, p: FinetuneParams) -> int:
    """The step budget (and the length of the linear-decay schedule): epochs, capped by max_steps."""
    total = max(1, math.ceil(n_train / p.batch_size) * p.epochs)
    return min(total, p.max_steps) if p.max_steps else total


def eval_interval(steps_per_epoch: int, p: FinetuneParams) -> int:
    return p.eval_every or max(1, min(steps_per_epoch, EVAL_EVERY))


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
    """Word-chunked features: ``{input_ids, word_pos, word_len, sent, start, [labels]}``.

    ``word_pos`` are the positions of each word's first subword and ``word_len`` its number of
    subwords (its pieces are ``input_ids[pos:pos + len]``); ``sent``/``start`` say which sentence
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
            f = {"input_ids": ids, "word_pos": pos, "word_len": [len(x) for x in pieces[start:end]],
                 "sent": si, "start": start}
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
        if params.lr is not None:
            self.lr_grid: tuple[float, ...] = (params.lr,)
        else:
            self.lr_grid = tuple(params.lr_grid or lr_grid_around(default_lr(self.config)))
        self.lr = self.lr_grid[0] if len(self.lr_grid) == 1 else None  # after fit: the chosen one
        self._searched: dict | None = None  # lr_search "first": {seed, runs, lr} of the first seed's search
        limit = position_limit(self.config)
        self.max_length = min(params.max_length, limit) if limit else params.max_length
        self.device = resolve_device(device)
        self.precision = pick_precision(self.device)
        self.model = None
        self.best_epoch = None
        self.dev_history: list[dict] = []
        self.fit_record: dict = {}

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
        """Fine-tune once per learning rate of the grid (same seed: same initial head and batch order),
        each run stopped early on English dev and restored to its best step; keep the run with the best
        dev score (ties: the first lr). With ``lr_search="first"`` the grid is searched on the first
        seed fitted and its lr reused for the later ones. ``fit_record`` says what was chosen and why."""
        feats = self.encode(train)
        searched = self._searched
        best, runs = None, []
        for lr in self._grid():
            model, run = self._fit_one(feats, dev, seed, lr, dev_score, progress)
            runs.append(run)
            if best is None or run["best_dev"] > best[1]["best_dev"]:
                best = (model, run)
            del model
        self.model, run = best
        self.lr = run["lr"]
        self.best_epoch = run["best_epoch"]
        self.dev_history = run["dev_history"]
        search = [{k: r[k] for k in ("lr", "best_dev", "best_step", "stop_step")} for r in runs]
        if searched is None:
            searched = {"seed": seed, "runs": search}
            if self.params.lr_search == "first" and len(self.lr_grid) > 1:
                self._searched = {**searched, "lr": run["lr"]}
        self.fit_record = {
            "lr": run["lr"], "best_step": run["best_step"], "stop_step": run["stop_step"],
            "max_steps": run["max_steps"], "steps_per_epoch": run["steps_per_epoch"], "best_dev": run["best_dev"],
            "lr_search": searched["runs"], "lr_search_seed": searched["seed"],
        }

    def _grid(self) -> tuple[float, ...]:
        return (self._searched["lr"],) if self._searched else self.lr_grid

    def _fit_one(self, feats: list[dict], dev: Sequence, seed: int, lr: float,
                 dev_score: Callable[[Sequence, list], float], progress=None):
        """One fine-tuning run at ``lr``: warmup + linear decay over the step budget, English dev every
        ``eval_every`` steps, stop after ``patience`` evaluations without a better dev score (never before
        ``min_steps``), best weights restored. Returns (model, record)."""
        import torch

        p = self.params
        set_seed(seed)
        model = self._new_model()
        rng = random.Random(seed)
        lengths = [len(f["input_ids"]) for f in feats]
        per_epoch = math.ceil(len(feats) / p.batch_size)
        total = budget_steps(len(feats), p)
        every = eval_interval(per_epoch, p)
        warm = int(total * p.warmup_ratio)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        groups = [
            {"params": [w for n, w in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": p.weight_decay},
            {"params": [w for n, w in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        scaler = grad_scaler(self.precision)  # fp16 only: loss scaling
        best, best_step, best_state, bad, history = -math.inf, 0, None, 0, []
        step, stop = 0, False
        while step < total and not stop:
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
                step += 1
                if progress is not None:
                    progress.advance(1, loss=loss.item(), lr=lr)
                if step % every == 0 or step == total:
                    self.model = model
                    score = dev_score(dev, self.predict(dev))
                    model.train()
                    history.append({"step": step, "epoch": round(step / per_epoch, 3), "dev": score})
                    if score > best:
                        best, best_step, bad = score, step, 0
                        best_state = None if step == total else {k: v.detach().clone() for k, v in
                                                                 model.state_dict().items()}
                    else:
                        bad += 1
                    if p.patience and bad >= p.patience and step >= p.min_steps:
                        stop = True
                if stop or step >= total:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        if progress is not None and step < total:
            progress.advance(total - step)  # the steps early stopping saved
        self.model = None
        return model, {"lr": lr, "best_dev": best, "best_step": best_step, "stop_step": step,
                       "best_epoch": math.ceil(best_step / per_epoch), "max_steps": total,
                       "steps_per_epoch": per_epoch, "dev_history": history}

    def steps(self, n_train: int) -> int:
        return budget_steps(n_train, self.params) * len(self._grid())

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
