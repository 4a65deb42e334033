"""One decoding-throughput measurement family, run in its own process by run_all.py.

    python benchmarks/decoding.py --engine ours --length 32

Every engine decodes the same 64 Tatoeba dev sources (batch 64) and the first one
(batch 1), forced to exactly `--length` output tokens ([END] suppressed), and prints
one JSON line per (search, batch) with the median time over repeats after warm-up
(or, with `--paired`, times blocks of calls on request: see `serve_paired`):

- ours: the exported SavedModel (strings in, strings out, XLA-compiled decoding),
  loaded back with `tf.saved_model.load`; greedy and beam 4.
- uncached: the TensorFlow tutorial's loop (a compiled graph that re-runs the whole
  decoder on the growing prefix at every step); greedy.
- keras_hub: the keras.io recipe's model (keras-hub layers, same dimensions, random
  weights) decoded with `keras_hub.samplers.GreedySampler` over keras-hub's own
  self- and cross-attention caches, XLA-compiled; greedy.
- ctranslate2: CTranslate2 running the shipped model's weights (our converter),
  float32, 2 threads; greedy and beam 4.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "saved_models" / "fr-en-small"


def dev_sources(count=64):
    from keras_seq2seq.data.corpora import read_tatoeba
    from keras_seq2seq.data.fetch import default_corpus_files

    pairs, _ = read_tatoeba(default_corpus_files()["dev"])
    # Every 80th pair: a spread of lengths rather than the corpus's shortest-first start.
    return [source for source, _ in pairs[:: max(1, len(pairs) // count)][:count]]


def timed(function, repeats, warmup=2):
    """Seconds of each of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def _repeats(repeats, batch):
    """More repeats for one sentence: they are cheap, and the noisiest figures."""
    return repeats * 4 if batch == 1 else repeats


def ours_calls(length, sentences):
    """(search, batch, call) of the exported SavedModel, forced to `length` tokens."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from keras_seq2seq import Translator, export_translator, load_run

    translator = Translator(*load_run(SHIPPED), force_output_length=length)
    path = export_translator(translator, Path(tempfile.mkdtemp()) / "forced")
    loaded = tf.saved_model.load(str(path))
    calls = []
    for search, signature in (("greedy", "serving_default"), ("beam4", "beam_search")):
        function = loaded.signatures[signature]
        for batch in (1, 64):
            text = tf.constant(sentences[:batch])
            calls.append((search, batch, lambda f=function, t=text: f(text=t)["translation"].numpy()))
    return calls


def timed_calls(calls, repeats):
    return [(search, batch, timed(call, _repeats(repeats, batch))) for search, batch, call in calls]


def ours(length, sentences, repeats):
    return timed_calls(ours_calls(length, sentences), repeats)


def uncached(length, sentences, repeats):
    import tensorflow as tf

    from keras_seq2seq.data.tokenizers import START_ID
    from keras_seq2seq.runs import load_run

    model, source_tokenizer, _ = load_run(SHIPPED)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def decode(source_ids):
        encoder_output, source_mask = model.encode(source_ids)
        target = tf.fill([tf.shape(source_ids)[0], 1], START_ID)

        def body(step, target):
            logits = model.decoder(target, encoder_output, source_mask)
            next_token = tf.argmax(logits[:, -1, 4:], axis=-1, output_type=tf.int32) + 4  # no [END]
            return step + 1, tf.concat([target, next_token[:, None]], axis=1)

        _, target = tf.while_loop(
            lambda step, target: step < length, body, (0, target),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None])),
        )
        return target[:, 1:]

    results = []
    for batch in (1, 64):
        ids = tf.ragged.constant(source_tokenizer(sentences[:batch]), dtype=tf.int32).to_tensor()
        times = timed(lambda i=ids: decode(i).numpy(), max(1, repeats // 2), warmup=1)
        results.append(("greedy", batch, times))
    return results


def keras_hub(length, sentences, repeats):
    import keras_hub as hub
    import tensorflow as tf
    from keras import ops

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from keras_seq2seq.data.tokenizers import START_ID
    from keras_seq2seq.runs import load_run
    from training import VOCAB, dims, keras_hub_model

    _, source_tokenizer, _ = load_run(SHIPPED)
    config = dims("small")
    model = keras_hub_model(config)
    layers = model.layers
    embeddings = [layer for layer in layers if isinstance(layer, hub.layers.TokenAndPositionEmbedding)]
    source_embedding, target_embedding = embeddings
    encoders = [layer for layer in layers if isinstance(layer, hub.layers.TransformerEncoder)]
    decoders = [layer for layer in layers if isinstance(layer, hub.layers.TransformerDecoder)]
    projection = layers[-1]
    heads, head_dim = config["num_heads"], config["d_model"] // config["num_heads"]
    total = length + 1

    @tf.function(jit_compile=True)
    def generate(source_ids):
        batch = tf.shape(source_ids)[0]
        source_mask = source_ids != 0
        encoded = source_embedding(source_ids)
        for layer in encoders:
            encoded = layer(encoded, padding_mask=source_mask)
        prompt = tf.concat([tf.fill([batch, 1], START_ID), tf.zeros([batch, length], tf.int32)], axis=1)
        self_cache = ops.zeros((batch, len(decoders), 2, total, heads, head_dim))
        cross = []
        # Fill the cross-attention caches once, from the encoder output.
        stream = target_embedding(prompt[:, :1])
        for layer in decoders:
            empty = ops.zeros((batch, 2, tf.shape(source_ids)[1], heads, head_dim))
            _, _, filled = layer(
                stream, encoded, encoder_padding_mask=source_mask,
                self_attention_cache=ops.zeros((batch, 2, total, heads, head_dim)),
                self_attention_cache_update_index=0,
                cross_attention_cache=empty, cross_attention_cache_update_index=0,
            )
            cross.append(filled)
        cross = ops.stack(cross, axis=1)

        def next(prompt, cache, index):
            self_cache, cross = cache
            token = ops.slice(prompt, [0, index - 1], [batch, 1])
            stream = target_embedding(token, start_index=index - 1)
            updated = []
            for i, layer in enumerate(decoders):
                stream, layer_cache, _ = layer(
                    stream, encoded, encoder_padding_mask=source_mask,
                    self_attention_cache=self_cache[:, i], self_attention_cache_update_index=index - 1,
                    cross_attention_cache=cross[:, i], cross_attention_cache_update_index=None,
                )
                updated.append(layer_cache)
            logits = projection(stream)[:, 0]
            logits = ops.where(ops.arange(VOCAB) == 3, -1e9, logits)  # suppress [END]
            return logits, None, (ops.stack(updated, axis=1), cross)

        sampler = hub.samplers.GreedySampler()
        return sampler(next, prompt, cache=(self_cache, cross), index=1, stop_token_ids=None)

    results = []
    for batch in (1, 64):
        ids = tf.ragged.constant(source_tokenizer(sentences[:batch]), dtype=tf.int32).to_tensor()
        times = timed(lambda i=ids: generate(i).numpy(), _repeats(repeats, batch))
        results.append(("greedy", batch, times))
    return results


def ctranslate2_calls(length, sentences):
    """(search, batch, call) of CTranslate2 on the shipped weights, forced to `length` tokens."""
    import ctranslate2

    from keras_seq2seq.ctranslate2 import convert
    from keras_seq2seq.runs import load_run

    model, source_tokenizer, target_tokenizer = load_run(SHIPPED)
    path = convert(model, source_tokenizer, target_tokenizer, Path(tempfile.mkdtemp()) / "ct2")
    translator = ctranslate2.Translator(str(path), device="cpu", inter_threads=1, intra_threads=os.cpu_count())
    vocabulary = source_tokenizer.get_vocabulary()
    pieces = [[vocabulary[i] for i in ids] for ids in source_tokenizer(sentences)]
    calls = []
    for search, beam in (("greedy", 1), ("beam4", 4)):
        for batch in (1, 64):
            run = lambda p=pieces[:batch], b=beam: translator.translate_batch(
                p, beam_size=b, min_decoding_length=length, max_decoding_length=length, max_batch_size=64
            )
            calls.append((search, batch, run))
    return calls


def ctranslate2_engine(length, sentences, repeats):
    return timed_calls(ctranslate2_calls(length, sentences), repeats)


def serving(length, sentences, repeats):
    """Peak memory of serving: the shipped SavedModel loaded alone, translating batches."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(SHIPPED))
    text = tf.constant(sentences)
    results = []
    for search, signature in (("greedy", "serving_default"), ("beam4", "beam_search")):
        times = timed(lambda s=signature: loaded.signatures[s](text=text)["translation"].numpy(), repeats)
        results.append((search, len(sentences), times))
    return results


ENGINES = {
    "serving": serving,
    "ours": ours,
    "uncached": uncached,
    "keras_hub": keras_hub,
    "ctranslate2": ctranslate2_engine,
}


PAIRED = {"ours": ours_calls, "ctranslate2": ctranslate2_calls}


def serve_paired(engine, length, sentences):
    """Paired mode: set up, then time blocks of calls on request, one JSON line per request.

    run_all.py keeps an `ours` and a `ctranslate2` worker alive side by side and
    alternates blocks of calls between them, so both engines are measured in the same
    seconds: on this shared machine speed drifts by up to 3x within minutes, which
    separate processes run one after the other would turn into a ratio. Requests on
    stdin: {"search", "batch", "repeats", "warmup"}; the idle worker waits on its pipe.
    """
    calls = {(search, batch): call for search, batch, call in PAIRED[engine](length, sentences)}
    print(json.dumps({"ready": [list(key) for key in calls]}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        times = timed(calls[request["search"], request["batch"]], request["repeats"], request["warmup"])
        print(json.dumps({"times": times, "peak_rss_mb": peak_rss_mb()}), flush=True)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--paired", action="store_true", help="serve timing requests on stdin (ours, ctranslate2)")
    args = parser.parse_args(argv)
    sentences = dev_sources()
    if args.paired:
        if args.engine not in PAIRED:
            parser.error(f"--paired runs {sorted(PAIRED)}, not {args.engine!r}")
        return serve_paired(args.engine, args.length, sentences)
    for search, batch, times in ENGINES[args.engine](args.length, sentences, args.repeats):
        print(json.dumps({
            "engine": args.engine, "search": search, "batch": batch, "length": args.length, "times": times,
            **rates(statistics.median(times), batch, args.length), "peak_rss_mb": peak_rss_mb(),
        }), flush=True)


def rates(seconds, batch, length):
    return {
        "seconds": seconds,
        "tokens_per_s": batch * length / seconds,
        "ms_per_token_step": 1000 * seconds / max(1, length),
    }


if __name__ == "__main__":
    sys.exit(main())
