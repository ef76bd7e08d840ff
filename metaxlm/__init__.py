"""metaxlm: cross-lingual language-model research toolkit.

The path of data through the package: ``metaxlm.data`` (benchmark from the Debian archive) →
``metaxlm.train`` (tokenizer, MLM pretraining regimes) → ``metaxlm.eval`` / ``metaxlm.probe``
(transfer, retrieval, alignment) → ``metaxlm.report`` (comparison reports). ``metaxlm.compare``
runs the whole path.
"""

__version__ = "0.1.0"
