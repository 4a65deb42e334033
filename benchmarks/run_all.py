"""Speed measurements (not tests): decoding and training, each against a baseline in the same run.

    python3 dev.py bench                  # everything, small-preset dimensions
    python3 dev.py bench --quick          # fewer repeats

Prints a markdown table and writes benchmarks/results/latest.json. Figures are medians of
repeated measurements after a warm-up, reported with their ratio to the baseline measured
by the same script on the same machine.

So far: cached vs uncached (re-run the whole decoder each step, the TensorFlow tutorial's
way) greedy decoding across output lengths, and the training step in float32 vs
mixed_bfloat16. The peers of the benchmark issue (keras-hub, PyTorch, CTranslate2) are to come.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_seq2seq.decoding import greedy_decode, uncached_greedy_decode  # noqa: E402
from keras_seq2seq.models import Seq2SeqTransformer  # noqa: E402
from keras_seq2seq.objectives import MaskedCrossEntropy  # noqa: E402

VOCAB = 8000
RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__}


def median_seconds(function, repeats, warmup=1):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def decoding(repeats):
    model = Seq2SeqTransformer.from_preset("small", source_vocab_size=VOCAB, target_vocab_size=VOCAB)
    rows = []
    for batch_size in (1, 64):
        source = np.random.default_rng(0).integers(4, VOCAB, size=(batch_size, 20)).astype("int32")
        for length in (16, 32, 64, 128):
            cached = tf.function(lambda s, n=length: greedy_decode(model, s, n, suppress_end=True))
            cached_seconds = median_seconds(lambda c=cached, s=source: c(s), repeats)
            uncached_seconds = None
            if length <= 32:  # quadratic: longer ones take minutes
                uncached_seconds = median_seconds(
                    lambda s=source, n=length: uncached_greedy_decode(model, s, n), max(1, repeats // 2)
                )
            tokens = batch_size * length
            rows.append(
                {
                    "batch": batch_size,
                    "length": length,
                    "cached_tokens_per_s": tokens / cached_seconds,
                    "cached_ms_per_step": 1000 * cached_seconds / length,
                    "uncached_tokens_per_s": tokens / uncached_seconds if uncached_seconds else None,
                }
            )
    return rows


def training(repeats):
    rows = []
    rng = np.random.default_rng(0)
    source = rng.integers(4, VOCAB, size=(64, 16)).astype("int32")
    target_in = rng.integers(4, VOCAB, size=(64, 16)).astype("int32")
    labels = rng.integers(4, VOCAB, size=(64, 16)).astype("int32")
    for precision in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(precision)
        model = Seq2SeqTransformer.from_preset("small", source_vocab_size=VOCAB, target_vocab_size=VOCAB)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=MaskedCrossEntropy(0.1))
        step = lambda m=model: m.train_on_batch((source, target_in), labels)
        seconds = median_seconds(step, repeats, warmup=3)
        rows.append(
            {"precision": precision, "ms_per_step": 1000 * seconds, "target_tokens_per_s": labels.size / seconds}
        )
    keras.mixed_precision.set_global_policy("float32")
    return rows


def pipeline_padding():
    """Padding share of one real epoch: our length buckets vs padding every pair to 40 tokens."""
    from keras_seq2seq.data import pipeline
    from keras_seq2seq.data.corpora import read_tatoeba
    from keras_seq2seq.data.fetch import default_corpus_files
    from keras_seq2seq.data.tokenizers import make_tokenizer, train_sentencepiece

    pairs, _ = read_tatoeba(default_corpus_files()["train"])
    tokenizers = [
        make_tokenizer(train_sentencepiece([pair[side] for pair in pairs], 8000)) for side in (0, 1)
    ]
    source_ids, target_ids, _ = pipeline.encode_pairs(pairs, *tokenizers, max_length=128)
    bucketed = pipeline.padding_fraction(
        pipeline.make_dataset(source_ids, target_ids, token_budget=3072, max_length=128)
    )
    real = sum(len(ids) + 1 for ids in target_ids if len(ids) + 1 <= 40)
    fixed = 1.0 - real / (40 * sum(1 for ids in target_ids if len(ids) + 1 <= 40))
    return {"bucketed_padding_fraction": bucketed, "fixed_40_padding_fraction": fixed}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    results = {
        "machine": machine(),
        "pipeline": pipeline_padding(),
        "decoding": decoding(repeats),
        "training": training(repeats),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))

    print(f"\nMachine: {results['machine']['cpu']}, {results['machine']['cores']} cores\n")
    print("| batch | output length | cached tokens/s | cached ms/step | uncached tokens/s | cached / uncached |")
    print("|---|---|---|---|---|---|")
    for row in results["decoding"]:
        uncached = row["uncached_tokens_per_s"]
        ratio = f"{row['cached_tokens_per_s'] / uncached:.1f}x" if uncached else "-"
        print(f"| {row['batch']} | {row['length']} | {row['cached_tokens_per_s']:.0f} | "
              f"{row['cached_ms_per_step']:.1f} | {uncached and f'{uncached:.0f}' or '-'} | {ratio} |")
    base = results["training"][0]["target_tokens_per_s"]
    print("\n| training precision | ms/step (64 x 16 tokens) | target tokens/s | vs float32 |")
    print("|---|---|---|---|")
    for row in results["training"]:
        print(f"| {row['precision']} | {row['ms_per_step']:.0f} | {row['target_tokens_per_s']:.0f} | "
              f"{row['target_tokens_per_s'] / base:.2f}x |")
    padding = results["pipeline"]
    print(f"\nPadding in one epoch of Tatoeba train (target side): length buckets "
          f"{padding['bucketed_padding_fraction']:.1%}, fixed length 40 {padding['fixed_40_padding_fraction']:.1%}")
    print(f"\nwritten: {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
