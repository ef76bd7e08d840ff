"""Exports of recorded results into other tools' formats: :mod:`metaxlm.export.mteb` (pure: metaxlm
result dicts → MTEB's TaskResult / model_meta dicts) and :func:`export_mteb` (the directory writer,
``metaxlm export mteb``)."""

from metaxlm.export.writer import MtebExportConfig, export_mteb

__all__ = ["MtebExportConfig", "export_mteb"]
