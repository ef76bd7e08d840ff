"""Default locations: the download cache and the default benchmark directory."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$METAXLM_CACHE``, else ``$XDG_CACHE_HOME/metaxlm``, else ``~/.cache/metaxlm``."""
    if os.environ.get("METAXLM_CACHE"):
        return Path(os.environ["METAXLM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "metaxlm"


def default_benchmark_dir() -> Path:
    """Where ``metaxlm data build`` writes, and where train/eval/probe look by default.

    ``$METAXLM_BENCHMARK`` overrides it.
    """
    if os.environ.get("METAXLM_BENCHMARK"):
        return Path(os.environ["METAXLM_BENCHMARK"]).expanduser()
    return cache_dir() / "benchmark"
