"""Helpers shared by tests/test_train_*.py: tiny corpora and tiny configs (no network)."""

from __future__ import annotations

import random
from pathlib import Path

FIXTURE_CORPUS = Path(__file__).parent / "fixtures" / "bench" / "corpus"

WORDS = {
    "en": "the cat sat on the mat and a dog ran to the park with my friend today".split(),
    "de": "der hund lief in den park mit meinem freund heute und die katze sass".split(),
    "fr": "le chat est sur le tapis et un chien court au parc avec mon ami".split(),
    "ja": list("猫がマットの上に座って犬が公園へ走った今日は友達と一緒"),
}


def make_corpus(root: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A handmade corpus directory: ``<lang>.txt`` with random sentences from a small word list."""
    sizes = sizes or {"en": 120, "de": 60, "fr": 40}
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for lang, n in sizes.items():
        sep = "" if lang == "ja" else " "
        lines = [sep.join(rng.choice(WORDS[lang]) for _ in range(rng.randint(5, 25))) for _ in range(n)]
        (root / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def tiny(**kw):
    """A TrainConfig for a few-second run of the tiny preset."""
    from metaxlm.train import TrainConfig

    base = dict(model="tiny", total_tokens=8 * 32 * 12, seq_len=32, batch_size=8, vocab_size=300,
                log_every=1, val_every=5, save_every=4, val_blocks=2, lr=2e-3)
    base.update(kw)
    return TrainConfig(**base)


def interrupt_at(monkeypatch, step: int, exc=KeyboardInterrupt):
    """Make the loop raise ``exc`` when it reaches ``step``; returns the undo function."""
    from metaxlm.train import loop as loop_mod

    real = loop_mod.lr_at

    def boom(phases, s, warmup):
        if s == step:
            raise exc
        return real(phases, s, warmup)

    monkeypatch.setattr(loop_mod, "lr_at", boom)
    return lambda: monkeypatch.setattr(loop_mod, "lr_at", real)
