"""The default benchmark, fetched from the Debian archive and derived leak-free (docs/benchmark.md).

- :func:`fetch_sources` downloads (or reuses) the verified source files into the cache;
- :func:`build_benchmark` fetches what is missing and builds the benchmark directory;
- :func:`benchmark_info` reads a built benchmark's ``stats.json``.
"""

from metaxlm.data.build import BuildConfig, build_benchmark
from metaxlm.data.fetch import FetchConfig, fetch_sources
from metaxlm.data.info import benchmark_info, check_benchmark

__all__ = ["BuildConfig", "FetchConfig", "benchmark_info", "build_benchmark", "check_benchmark", "fetch_sources"]
