"""Prediction throughput: dynamic padding + length-sorted batches vs fixed padding to 128 with
unsorted batches (the common baseline), in one run, on the same model, items and batch size.

Both variants go through ``metaxlm.eval.finetune.predict_ids`` under ``torch.inference_mode``; only
``sort`` and ``pad_to`` differ. Predictions of the two are compared (padding must not change them).

    python benchmarks/bench_predict.py                         # topic test sets of the default benchmark
    python benchmarks/bench_predict.py --data tests/fixtures/bench --items 500
    python benchmarks/bench_predict.py --model runs/meta --task xnli --data XNLI_DIR

Without ``--model`` a random-init encoder of the default preset's shape (4 layers, hidden 256, 16k
Unigram vocabulary trained on the items) is built; weights do not change the speed. Item sets: the
task's test sets and, for topic, three views of the benchmark's parallel test paragraphs — whole
paragraphs, single sentences (NER/POS/Tatoeba lengths) and consecutive sentence pairs (XNLI/PAWS-X
lengths). Prints items/s of both variants, the ratio (target >= 3x), and the subword-length
distribution that explains it: the ratio follows 128 / mean length (what padding wastes in the
linear layers; attention, quadratic in length, adds a little), so paragraph-length inputs (topic,
mean ~96 subwords) cannot reach 3x and sentence-length inputs do.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_model(out: Path, texts: list[str], layers: int, hidden: int, vocab: int) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForMaskedLM

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=vocab, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")
    fast.save_pretrained(out)
    cfg = XLMRobertaConfig(vocab_size=len(fast), hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                           max_position_embeddings=514, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    XLMRobertaForMaskedLM(cfg).save_pretrained(out)
    return out


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


SENTENCE_END = re.compile(r"(?<=[。！？])|(?<=[.!?])\s+")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph: cut after . ! ? followed by a space, and after 。！？ (Japanese)."""
    return [s.strip() for s in SENTENCE_END.split(paragraph) if len(s.strip()) >= 3]


def load_sets(args, spec, data) -> dict[str, list]:
    """Item sets to time: the task's test sets and, for topic, three views of the benchmark's
    parallel test paragraphs (every language): whole paragraphs, single sentences (the lengths of
    NER/POS/Tatoeba inputs) and pairs of consecutive sentences (the lengths of XNLI/PAWS-X pairs)."""
    from metaxlm.eval.formats import SeqExample

    rng = random.Random(args.seed)

    def sample(pool):
        return [rng.choice(pool) for _ in range(args.items)] if len(pool) < args.items else rng.sample(pool, args.items)

    sets = {f"{spec.name} test": sample([ex for exs in data.test.values() for ex in exs])}
    par = Path(data.data_dir) / "parallel"
    if spec.name == "topic" and par.is_dir():
        label = data.labels[0]
        paragraphs, sentences, pairs = [], [], []
        for f in sorted(par.glob("*.test.tsv")):
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines()[1:]):
                for j, side in enumerate(line.split("\t")):
                    key = f"{f.stem}:{i}:{j}"
                    paragraphs.append(SeqExample(key, side, None, label))
                    sents = split_sentences(side)
                    sentences += [SeqExample(f"{key}:{k}", x, None, label) for k, x in enumerate(sents)]
                    pairs += [SeqExample(f"{key}:{k}", a, b, label) for k, (a, b) in enumerate(zip(sents, sents[1:]))]
        for name, pool in (("parallel paragraphs", paragraphs), ("sentences", sentences),
                           ("sentence pairs", pairs)):
            if pool:
                sets[name] = sample(pool)
    return sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="topic")
    ap.add_argument("--data", default=None, help="task data directory (topic: default benchmark)")
    ap.add_argument("--model", default=None, help="encoder to use (default: random-init 4x256)")
    ap.add_argument("--items", type=int, default=2000, help="items per set (sampled over all languages)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=16000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from metaxlm.eval.finetune import FineTuner, FinetuneParams, predict_ids
    from metaxlm.eval.formats import load_task
    from metaxlm.eval.tasks import get_task
    from metaxlm.models import resolve_model

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = get_task(args.task)
    data = load_task(spec, args.data)
    sets = load_sets(args, spec, data)
    tmp = None
    if args.model is None:
        tmp = tempfile.TemporaryDirectory()
        text = (lambda ex: ex.a + " " + (ex.b or "")) if spec.kind == "sequence" else (lambda ex: " ".join(ex.words))
        texts = [text(ex) for ex in data.train[:20000]] + [text(ex) for items in sets.values() for ex in items]
        vocab = min(args.vocab, max(200, len(set(" ".join(texts).split())) // 2))
        model_path = str(build_model(Path(tmp.name) / "m", texts, args.layers, args.hidden, vocab))
    else:
        model_path = args.model
    ft = FineTuner(resolve_model(model_path), spec, data.labels, FinetuneParams(max_length=args.max_length))
    ft.model = ft._new_model()
    bs, pad_to = args.batch_size, ft.max_length
    print(f"model: {model_path if args.model else f'random-init {args.layers} layers x {args.hidden} hidden'}, "
          f"vocabulary {len(ft.tokenizer)}; batch {bs}, max_length {pad_to}, torch threads {torch.get_num_threads()}")
    print("both variants: metaxlm.eval.finetune.predict_ids under torch.inference_mode; cpu = process time")
    summary = []
    for name, items in sets.items():
        feats = ft.encode(items, with_labels=False)
        lengths = [len(f["input_ids"]) for f in feats]
        n = len(feats)
        predict_ids(ft.model, feats[:bs], bs, ft.pad_id)  # warm up allocator and kernels
        pa, wa, ca = timed(lambda: predict_ids(ft.model, feats, bs, ft.pad_id, sort=True))
        pb, wb, cb = timed(lambda: predict_ids(ft.model, feats, bs, ft.pad_id, sort=False, pad_to=pad_to))
        agree = sum(1 for x, y in zip(pa, pb) if x == y) / n
        q = sorted(lengths)
        print(f"\n[{name}] {n} items; subwords per item: mean {statistics.mean(lengths):.1f}, median {q[n // 2]}, "
              f"p90 {q[int(n * .9)]}; at the limit: {sum(x >= pad_to for x in lengths) / n:.1%}")
        print(f"  fixed padding to {pad_to}, unsorted: {n / wb:8.1f} items/s  ({wb:6.2f} s wall, {cb:6.2f} s cpu)")
        print(f"  dynamic padding, length-sorted: {n / wa:8.1f} items/s  ({wa:6.2f} s wall, {ca:6.2f} s cpu)")
        padding_ratio = pad_to * n / sum(lengths)
        print(f"  ratio (dynamic / fixed): {wb / wa:.2f}x wall, {cb / ca:.2f}x cpu; 128 / mean length "
              f"{padding_ratio:.2f}x; target >= 3x: {'met' if wb / wa >= 3 else 'not met'}; same predictions: {agree:.1%}")
        summary.append((name, statistics.mean(lengths), wb / wa, cb / ca, padding_ratio, agree))
    print("\n| items | mean subwords | wall ratio | cpu ratio | 128 / mean length | same predictions |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, mean, rw, rc, padding_ratio, agree in summary:
        print(f"| {name} | {mean:.1f} | {rw:.2f}x | {rc:.2f}x | {padding_ratio:.2f}x | {agree:.1%} |")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
