"""metaxlm: cross-lingual language-model research toolkit.

The path of data through the package: ``metaxlm.data`` (benchmark from the Debian archive) →
``metaxlm.train`` (tokenizer, MLM pretraining regimes) → ``metaxlm.eval`` / ``metaxlm.probe``
(transfer, retrieval, alignment) → ``metaxlm.report`` (comparison reports). ``metaxlm.compare``
runs the whole path.

Python API (loaded on first use: ``import metaxlm`` imports neither torch nor transformers)::

    import metaxlm
    run = metaxlm.run_tatoeba(model=my_encoder, data="bench/", out="runs/t")   # any encode() object
    run.path, run.result["mean"]["acc_cosine"]
    metaxlm.linear_cka(X, Y)                                                # pure compute functions

Runners (:mod:`metaxlm.api`, each returns a :class:`~metaxlm.api.Run` with ``.path`` and
``.result``): ``run_train``, ``train_tokenizer``, ``run_transfer``, ``run_tatoeba``, ``run_bucc``,
``run_align``, ``run_compare``, ``build_report``, ``build_benchmark``, ``fetch_sources``,
``export_mteb`` (no name shadows a subpackage such as ``metaxlm.train``). Encoders:
``Encoder`` (wrap an encode() object with a name: its cache key), ``encode_layers``. Pure
functions: retrieval (``knn``, ``compute_tatoeba``, ``compute_margin_candidates``,
``compute_mined_pairs``, ``compute_best_threshold``, ``compute_prf``, ``compute_average_precision``,
``compute_accuracy_cosine``), CKA (``linear_cka``, ``minibatch_cka``, ``rbf_cka``, ``cka_matrix``,
``bootstrap_cka``), scores (``compute_accuracy``, ``compute_macro_f1``, ``compute_token_accuracy``,
``compute_span_f1``, ``compute_metrics``), MTEB export (``mteb_task_result``).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = "metaxlm.api"
_R = "metaxlm.eval.retrieval"
_C = "metaxlm.probe.cka"
_S = "metaxlm.eval.scores"
_LAZY = {  # public name -> (module, attribute)
    **{n: (_API, n) for n in ("Run", "run_train", "train_tokenizer", "run_transfer", "run_tatoeba", "run_bucc",
                              "run_align", "run_compare", "build_report", "build_benchmark", "fetch_sources",
                              "export_mteb")},
    "Encoder": ("metaxlm.encode", "Encoder"),
    "encode_layers": ("metaxlm.encode", "encode_layers"),
    **{n: (_R, n) for n in ("knn", "compute_tatoeba", "compute_margin_candidates", "compute_mined_pairs",
                            "compute_best_threshold", "compute_prf", "compute_average_precision",
                            "compute_accuracy_cosine")},
    **{n: (_C, n) for n in ("linear_cka", "minibatch_cka", "rbf_cka", "cka_matrix", "bootstrap_cka")},
    **{n: (_S, n) for n in ("compute_accuracy", "compute_macro_f1", "compute_token_accuracy", "compute_span_f1",
                            "compute_metrics")},
    "mteb_task_result": ("metaxlm.export.mteb", "task_result"),
    "UserError": ("metaxlm.errors", "UserError"),
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'metaxlm' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
