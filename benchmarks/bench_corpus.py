#!/usr/bin/env python
"""The token-cache data path vs the in-memory path it replaced, side by side, on a large corpus.

1. Builds a synthetic corpus of ``--size-gb`` (default 2) and one of half that size: the lines of the
   default benchmark's 8 corpora, shuffled and repeated, each language an equal share.
2. Prepares both (``metaxlm corpus prepare``): tokenizing time (as each cache entry records it), MB/s
   and tokens/s on this machine, and the peak RSS of preparation.
3. ``metaxlm train --model-size tiny`` on each with a warm cache: peak RSS of the training process (flat when
   the corpus doubles?) and the time from process start to the first optimizer step (the first line
   of ``metrics.jsonl``).
4. The baseline: the same ``metaxlm train`` from the commit before the token cache (``--baseline-rev``,
   checked out with ``git worktree`` into a temporary folder), which reads every file into memory and
   tokenizes it again at every start, on corpora it can still hold (``--baseline-mb``, and twice that).

    python benchmarks/bench_corpus.py                       # 2 GB (and 1 GB); ~40 min on 2 cores
    python benchmarks/bench_corpus.py --size-gb 0.02 --baseline-mb 5 --steps 5   # a quick check

Needs the default benchmark (``metaxlm data build``) and a git checkout (for the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# runs the CLI of the package at argv[1] and prints its peak RSS at exit (VmHWM: this process alone;
# getrusage's ru_maxrss would carry the parent's peak over fork + exec)
RSS_RUNNER = ("import sys, atexit\n"
              "sys.path.insert(0, sys.argv.pop(1))\n"
              "def hwm():\n"
              "    kb = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
              "    print('MAXRSS ' + kb[0], file=sys.stderr)\n"
              "atexit.register(hwm)\n"
              "from metaxlm.cli import main\nsys.argv[0] = 'metaxlm'\nmain()\n")


def make_corpus(out: Path, total_bytes: int, source: Path, seed: int = 0) -> Path:
    import numpy as np

    if (out / ".done").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = sorted(source.glob("*.txt"))
    share = total_bytes // len(files)
    rng = np.random.default_rng(seed)
    for f in files:
        lines = f.read_bytes().splitlines(keepends=True)
        written = 0
        with open(out / f.name, "wb") as w:
            while written < share:
                for i in rng.permutation(len(lines)):
                    w.write(lines[i])
                    written += len(lines[i])
                    if written >= share:
                        break
    (out / ".done").write_text("")
    return out


def run(cmd: list[str], env: dict, src: Path, metrics: Path | None = None) -> dict:
    """Run the CLI of the package at ``src``; wall time, peak RSS and time to the first metrics line."""
    t0 = time.time()
    p = subprocess.Popen([sys.executable, "-c", RSS_RUNNER, str(src)] + cmd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = None
    while p.poll() is None:
        if metrics is not None and first is None and metrics.is_file():
            for line in metrics.read_text().splitlines():
                if '"type": "train"' in line:
                    first = time.time() - t0
                    break
        time.sleep(0.02)
    out, err = p.communicate()
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    rss = [int(x.split()[1]) for x in err.splitlines() if x.startswith("MAXRSS ")]
    return {"wall_s": wall, "peak_rss_mb": rss[-1] / 1024 if rss else None, "first_step_s": first, "stdout": out}


def corpus_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.glob("*.txt"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--baseline-mb", type=float, default=150.0)
    ap.add_argument("--baseline-rev", default="bad14d3", help="the last commit with the in-memory data path")
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps of each training run")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "metaxlm-bench-corpus")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    from metaxlm.paths import default_benchmark_dir

    source = default_benchmark_dir() / "corpus"
    if not source.is_dir():
        raise SystemExit(f"no default benchmark corpus at {source}: run `metaxlm data build` first")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "METAXLM_PROGRESS": "0", "METAXLM_CACHE": str(work / "cache"),
           "METAXLM_BENCHMARK": str(default_benchmark_dir())}
    env.pop("TOKENIZERS_PARALLELISM", None)  # preparation uses every core

    tok = work / "tok"
    if not (tok / "tokenizer.json").is_file():
        shutil.rmtree(tok, ignore_errors=True)
        from metaxlm.train import train_tokenizer

        train_tokenizer(source, tok, vocab_size=8000)
    big = int(args.size_gb * 1e9)
    sizes = {"half": big // 2, "full": big}
    corpora = {k: make_corpus(work / f"corpus-{k}", n, source) for k, n in sizes.items()}
    train_args = ["--model-size", "tiny", "--tokenizer", str(tok), "--seq-len", "128", "--batch-size", "32",
                  "--total-tokens", str(args.steps * 32 * 128), "--threads", "2"]
    log1 = work / "log1.yaml"  # a train line after every step; no validation or state saving in between
    log1.write_text("log_every: 1\nval_every: 0\nsave_every: 1000000\nval_blocks: 1\n")
    rows = {}
    for k, c in corpora.items():
        mb = corpus_bytes(c) / 1e6
        print(f"[{k}] corpus {mb:,.0f} MB: preparing ...", flush=True)
        prep = run(["corpus", "prepare", "--corpus", str(c), "--tokenizer", str(tok)], env, ROOT)
        idx = [json.loads(p.read_text()) for p in (work / "cache" / "tokens").glob("*/index.json")
               if json.loads(p.read_text())["source"].startswith(str(c) + "/")]
        tokens = sum(i["train_tokens"] + i["val_tokens"] for i in idx)
        # tokenizing time as recorded when each entry was built (a rerun of this script finds the cache
        # warm: its prepare command then only checks it, and the recorded build times still hold)
        built_s = sum(i["seconds"] for i in idx)
        warm = run(["corpus", "prepare", "--corpus", str(c), "--tokenizer", str(tok)], env, ROOT)
        out = work / f"run-{k}"
        shutil.rmtree(out, ignore_errors=True)
        tr = run(["train", "--corpus", str(c), "--out", str(out)] + train_args + ["--config", str(log1)],
                 env, ROOT, out / "metrics.jsonl")
        rows[f"token cache, {mb:,.0f} MB"] = {
            "corpus_mb": mb, "prepare_s": built_s, "prepare_mb_s": mb / built_s,
            "prepare_tokens_s": tokens / built_s, "prepare_command_s": prep["wall_s"],
            "prepare_peak_rss_mb": prep["peak_rss_mb"],
            "warm_prepare_s": warm["wall_s"], "train_wall_s": tr["wall_s"], "train_peak_rss_mb": tr["peak_rss_mb"],
            "first_step_s": tr["first_step_s"], "tokens": tokens}
        print(json.dumps(rows[f"token cache, {mb:,.0f} MB"]), flush=True)

    # -- the baseline: the previous in-memory data path, from git ------------------------------------
    base_src = work / "baseline-src"
    if not (base_src / "metaxlm").is_dir():
        shutil.rmtree(base_src, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(base_src),
                        args.baseline_rev], check=True, capture_output=True)
    for factor in (1, 2):
        n = int(args.baseline_mb * 1e6 * factor)
        c = make_corpus(work / f"corpus-baseline-{factor}", n, source)
        mb = corpus_bytes(c) / 1e6
        out = work / f"run-baseline-{factor}"
        shutil.rmtree(out, ignore_errors=True)
        print(f"[baseline] corpus {mb:,.0f} MB: training ...", flush=True)
        tr = run(["train", "--corpus", str(c), "--out", str(out)] + train_args + ["--config", str(log1)],
                 env, base_src, out / "metrics.jsonl")
        rows[f"in-memory ({args.baseline_rev}), {mb:,.0f} MB"] = {
            "corpus_mb": mb, "train_wall_s": tr["wall_s"], "train_peak_rss_mb": tr["peak_rss_mb"],
            "first_step_s": tr["first_step_s"]}
        print(json.dumps(rows[f"in-memory ({args.baseline_rev}), {mb:,.0f} MB"]), flush=True)

    print()
    print("| data path, corpus | prepare (once) | MB/s | tokens/s | first optimizer step (warm) | "
          "peak RSS of training |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        prep = f"{r['prepare_s']:.0f} s" if "prepare_s" in r else "— (every run)"
        mbs = f"{r['prepare_mb_s']:.2f}" if "prepare_mb_s" in r else "—"
        tks = f"{r['prepare_tokens_s']:,.0f}" if "prepare_tokens_s" in r else "—"
        print(f"| {name} | {prep} | {mbs} | {tks} | {r['first_step_s']:.1f} s | {r['train_peak_rss_mb']:,.0f} MB |")
    cache_rows = [r for k, r in rows.items() if k.startswith("token cache")]
    base_rows = [r for k, r in rows.items() if not k.startswith("token cache")]
    if len(cache_rows) == 2:
        print(f"\ntoken cache: peak RSS ratio when the corpus doubles: "
              f"{cache_rows[1]['train_peak_rss_mb'] / cache_rows[0]['train_peak_rss_mb']:.2f}×")
    if len(base_rows) == 2:
        print(f"in-memory: peak RSS ratio when the corpus doubles: "
              f"{base_rows[1]['train_peak_rss_mb'] / base_rows[0]['train_peak_rss_mb']:.2f}×; time to first step "
              f"{base_rows[0]['first_step_s']:.1f} s → {base_rows[1]['first_step_s']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
