"""One training-throughput measurement, run in its own process by run_all.py.

    python benchmarks/training.py --framework ours --preset small --precision float32 --xla

Frameworks, all with the same dimensions, vocabulary, batches, Adam settings and loss
(label-smoothed cross-entropy over non-padding tokens):

- ours: `Seq2SeqTransformer` trained with `model.fit` and the library's `FusedAdam`
  (Keras' Adam arithmetic, its update of all variables one XLA-compiled call);
- keras_hub: the keras.io recipe's model (keras-hub `TokenAndPositionEmbedding`,
  `TransformerEncoder`, `TransformerDecoder`, a Dense projection), `model.fit`;
- torch: `torch.nn.Transformer` (post-norm, as ours) with a plain training loop.

Data: `fixed` random batches of 64 x 16 tokens (pure compute), or `real` Tatoeba
train batches from each side's own pipeline (ours: length buckets under a token
budget; keras_hub: the keras.io example's, 64 pairs padded to 40 tokens). Only
non-padding target tokens are counted. Prints one JSON line.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 8000
FIXED_BATCH, FIXED_LENGTH = 64, 16
KERAS_IO_LENGTH, KERAS_IO_BATCH = 40, 64  # the keras.io English-Spanish recipe's
SHIPPED = ROOT / "saved_models" / "fr-en-small" / "assets.extra"


def dims(preset):
    from keras_seq2seq.models.presets import PRESETS

    return PRESETS[preset].to_dict()


def training_flops(config, batch, source_length, target_length, vocab=VOCAB):
    """Model FLOPs of one training step (forward and backward = 3 x forward, 2 per MAC).

    Counts every matmul of the padded batch: projections, attention scores and
    weighted sums (the full causal square), feed-forward and the vocabulary projection.
    """
    d, ff, layers = config["d_model"], config["ff_dim"], config["num_layers"]
    s, t = source_length, target_length
    encoder = s * (4 * d * d + 2 * d * ff + 2 * s * d)
    decoder = t * (4 * d * d + 2 * t * d) + t * 2 * d * d + s * 2 * d * d + t * 2 * s * d + t * 2 * d * ff
    macs = batch * (layers * (encoder + decoder) + t * d * vocab)
    return 3 * 2 * macs


def fixed_batches(steps):
    rng = np.random.default_rng(0)
    shape = (FIXED_BATCH, FIXED_LENGTH)
    batch = tuple(rng.integers(4, VOCAB, size=shape).astype("int32") for _ in range(3))
    return [((batch[0], batch[1]), batch[2])] * steps


def real_batches(framework, steps):
    """`steps` batches of Tatoeba train pairs from `framework`'s own pipeline, as numpy."""
    from keras_seq2seq.data import pipeline
    from keras_seq2seq.data.corpora import read_tatoeba
    from keras_seq2seq.data.fetch import default_corpus_files
    from keras_seq2seq.data.tokenizers import END_ID, START_ID, make_tokenizer

    pairs, _ = read_tatoeba(default_corpus_files()["train"])
    source = make_tokenizer(SHIPPED / "source.spm.model")
    target = make_tokenizer(SHIPPED / "target.spm.model")
    source_ids, target_ids, _ = pipeline.encode_pairs(pairs, source, target, max_length=128)
    if framework == "ours":
        dataset = pipeline.make_dataset(source_ids, target_ids, token_budget=3072, max_length=128)
        return [tuple(map(_numpy, batch)) for batch in dataset.take(steps)]
    # keras.io: every pair padded (or cut) to 40 tokens, batches of 64, shuffled.
    order = np.random.default_rng(0).permutation(len(source_ids))[: steps * KERAS_IO_BATCH]

    def padded(rows):
        out = np.zeros((len(rows), KERAS_IO_LENGTH), "int32")
        for i, row in enumerate(rows):
            row = row[:KERAS_IO_LENGTH]
            out[i, : len(row)] = row
        return out

    batches = []
    for start in range(0, len(order), KERAS_IO_BATCH):
        rows = order[start : start + KERAS_IO_BATCH]
        src = padded([source_ids[i] for i in rows])
        tgt_in = padded([[START_ID, *target_ids[i]] for i in rows])
        labels = padded([[*target_ids[i], END_ID] for i in rows])
        batches.append(((src, tgt_in), labels))
    return batches


def _numpy(value):
    if isinstance(value, tuple):
        return tuple(v.numpy() for v in value)
    return value.numpy()


def keras_hub_model(config, vocab=VOCAB, max_length=128):
    import keras
    import keras_hub

    d, heads, ff = config["d_model"], config["num_heads"], config["ff_dim"]
    encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(vocab, max_length, d, mask_zero=True)(encoder_inputs)
    for _ in range(config["num_layers"]):
        x = keras_hub.layers.TransformerEncoder(intermediate_dim=ff, num_heads=heads, dropout=config["dropout"])(x)
    decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
    y = keras_hub.layers.TokenAndPositionEmbedding(vocab, max_length, d, mask_zero=True)(decoder_inputs)
    for _ in range(config["num_layers"]):
        y = keras_hub.layers.TransformerDecoder(intermediate_dim=ff, num_heads=heads, dropout=config["dropout"])(y, x)
    logits = keras.layers.Dense(vocab, dtype="float32")(y)
    return keras.Model([encoder_inputs, decoder_inputs], logits)


def run_keras(framework, preset, precision, xla, batches):
    import keras

    from keras_seq2seq.models import Seq2SeqTransformer
    from keras_seq2seq.objectives import MaskedCrossEntropy, TransformerSchedule
    from keras_seq2seq.optimizers import FusedAdam

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    config = dims(preset)
    if framework == "ours":
        model = Seq2SeqTransformer.from_preset(preset, source_vocab_size=VOCAB, target_vocab_size=VOCAB)
    else:
        model = keras_hub_model(config)
    # The same Adam for both; ours is the library's, its update compiled by XLA (keras_seq2seq.optimizers).
    adam = FusedAdam if framework == "ours" else keras.optimizers.Adam
    optimizer = adam(TransformerSchedule(config["d_model"], 4000), 0.9, 0.98, 1e-9)
    model.compile(optimizer=optimizer, loss=MaskedCrossEntropy(0.1), jit_compile=xla)

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.started)

    times = []

    def generator():
        yield from batches

    import tensorflow as tf

    spec = (
        (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)),
        tf.TensorSpec([None, None], tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(generator, output_signature=spec).prefetch(2)
    model.fit(dataset, epochs=1, verbose=0, callbacks=[Timer()])
    return times


def run_torch(preset, precision, batches):
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    config = dims(preset)
    d = config["d_model"]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.source_embedding = nn.Embedding(VOCAB, d, padding_idx=0)
            self.target_embedding = nn.Embedding(VOCAB, d, padding_idx=0)
            self.transformer = nn.Transformer(
                d, config["num_heads"], config["num_layers"], config["num_layers"], config["ff_dim"],
                config["dropout"], batch_first=True,
            )
            self.projection = nn.Linear(d, VOCAB)
            positions = np.arange(128)[:, None] / np.power(10000, np.arange(0, d, 2) / d)[None]
            table = np.concatenate([np.sin(positions), np.cos(positions)], -1).astype("float32")
            self.register_buffer("positions", torch.from_numpy(table))

        def embed(self, embedding, ids):
            return embedding(ids) * d**0.5 + self.positions[: ids.shape[1]]

        def forward(self, source, target_in):
            length = target_in.shape[1]
            causal = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
            output = self.transformer(
                self.embed(self.source_embedding, source), self.embed(self.target_embedding, target_in),
                tgt_mask=causal, src_key_padding_mask=source == 0, tgt_key_padding_mask=target_in == 0,
                memory_key_padding_mask=source == 0,
            )
            return self.projection(output)

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    loss_function = nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "mixed_bfloat16")
    times = []
    for (source, target_in), labels in batches:
        started = time.perf_counter()
        source, target_in, labels = (torch.from_numpy(a).long() for a in (source, target_in, labels))
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = model(source, target_in)
        loss = loss_function(logits.float().reshape(-1, VOCAB), labels.reshape(-1))
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=["ours", "keras_hub", "torch"], required=True)
    parser.add_argument("--preset", choices=["small", "base"], default="small")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument("--xla", action="store_true")
    parser.add_argument("--data", choices=["fixed", "real"], default="fixed")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)

    total = args.warmup + args.steps
    batches = fixed_batches(total) if args.data == "fixed" else real_batches(args.framework, total)
    if args.framework == "torch":
        times = run_torch(args.preset, args.precision, batches)
    else:
        times = run_keras(args.framework, args.preset, args.precision, args.xla, batches)
    measured = times[args.warmup :]
    tokens = [int(np.count_nonzero(labels)) for _, labels in batches[args.warmup :]]
    result = {
        **vars(args),
        "median_step_ms": 1000 * statistics.median(measured),
        # Real batches differ in size: tokens over time, summed over the measured steps.
        "target_tokens_per_s": sum(tokens) / sum(measured),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "step_seconds": measured,
        "step_tokens": tokens,
    }
    if args.data == "fixed":
        flops = training_flops(dims(args.preset), FIXED_BATCH, FIXED_LENGTH, FIXED_LENGTH)
        result["model_tflop_per_step"] = flops / 1e12
        result["model_gflop_per_s"] = flops / statistics.median(measured) / 1e9
        result["target_tokens_per_s"] = FIXED_BATCH * FIXED_LENGTH / statistics.median(measured)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
