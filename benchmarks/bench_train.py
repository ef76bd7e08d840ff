#!/usr/bin/env python
"""metaxlm's training loop vs Hugging Face ``Trainer`` on the same model and data, side by side.

Both sides train the same randomly initialised XLM-R-style model (``--preset``, default ``demo``)
with the same optimizer settings on the same packed 128-token blocks of the same corpus:

(a) ``metaxlm.train.train`` (the real entry point, with validation at the end only): LM head and
    last layer only at the masked positions, packed blocks without attention mask;
(b) ``transformers.Trainer`` + ``DataCollatorForLanguageModeling`` (15% masking, 80/10/10).

Prints tokens/s of each (steady state: the first steps are warm-up and not counted) by the wall
clock and per CPU-second of the process (the second is robust to other work on the machine), the ratio,
the losses along the way, and the achieved FLOP/s against a measured float32 matmul peak.

    python benchmarks/bench_train.py                    # default benchmark corpus, demo preset
    python benchmarks/bench_train.py --corpus DIR --steps 60 --threads 2
    python benchmarks/bench_train.py --contention       # metaxlm alone vs next to one busy process

``--contention`` runs metaxlm's side in fresh processes: alone and next to one busy process (a
pure-Python spin loop on one core), under OpenMP's default wait policy (OMP_WAIT_POLICY unset: spin,
then sleep), under PASSIVE (no spinning) and under metaxlm's own choice (``auto``: the CLI's
:func:`metaxlm.cpuload.choose_wait_policy`, PASSIVE only when other processes are busy at start),
and prints tokens/s and each one's share of the quiet default side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("METAXLM_PROGRESS", "0")


def synthetic_corpus(root: Path, lines: int = 20000, seed: int = 0) -> Path:
    """Three made-up languages with Zipfian vocabularies (used when no corpus is available)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for lang, syll in {"en": "ba be bi bo bu ka ke ki ko ku", "de": "da de di do du ga ge gi go gu",
                       "fr": "la le li lo lu ma me mi mo mu"}.items():
        s = syll.split()
        words = ["".join(rng.choice(s, size=rng.integers(1, 5))) for _ in range(30000)]
        p = 1.0 / np.arange(1, len(words) + 1)
        p /= p.sum()
        with open(root / f"{lang}.txt", "w", encoding="utf-8") as f:
            for _ in range(lines):
                f.write(" ".join(rng.choice(words, size=rng.integers(8, 40), p=p)) + "\n")
    return root


def matmul_peak(threads: int, device: str = "cpu", n: int | None = None, reps: int = 20) -> float:
    """The best of three timings of ``reps`` square matrix products: float32 on the CPU (n 1024), bf16
    on a GPU (n 8192, random data, synchronised)."""
    import torch

    cuda = device.startswith("cuda")
    n = n or (8192 if cuda else 1024)
    dtype = torch.bfloat16 if cuda else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t))
    return best


def flops_per_token(cfg, seq_len: int, head_fraction: float, sparse_last_layer: bool = False) -> float:
    """Training FLOPs per token (forward + backward = 3 × forward), matmuls only.

    ``head_fraction``: share of positions that go through the LM head; ``sparse_last_layer``: the last
    layer computes queries, attention, output and feed-forward only for those positions.
    """
    h, f, layers, v = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    kv = 2 * 2 * h * h
    rest = 2 * (2 * h * h + 2 * h * f) + 2 * 2 * seq_len * h  # q, o, ffn + attention scores/values
    last = kv + rest * (head_fraction if sparse_last_layer else 1.0)
    head = 2 * (h * h + h * v) * head_fraction
    return 3 * ((layers - 1) * (kv + rest) + last + head)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="corpus directory (default: the default benchmark's, "
                    "else a synthetic one)")
    ap.add_argument("--tokenizer", default=None, help="a tokenizer directory (default: train one, 16k Unigram)")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per side")
    ap.add_argument("--warmup-steps", type=int, default=10, help="first steps not counted in tokens/s")
    ap.add_argument("--log-every", type=int, default=10, help="metaxlm's metrics interval (its default: 10)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=16000)
    ap.add_argument("--only", choices=["metaxlm", "hf"], default=None)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto: both sides run there (bf16 on a GPU "
                    "that has it, the peak is then a bf16 matmul)")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("--contention", action="store_true", help="metaxlm alone vs next to one busy process")
    ap.add_argument("--wait-policy", choices=["env", "auto"], default="env",
                    help="auto: choose OpenMP's wait policy as the metaxlm CLI does (metaxlm.cpuload)")
    args = ap.parse_args()
    if args.contention:
        return contention(args)
    if args.wait_policy == "auto":  # before torch loads
        from metaxlm.cpuload import choose_wait_policy

        print(f"wait policy: {choose_wait_policy()}", flush=True)

    import torch

    torch.set_num_threads(args.threads)
    from metaxlm.devices import pick_precision, resolve_device
    from metaxlm.paths import default_benchmark_dir
    from metaxlm.train import TrainConfig, train, train_tokenizer
    from metaxlm.train.loop import resolve_config
    from metaxlm.train.model import model_config, preset
    from metaxlm.train.tokenizer import load_tokenizer

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    corpus = Path(args.corpus) if args.corpus else default_benchmark_dir() / "corpus"
    if not corpus.is_dir():
        corpus = synthetic_corpus(work / "corpus")
    print(f"corpus: {corpus}   threads: {args.threads}   preset: {args.preset}", flush=True)
    tok_dir = Path(args.tokenizer) if args.tokenizer else None
    if tok_dir is None:
        t = time.time()
        tok_dir = train_tokenizer(corpus, work / "tok", vocab_size=args.vocab_size, max_lines=100_000)
        print(f"tokenizer: trained in {time.time() - t:.0f}s", flush=True)
    tok = load_tokenizer(tok_dir)
    p = preset(args.preset)
    seq_len, batch = p["seq_len"], p["batch_size"]
    tokens_per_step = seq_len * batch
    cfg = resolve_config(TrainConfig(
        regime="single", corpus=corpus, tokenizer=tok_dir, model=args.preset, total_tokens=args.steps * tokens_per_step,
        log_every=args.log_every, val_every=0, val_blocks=1, save_every=10 ** 9, seed=0, warmup=0.1,
        device="cuda" if str(args.device).startswith("cuda") else args.device))
    device = resolve_device(cfg.device)
    precision = pick_precision(device, "auto")
    mcfg = model_config(args.preset, {}, len(tok), seq_len)
    peak = matmul_peak(args.threads, str(device))
    out: dict = {"preset": args.preset, "threads": args.threads, "steps": args.steps, "seq_len": seq_len,
                 "batch_size": batch, "vocab_size": len(tok), "matmul_peak_flops": peak, "device": str(device),
                 "precision": precision}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    print(f"model: {mcfg.num_hidden_layers} layers, hidden {mcfg.hidden_size}, vocab {len(tok)}, "
          f"seq {seq_len}, batch {batch}; device {device} ({precision}); matmul peak {peak / 1e12:.3f} TFLOP/s "
          f"({'bf16' if device.type == 'cuda' else 'fp32'})", flush=True)

    # (a) metaxlm ------------------------------------------------------------------------------
    if args.only in (None, "metaxlm"):
        t = time.time()
        run = train(cfg, work / "run")
        wall = time.time() - t
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        tr = [r for r in lines if r["type"] == "train"]
        skip = -(-args.warmup_steps // args.log_every)  # log lines that cover warm-up steps
        steady = [r["tokens_per_s"] for r in tr[skip:]]
        tps = len(steady) / sum(1.0 / x for x in steady)  # tokens / seconds over the steady steps
        cpu = [r["tokens_per_cpu_s"] for r in tr[skip:]]
        cps = len(cpu) / sum(1.0 / x for x in cpu)
        f = flops_per_token(mcfg, seq_len, cfg.mask_prob, sparse_last_layer=True)
        out["metaxlm"] = {"tokens_per_s": tps, "tokens_per_cpu_s": cps, "losses": [r["loss"] for r in tr],
                          "wall_s": wall, "flops_per_token": f, "achieved_flops": tps * f}
        print(f"(a) metaxlm: {tps:,.0f} tokens/s, {cps:,.0f} tokens per CPU-second  (whole run incl. setup "
              f"{wall:.0f}s)  {tps * f / 1e9:.1f} GFLOP/s = {tps * f / peak:.0%} of peak", flush=True)

    # (b) HF Trainer + DataCollatorForLanguageModeling ----------------------------------------
    if args.only in (None, "hf"):
        from transformers import (DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments,
                                  XLMRobertaForMaskedLM)
        from transformers.utils import logging as hf_logging

        from metaxlm.train.batches import BatchMaker, MaskSpec, Streams
        from metaxlm.train.corpus import resolve_files
        from metaxlm.train.tokcache import prepare_tokens

        hf_logging.set_verbosity_error()
        cached = prepare_tokens(resolve_files(corpus), tok)  # the same token cache metaxlm's side read
        streams = Streams({k: t.train for k, t in cached.items()}, {k: t.val for k, t in cached.items()})
        maker = BatchMaker(streams, seq_len, batch, cfg.alpha, 0,
                           MaskSpec(0.15, 0.8, 0.1, tok.mask_token_id, len(tok), (0, 1, 2, 3, 4)), tok.bos_token_id)
        blocks = []
        langs = tuple(sorted(cached))
        for s in range(args.steps):
            x, m, y, _ = maker.global_batch(s, langs)
            x = x.copy()
            x[m] = y  # the unmasked blocks: the collator masks
            blocks.extend({"input_ids": row.tolist()} for row in x)

        class Times(TrainerCallback):
            def __init__(self):
                self.t, self.c = [], []

            def on_step_end(self, a, state, control, **kw):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                self.t.append(time.perf_counter())
                self.c.append(time.process_time())

        torch.manual_seed(0)
        model = XLMRobertaForMaskedLM(mcfg)
        targs = TrainingArguments(
            output_dir=str(work / "hf"), per_device_train_batch_size=batch, max_steps=args.steps,
            learning_rate=cfg.lr, warmup_steps=max(1, int(0.1 * args.steps)), weight_decay=cfg.weight_decay,
            adam_beta1=cfg.adam_betas[0], adam_beta2=cfg.adam_betas[1], adam_epsilon=cfg.adam_eps,
            max_grad_norm=cfg.clip, logging_steps=1, report_to=[], save_strategy="no",
            use_cpu=device.type == "cpu", bf16=precision == "bf16", fp16=precision == "fp16",
            dataloader_num_workers=0, disable_tqdm=True, seed=0)
        times = Times()
        trainer = Trainer(model=model, args=targs, train_dataset=blocks, callbacks=[times],
                          data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15))
        t = time.time()
        trainer.train()
        wall = time.time() - t
        ts = times.t
        w = min(args.warmup_steps, len(ts) - 2)
        tps = (len(ts) - 1 - w) * tokens_per_step / (ts[-1] - ts[w])
        cps = (len(ts) - 1 - w) * tokens_per_step / (times.c[-1] - times.c[w])
        f = flops_per_token(mcfg, seq_len, 1.0)
        losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
        out["hf"] = {"tokens_per_s": tps, "tokens_per_cpu_s": cps, "losses": losses, "wall_s": wall,
                     "flops_per_token": f, "achieved_flops": tps * f}
        print(f"(b) HF Trainer: {tps:,.0f} tokens/s, {cps:,.0f} tokens per CPU-second  (train() {wall:.0f}s)  "
              f"{tps * f / 1e9:.1f} GFLOP/s executed = {tps * f / peak:.0%} of peak (full-vocabulary head on "
              "every position)", flush=True)

    if "metaxlm" in out and "hf" in out:
        a, b = out["metaxlm"], out["hf"]
        out["ratio"] = a["tokens_per_s"] / b["tokens_per_s"]
        out["ratio_cpu"] = a["tokens_per_cpu_s"] / b["tokens_per_cpu_s"]
        print(f"ratio metaxlm / HF Trainer: {out['ratio']:.2f}x tokens/s (wall clock), "
              f"{out['ratio_cpu']:.2f}x tokens per CPU-second (robust to other load on the machine)")
        # metaxlm logs the mean loss of every log_every steps; average HF's per-step losses the same way
        e = args.log_every
        hf_means = [statistics.mean(b["losses"][i:i + e]) for i in range(0, len(b["losses"]), e)]
        print(f"mean loss per {e} steps (metaxlm | HF):")
        for i, (x, y) in enumerate(zip(a["losses"], hf_means)):
            print(f"  steps {i * e + 1:4d}-{min((i + 1) * e, args.steps):4d}: {x:.3f} | {y:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def contention(args) -> int:
    """metaxlm's tokens/s alone and next to one busy process, per OpenMP wait policy, side by side."""
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="bench-contention-"))
    tok = args.tokenizer
    if tok is None:
        from metaxlm.paths import default_benchmark_dir
        from metaxlm.train import train_tokenizer

        corpus = Path(args.corpus) if args.corpus else default_benchmark_dir() / "corpus"
        tok = str(train_tokenizer(corpus, work / "tok", vocab_size=args.vocab_size, max_lines=100_000))
    rows = []
    policies = ("default", "PASSIVE", "auto")
    for policy in policies:
        for busy in (False, True):
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "METAXLM_WAIT_POLICY")}
            if policy == "PASSIVE":
                env["OMP_WAIT_POLICY"] = policy
            out = work / f"{policy}-{busy}.json"
            cmd = [sys.executable, __file__, "--only", "metaxlm", "--preset", args.preset, "--steps", str(args.steps),
                   "--warmup-steps", str(args.warmup_steps), "--threads", str(args.threads), "--tokenizer", tok,
                   "--json", str(out), "--wait-policy", "auto" if policy == "auto" else "env"]
            cmd += ["--corpus", args.corpus] if args.corpus else []
            spin = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                time.sleep(0.5 if busy else 0)  # the spinner is running when the child samples the load
                subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            finally:
                if spin is not None:
                    spin.kill()
                    spin.wait()
            rows.append((policy, busy, json.loads(out.read_text())["metaxlm"]["tokens_per_s"]))
            print(f"{policy:8s} {'one busy process' if busy else 'quiet':16s} {rows[-1][2]:9,.0f} tokens/s", flush=True)
    base = next(r[2] for r in rows if r[0] == "default" and not r[1])
    print("\n| OpenMP wait policy | quiet tokens/s | with one busy process | busy / quiet | "
          "quiet / quiet default | busy / quiet default |")
    print("|---|---|---|---|---|---|")
    names = {"default": "unset (OpenMP default)", "PASSIVE": "PASSIVE", "auto": "auto (metaxlm's choice)"}
    for policy in policies:
        q, b = [r[2] for r in rows if r[0] == policy]
        print(f"| {names[policy]} | {q:,.0f} | {b:,.0f} | {b / q:.0%} | {q / base:.0%} | {b / base:.0%} |")
    if args.json:
        Path(args.json).write_text(json.dumps([{"policy": p, "busy": b, "tokens_per_s": t} for p, b, t in rows],
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
