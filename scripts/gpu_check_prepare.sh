#!/usr/bin/env bash
# What scripts/gpu_check.sh needs on a GPU machine without network, made here (needs PyPI and the default
# benchmark, `metaxlm data build`): .whl/ (faiss-cpu, seqeval for Python 3.12 x86_64; the GPU image has
# the rest) and .bench/benchmark.tar.gz (the default benchmark). Both folders are git-ignored; carry them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p .whl .bench
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
  -d .whl "faiss-cpu==1.15.1"
python3 -m pip download -q --no-deps -d .whl "seqeval==1.2.2"  # a source package: build a wheel of it
(cd .whl && for f in seqeval-*.tar.gz; do [ -f "$f" ] && python3 -m pip wheel -q --no-deps "$f" -w . && rm "$f"; done) || true
BENCH=${METAXLM_BENCHMARK:-$(python3 -c 'from metaxlm.paths import default_benchmark_dir; print(default_benchmark_dir())')}
tar -czf .bench/benchmark.tar.gz -C "$(dirname "$BENCH")" --transform "s,^$(basename "$BENCH"),benchmark," "$(basename "$BENCH")"
du -sh .whl .bench
