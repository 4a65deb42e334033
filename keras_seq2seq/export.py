"""The Translator: strings in, strings out, tokenizers and decode loop included, as a SavedModel.

The exported model needs only `tensorflow` and `tensorflow_text` to load:

    import tensorflow as tf
    import tensorflow_text  # registers the SentencePiece ops
    translator = tf.saved_model.load("saved_models/fr-en-small")
    translator.serving_default(text=tf.constant(["Je suis étudiant."]))["translation"]

Any input string yields an output string: invalid UTF-8 bytes are replaced by U+FFFD,
sources longer than the model's `max_length` tokens are truncated to it, and empty or
blank input gives an empty (or near-empty) translation.
"""

import json
import shutil
from pathlib import Path

import tensorflow as tf

from keras_seq2seq.data.tokenizers import PAD_ID
from keras_seq2seq.decoding import beam_search, greedy_decode, sample_decode


class Translator(tf.Module):
    """Tokenize -> encode -> cached greedy decode -> detokenize, for a batch of strings.

    Args:
        model: a trained `Seq2SeqTransformer`.
        source_tokenizer, target_tokenizer: keras-hub SentencePiece tokenizers.
        beam_size, length_penalty: what the `beam_search` signature uses.
    """

    def __init__(
        self, model, source_tokenizer, target_tokenizer, beam_size=4, length_penalty=0.6, name="translator"
    ):
        super().__init__(name=name)
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.beam_size = beam_size
        self.length_penalty = length_penalty

    def source_ids(self, text):
        """Token ids [batch, length >= 1] of (sanitized) strings, truncated to `max_length`."""
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        ragged = self.source_tokenizer(text)
        ids = tf.cast(ragged, tf.int32).to_tensor(default_value=PAD_ID)
        ids = ids[:, : self.model.max_length]
        # An all-empty batch still gets one (padding) column, so attention has a key.
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    def detokenize(self, token_ids):
        text = self.target_tokenizer.detokenize(token_ids)
        return tf.strings.strip(text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate(self, text):
        """`{"translation": string [batch], "score": float32 [batch]}`, greedy."""
        token_ids, scores = greedy_decode(self.model, self.source_ids(text))
        return {"translation": self.detokenize(token_ids), "score": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate_beam(self, text):
        """Beam search: the best `translation` [batch], and every beam as `n_best`
        [batch, beam_size] with length-normalised `scores`, best first."""
        token_ids, scores = beam_search(
            self.model, self.source_ids(text), self.beam_size, self.length_penalty
        )
        shape = tf.shape(token_ids)
        flat = self.detokenize(tf.reshape(token_ids, [-1, shape[2]]))
        n_best = tf.reshape(flat, shape[:2])
        return {"translation": n_best[:, 0], "n_best": n_best, "scores": scores}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.float32, name="top_p"),
            tf.TensorSpec([], tf.int32, name="seed"),
        ]
    )
    def translate_sample(self, text, temperature, top_k, top_p, seed):
        """Sampled translations (temperature, top-k, nucleus top-p; the same seed gives the same output)."""
        token_ids, scores = sample_decode(self.model, self.source_ids(text), temperature, top_k, top_p, seed)
        return {"translation": self.detokenize(token_ids), "score": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def tokenize_source(self, text):
        """The source token ids the model sees (for debugging a translation)."""
        return {"token_ids": self.source_ids(text)}


def export_translator(translator, output_dir, extra_files=None):
    """Writes the SavedModel with its signatures, plus `extra_files` ({name: text}) in assets.extra/."""
    output_dir = Path(output_dir)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    # Run once first: the SentencePiece resources then exist outside the saving trace,
    # and the translator keeps working in this process after the export.
    translator.translate(tf.constant(["."]))
    tf.saved_model.save(
        translator,
        str(output_dir),
        signatures={
            "serving_default": translator.translate.get_concrete_function(),
            "beam_search": translator.translate_beam.get_concrete_function(),
            "sample": translator.translate_sample.get_concrete_function(),
            "tokenize_source": translator.tokenize_source.get_concrete_function(),
        },
    )
    extra = output_dir / "assets.extra"
    extra.mkdir(exist_ok=True)
    for name, content in (extra_files or {}).items():
        (extra / name).write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return output_dir


def load_run(run_dir, checkpoint="best"):
    """`(model, source_tokenizer, target_tokenizer)` of a training run directory."""
    from keras_seq2seq.data.tokenizers import make_tokenizer
    from keras_seq2seq.models import Seq2SeqTransformer

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "model_config.json").read_text())
    # Trained in mixed precision or not, the exported model computes in float32.
    model = Seq2SeqTransformer.from_config({**config, "dtype": "float32"})
    model.build()
    weights = run_dir / "checkpoints" / f"{checkpoint}.weights.h5"
    model.load_weights(str(weights))
    source = make_tokenizer(run_dir / "tokenizers" / "source.model")
    target = make_tokenizer(run_dir / "tokenizers" / "target.model")
    return model, source, target
