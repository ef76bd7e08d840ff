#!/usr/bin/env bash
# The GPU path, measured: one prepared check (at most ~8 minutes of one GPU) whose figures go in the
# README's GPU section.
#
#   bash scripts/gpu_check.sh OUT            # on a CUDA machine
#   TINY=1 bash scripts/gpu_check.sh OUT     # the same steps at tiny sizes (any machine, CPU included)
#
# Steps, each timed into OUT/check.log:
#   1. the test suite's GPU-marked tests (tests/test_gpu.py; skipped without CUDA)  -> OUT/pytest-gpu.txt
#   2. benchmarks/bench_train.py at the `small` preset on the GPU: metaxlm's loop vs HF Trainer, tokens/s,
#      achieved TFLOP/s and its share of a measured bf16 matmul peak             -> OUT/bench_train.{txt,json}
#   3. metaxlm compare --preset gpu-check (single, meta, none; topic, Tatoeba, CKA; the report)
#                                                          -> OUT/compare.txt, OUT/report.md, OUT/report.html
#   4. OUT/summary.json: versions, GPU, wall time per step, the figures of 2.
# At most 8 files, each well under 16 MiB.
#
# Without network (a lent GPU machine): the machine's own python3 has torch, transformers, tokenizers,
# scikit-learn, typer, rich, matplotlib, safetensors, pyyaml. Carry the rest as wheels in .whl/ and the
# default benchmark as .bench/benchmark.tar.gz (scripts/gpu_check_prepare.sh makes both here); they are
# installed/unpacked into /tmp. The package itself runs from the checkout (PYTHONPATH).
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUT}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/check.log"
: > "$LOG"
PY=${PYTHON:-python3}
export METAXLM_PROGRESS=0 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export METAXLM_CACHE=${METAXLM_CACHE:-/tmp/metaxlm-gpu-check/cache}
if [ -d "$ROOT/.whl" ] && ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$ROOT"/.whl/*.whl >>"$LOG" 2>&1 && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -z "${METAXLM_BENCHMARK:-}" ] && [ -f "$ROOT/.bench/benchmark.tar.gz" ]; then
  mkdir -p /tmp/metaxlm-gpu-check && tar -xzf "$ROOT/.bench/benchmark.tar.gz" -C /tmp/metaxlm-gpu-check
  export METAXLM_BENCHMARK=/tmp/metaxlm-gpu-check/benchmark
fi
cd "$ROOT"

declare -A SECS
step() {  # step NAME OUTFILE COMMAND...: run, time, log
  local name=$1 file=$2; shift 2
  local t0=$(date +%s.%N)
  echo "== $name: $*" >>"$LOG"
  "$@" >"$file" 2>&1
  local rc=$?
  local t1=$(date +%s.%N)
  SECS[$name]=$(awk "BEGIN{printf \"%.1f\", $t1-$t0}")
  echo "== $name: exit $rc in ${SECS[$name]} s" | tee -a "$LOG"
  return 0
}

"$PY" - >>"$LOG" 2>&1 <<'EOF'
import torch, transformers, tokenizers
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("transformers", transformers.__version__, "tokenizers", tokenizers.__version__)
try:
    import faiss
    print("faiss", faiss.__version__, "gpus", faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0)
except ImportError:
    print("faiss: not installed")
EOF

if [ -n "${TINY:-}" ]; then
  BENCH_ARGS=(--preset tiny --steps 12 --warmup-steps 2 --log-every 2 --vocab-size 300 --device auto
              --corpus tests/fixtures/bench/corpus)
  CMP_ARGS=(--preset smoke --data tests/fixtures/bench --regimes single,meta,none --no-controls
            --set 'analyses=[topic,tatoeba,align]')
else
  BENCH_ARGS=(--preset small --steps 60 --warmup-steps 10 --vocab-size 16000 --device cuda --threads 8)
  CMP_ARGS=(--preset gpu-check --device cuda)
fi

step pytest-gpu "$OUT/pytest-gpu.txt" "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider tests/test_gpu.py
step bench_train "$OUT/bench_train.txt" "$PY" benchmarks/bench_train.py "${BENCH_ARGS[@]}" --json "$OUT/bench_train.json"
CMP=/tmp/metaxlm-gpu-check/compare
rm -rf "$CMP"
step compare "$OUT/compare.txt" "$PY" -m metaxlm compare "${CMP_ARGS[@]}" --out "$CMP"
cp "$CMP/report.md" "$OUT/report.md" 2>/dev/null
cp "$CMP/report.html" "$OUT/report.html" 2>/dev/null

"$PY" - "$OUT" "${SECS[pytest-gpu]}" "${SECS[bench_train]}" "${SECS[compare]}" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
secs = dict(zip(["pytest-gpu", "bench_train", "compare"], map(float, sys.argv[2:5])))
summary = {"seconds": secs}
try:
    b = json.loads((out / "bench_train.json").read_text())
    m, h = b.get("metaxlm", {}), b.get("hf", {})
    summary["bench_train"] = {
        "device": b.get("device"), "gpu": b.get("gpu"), "precision": b.get("precision"),
        "matmul_peak_tflops": b["matmul_peak_flops"] / 1e12,
        "metaxlm_tokens_per_s": m.get("tokens_per_s"), "hf_tokens_per_s": h.get("tokens_per_s"),
        "ratio": b.get("ratio"),
        "metaxlm_tflops": m.get("achieved_flops", 0) / 1e12,
        "metaxlm_mfu": m.get("achieved_flops", 0) / b["matmul_peak_flops"],
        "hf_tflops": h.get("achieved_flops", 0) / 1e12}
except (OSError, KeyError, ValueError) as e:
    summary["bench_train"] = f"missing: {e}"
text = (out / "pytest-gpu.txt").read_text(errors="replace").strip().splitlines()
summary["pytest_gpu"] = text[-1] if text else "no output"
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
echo "== headline (from compare.txt):"
sed -n '/Did meta-pretraining help/,$p' "$OUT/compare.txt" | head -30
ls -la "$OUT"
