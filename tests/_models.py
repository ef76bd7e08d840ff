"""The one tiny random-init encoder builder of the test suite (no network, no pretrained weights)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

BENCH = Path(__file__).parent / "fixtures" / "bench"


def fixture_sentences() -> list[str]:
    """Every sentence of the fixture benchmark's N-way parallel file (en, de, fr)."""
    rows = (BENCH / "parallel" / "nway.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [cell for row in rows for cell in row.split("\t") if cell.strip()]


def make_tiny_xlmr(path: Path, texts: Sequence[str] | None = None, *, layers: int = 2, hidden: int = 32,
                   seed: int = 0, vocab: int = 300, mlm: bool = False, max_positions: int = 160) -> Path:
    """Save a random-init XLM-R encoder (``layers`` × ``hidden``; with an MLM head when ``mlm``) and a
    Unigram tokenizer of about ``vocab`` pieces trained on ``texts`` (default: the fixture
    benchmark's parallel sentences) to ``path``, as ``save_pretrained`` would."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tk.train_from_iterator(list(texts) if texts is not None else fixture_sentences(),
                           trainers.UnigramTrainer(vocab_size=vocab, special_tokens=specials, unk_token="<unk>",
                                                   show_progress=False))
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                  sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")
    tok.save_pretrained(path)
    cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                           intermediate_size=2 * hidden, max_position_embeddings=max_positions, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2)
    torch.manual_seed(seed)
    (XLMRobertaForMaskedLM if mlm else XLMRobertaModel)(cfg).save_pretrained(path)
    return path


class CharGrams:
    """A tiny numpy encoder: hashed character trigrams, L2-normalised (translations share names,
    numbers and cognates, so it retrieves better than chance). Records every sentence it is given."""

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.seen: list[str] = []

    def encode(self, sentences):
        self.seen += list(sentences)
        out = np.zeros((len(sentences), self.dim), np.float32)
        for i, s in enumerate(sentences):
            t = f"  {s.lower()} "
            for j in range(len(t) - 2):
                out[i, zlib.crc32(t[j:j + 3].encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def __repr__(self):
        return f"CharGrams(dim={self.dim})"
