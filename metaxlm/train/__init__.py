"""Pretraining: corpora, the shared tokenizer, XLM-R-style models, regimes (lists of phases) and
THE training loop.

Python API (used by ``metaxlm compare``)::

    from metaxlm.train import TrainConfig, train, train_tokenizer, load_train_config
    tok = train_tokenizer("corpus/", "runs/tok", vocab_size=16000)
    run = train(TrainConfig(regime="meta", corpus=Path("corpus/"), tokenizer=tok), "runs/meta")
    # run/checkpoints/{english,multilingual,final}/ are plain Hugging Face directories
"""

from metaxlm.train.config import PhaseConfig, TrainConfig, load_train_config
from metaxlm.train.loop import TrainingDiverged, train
from metaxlm.train.model import PRESETS
from metaxlm.train.regimes import BUILTIN as REGIMES
from metaxlm.train.tokenizer import train_tokenizer

__all__ = ["TrainConfig", "PhaseConfig", "load_train_config", "train", "train_tokenizer", "TrainingDiverged",
           "PRESETS", "REGIMES"]
