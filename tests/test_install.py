"""What `pip install -e .` asks for: no cap on torch (a GPU user's newer CUDA build stays in place),
one faiss build per extra, and the floors the suite is run with."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _reqs(names):
    return {Requirement(r).name: Requirement(r) for r in names}


def test_torch_has_no_upper_bound():
    deps = _reqs(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    torch = deps["torch"].specifier
    for newer in ("2.13.0", "2.14.1", "3.0.0", "9.9"):
        assert torch.contains(newer), newer
    assert not any(s.operator in ("<", "<=", "==", "~=", "===") for s in torch)


def test_faiss_is_an_extra_with_one_build_each():
    meta = tomllib.loads(PYPROJECT.read_text())["project"]
    assert not {"faiss-cpu", "faiss-gpu"} & set(_reqs(meta["dependencies"]))
    extras = {k: set(_reqs(v)) for k, v in meta["optional-dependencies"].items()}
    assert extras["cpu"] == {"faiss-cpu"} and extras["gpu"] == {"faiss-gpu"}
    assert "faiss-cpu" in extras["dev"] and "faiss-gpu" not in extras["dev"]


def test_installed_versions_meet_the_floors():
    from importlib.metadata import version

    from packaging.version import Version

    deps = _reqs(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    for name in ("transformers", "tokenizers", "torch", "numpy"):
        assert deps[name].specifier.contains(Version(version(name)).base_version), name


def test_missing_faiss_is_one_clear_line(monkeypatch):
    import sys

    import pytest

    from metaxlm.errors import UserError
    from metaxlm.eval.retrieval import import_faiss

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(UserError, match=r"pip install 'metaxlm\[cpu\]'.*'metaxlm\[gpu\]'"):
        import_faiss()
