"""The GPU check's CPU side: its preset validates, and (slow) the whole script runs at tiny sizes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_preset_is_valid():
    from metaxlm.compare import resolve_config, validate

    cfg = resolve_config("gpu-check")
    validate(cfg)
    assert cfg.regimes == ("single", "meta", "none") and set(cfg.analyses) == {"topic", "tatoeba", "align"}
    gpu = resolve_config("gpu")
    assert gpu.data_options["size"] == "large" and gpu.train["total_tokens"] == 30_000_000  # README
    validate(gpu)


@pytest.mark.slow
def test_gpu_check_script_end_to_end_at_tiny_sizes(tmp_path):
    env = {**os.environ, "TINY": "1", "PYTHON": sys.executable, "METAXLM_CACHE": str(tmp_path / "cache")}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out")], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["bench_train.json", "bench_train.txt", "check.log", "compare.txt", "pytest-gpu.txt",
                     "report.html", "report.md", "summary.json"]
    assert all((tmp_path / "out" / f).stat().st_size < 16 << 20 for f in files)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bench_train"]["metaxlm_tokens_per_s"] > 0
    exits = re.findall(r": exit (\d+) in", (tmp_path / "out" / "check.log").read_text())
    assert exits == ["0", "0", "0"]
