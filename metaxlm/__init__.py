"""metaxlm: cross-lingual language-model research toolkit.

The path of data through the package: ``metaxlm.data`` (benchmark from the Debian archive) →
``metaxlm.train`` (tokenizer, MLM pretraining regimes) → ``metaxlm.eval`` / ``metaxlm.probe``
(transfer, retrieval, alignment) → ``metaxlm.report`` (comparison reports). ``metaxlm.compare``
runs the whole path.
"""

import os as _os

# OpenMP threads that spin while they wait make a busy neighbour on the same cores cost several times
# its share (measured: 6.8x slower pretraining with one other busy process on 2 cores); passive
# waiting yields the core instead. Takes effect when metaxlm is imported before torch (the CLI does).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
