"""The SavedModel of a `Translator`: its writer, and its two readers.

The exported model needs only `tensorflow` and tensorflow-text's SentencePiece ops to load
(`import tensorflow_text` registers them with every other op of tensorflow-text, 0.1 GiB more):

    import importlib.util, os
    import tensorflow as tf
    text = importlib.util.find_spec("tensorflow_text").submodule_search_locations[0]
    tf.load_op_library(os.path.join(text, "python", "ops", "_sentencepiece_tokenizer.so"))
    translator = tf.saved_model.load("saved_models/fr-en-small")
    translator.signatures["serving_default"](text=tf.constant(["Je suis étudiant."]))["translation"]

`load_saved_model` does that; `load_keras_model` rebuilds the Keras model and its
tokenizers from the files the writer puts in `assets.extra/` (to fine-tune a shipped
model or export it again with other options).
"""

import contextlib
import json
from pathlib import Path

import tensorflow as tf

from keras_seq2seq.atomic import atomic_directory
from keras_seq2seq.data.tokenizers import sentencepiece_ops
from keras_seq2seq.errors import InputError
from keras_seq2seq.serving.graph_pass import simplify_saved_model
from keras_seq2seq.serving.prepared import LOAD_MARKER

MODEL_CONFIG = "model_config.json"
DECODING = "decoding.json"  # the beam_search signature's beam size and length penalty
SOURCE_PROTO = "source.spm.model"
TARGET_PROTO = "target.spm.model"


def is_saved_model(path):
    return (Path(path) / "saved_model.pb").is_file()


def export_translator(translator, output_dir, extra_files=None):
    """Writes the SavedModel with its signatures, plus `extra_files` ({name: text}) in assets.extra/.

    assets.extra/ also receives `model_config.json` and the two SentencePiece models,
    so `load_keras_model` can rebuild the Keras model from the export (to fine-tune it, or to
    export it again with other options). The export is written beside `output_dir` and
    renamed into place when complete (`atomic_directory`): a killed export leaves the
    previous model at `output_dir`, or none, never part of one.
    """
    # Run once first: the SentencePiece resources then exist outside the saving trace,
    # and the translator keeps working in this process after the export.
    translator.translate(tf.constant(["."]))
    signatures = {
        "serving_default": translator.translate.get_concrete_function(),
        "beam_search": translator.translate_beam.get_concrete_function(),
        "sample": translator.translate_sample.get_concrete_function(),
        "tokenize_source": translator.tokenize_source.get_concrete_function(),
    }
    # Saved through a holder of the weights and tokenizers only: saving the Translator
    # itself would store each tf.function twice (the signatures' traces and a second
    # trace for the object's methods), a quarter of the SavedModel's size.
    holder = tf.Module()
    # Quantized: the int8 model only (the float model's variables are never read by the
    # functions; saving would fail if one were).
    holder.model = translator.quantized_model if translator.quantized_model is not None else translator.model
    holder.source_tokenizer = translator.source_tokenizer
    holder.target_tokenizer = translator.target_tokenizer
    # Stored empty: a SavedModel computes them when it loads (`PreparedWeights`); this translator's
    # are computed again once saved.
    holder.prepared = translator.prepared
    # Weights in files of at most 40 MB: the shipped model lives in git, where hosts refuse large files.
    sharding = tf.train.experimental.MaxShardSizePolicy(max_shard_size=40 * 2**20)
    options = tf.saved_model.SaveOptions(experimental_sharding_callback=sharding)
    with atomic_directory(output_dir) as staging, _keras_variables_saved_once():
        if translator.prepared is not None:
            translator.prepared.release()
        try:
            tf.saved_model.save(holder, str(staging), signatures=signatures, options=options)
        finally:
            if translator.prepared is not None:
                translator.prepared.fill()
        # The same functions in fewer nodes: what loading them costs (`graph_pass`).
        simplify_saved_model(staging)
        _warn_if_saver_restores_copies(staging)
        extra = staging / "assets.extra"
        extra.mkdir(exist_ok=True)
        files = {
            MODEL_CONFIG: holder.model.get_config(),  # a quantized model's says how (its "quantization")
            DECODING: {"beam_size": translator.beam_size, "length_penalty": translator.length_penalty},
            SOURCE_PROTO: translator.source_tokenizer.proto,
            TARGET_PROTO: translator.target_tokenizer.proto,
            **(extra_files or {}),
        }
        for name, content in files.items():
            if isinstance(content, bytes):
                (extra / name).write_bytes(content)
            else:
                (extra / name).write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return Path(output_dir)


@contextlib.contextmanager
def _keras_variables_saved_once():
    """Within: a Keras variable is saved as the very variable the functions read.

    Keras 3 (TensorFlow backend, 3.15 included) exports each of its variables as a new
    `tf.Variable` initialised from the exported copy of the one the functions capture
    (`keras.src.backend.tensorflow.core.Variable._export_to_saved_model_graph`): the
    SavedModel's saver restores that new one, which nothing reads. `tf.saved_model.load` binds
    the functions through the object graph and never notices; TensorFlow Serving, its C++
    loader and `tf.compat.v1` sessions restore through the saver, and every call then fails
    with "Could not find variable ..." (keras-team/keras#20095, tensorflow/serving#2250).
    Exported as the captured copy itself, the variable is what the saver restores and the
    functions read: one variable (and the same checkpoint keys) instead of two.
    """
    try:
        from keras.src.backend.tensorflow.core import Variable
    except ImportError:  # (another backend: nothing of Keras' is saved this way)
        Variable = None
    original = getattr(Variable, "_export_to_saved_model_graph", None)
    if original is None:
        yield
        return

    def export_as_captured(self, object_map, tensor_map, options, **kwargs):
        resources = self.value._export_to_saved_model_graph(object_map, tensor_map, options, **kwargs)
        object_map[self] = object_map[self.value]
        return resources

    Variable._export_to_saved_model_graph = export_as_captured
    try:
        yield
    finally:
        Variable._export_to_saved_model_graph = original


def _warn_if_saver_restores_copies(path):
    """Warns when the SavedModel at `path` holds more variables than its checkpoint stores: its saver
    then restores copies the functions never read (a Keras whose export `_keras_variables_saved_once`
    no longer adjusts), and TensorFlow Serving would fail at the first call."""
    import warnings

    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    handles = sum(
        node.op == "VarHandleOp" and node.attr["shared_name"].s.decode() != LOAD_MARKER
        for node in saved_model.meta_graphs[0].graph_def.node
    )
    stored = tf.train.load_checkpoint(str(Path(path) / "variables" / "variables")).get_variable_to_shape_map()
    values = len([name for name in stored if name != "_CHECKPOINTABLE_OBJECT_GRAPH"])
    if handles > values:
        warnings.warn(
            f"the export's graph holds {handles} variables for {values} stored values: its saver restores "
            "copies its functions never read, so TensorFlow Serving (and tf.compat.v1 sessions) would fail with "
            "'Could not find variable'; tf.saved_model.load is not affected (Keras' variable export changed: "
            "see keras_seq2seq.serving.saved_model._keras_variables_saved_once)",
            stacklevel=3,
        )


def decoding_settings(path):
    """`{"beam_size": ..., "length_penalty": ...}` an export's beam search was made with; `{}` for
    anything else (a run directory, or an export written before they were recorded)."""
    settings = Path(path) / "assets.extra" / DECODING
    return json.loads(settings.read_text()) if is_saved_model(path) and settings.is_file() else {}


def load_saved_model(path):
    """The loaded SavedModel (`tf.saved_model.load`), with the SentencePiece ops it needs registered
    (`data.tokenizers.sentencepiece_ops`: not the rest of tensorflow-text's)."""
    sentencepiece_ops()

    return tf.saved_model.load(str(path))


class SentencePieceOps(tf.Module):
    """The in-graph SentencePiece ops of `proto` (bytes) without keras-hub, for serving.

    What a `data.tokenizers.make_tokenizer` tokenizer computes in a graph, through tensorflow-text's
    SentencePiece ops (`data.tokenizers.sentencepiece_ops`, called as its `SentencepieceTokenizer`
    calls them, without importing `tensorflow_text`): `tokenizer(text)` (a batch of strings ->
    int32 ids, ragged), `detokenize(ids)` (a batch of rows, dense or ragged -> strings),
    `id_to_token(id)`, `proto`; a Translator holding it exports as with keras-hub's. Importing
    keras-hub (every model it has) took 0.2-0.3 s of a one-sentence command-line translation's
    4.5, tensorflow-text 0.2: `load_translator` reads an export's tokenizers with this.
    """

    def __init__(self, proto, name="sentence_piece_ops"):
        from keras_seq2seq.data.tokenizers import check_reserved_ids, named_model_resource

        super().__init__(name=name)
        self.proto = proto
        self._model_resource = named_model_resource(proto)
        check_reserved_ids(self)

    def __call__(self, text):
        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank != 1:
            raise ValueError(f"SentencePieceOps tokenizes a batch of strings (rank 1), got shape {text.shape}")
        values, splits = sentencepiece_ops().sentencepiece_tokenize_op(
            self._model_resource.resource_handle, text, nbest_size=0, alpha=1.0, add_bos=False, add_eos=False,
            reverse=False, out_type=tf.int32,
        )
        return tf.RaggedTensor.from_row_splits(values, splits, validate=False)

    def detokenize(self, token_ids):
        if not isinstance(token_ids, tf.RaggedTensor):
            token_ids = tf.convert_to_tensor(token_ids)
            if token_ids.shape.rank != 2:
                raise ValueError(f"SentencePieceOps detokenizes a batch of rows (rank 2), got shape {token_ids.shape}")
            token_ids = tf.RaggedTensor.from_tensor(token_ids)
        if token_ids.ragged_rank != 1 or token_ids.flat_values.shape.rank != 1:
            raise ValueError(f"SentencePieceOps detokenizes a batch of rows (rank 2), got {token_ids}")
        token_ids = tf.cast(token_ids, tf.int32)
        return sentencepiece_ops().sentencepiece_detokenize_op(
            self._model_resource.resource_handle, token_ids.values, token_ids.row_splits, add_bos=False,
            add_eos=False, reverse=False,
        )

    def id_to_token(self, token_id):
        handle = self._model_resource.resource_handle
        token = sentencepiece_ops().sentencepiece_id_to_string_op(handle, [int(token_id)])
        return token.numpy()[0].decode("utf-8")


def load_keras_model(path, tokenizer=None, dequantize=False):
    """`(model, source_tokenizer, target_tokenizer)` rebuilt from an export's `assets.extra/` and variables.

    `tokenizer`: what makes a tokenizer of a SentencePiece model's bytes (default
    `data.tokenizers.make_tokenizer`, keras-hub's; `SentencePieceOps`: without keras-hub).
    `dequantize`: an int8 export comes back as the float model of its dequantized weights (each
    int8 matrix divided by its scales, the values its SavedModel computes with), not as Keras'
    quantized model: to translate with, not to export again.
    """
    from keras_seq2seq.data.tokenizers import make_tokenizer
    from keras_seq2seq.models import Seq2SeqTransformer

    tokenizer = tokenizer or make_tokenizer

    path = Path(path)
    extra = path / "assets.extra"
    missing = [name for name in (SOURCE_PROTO, TARGET_PROTO, MODEL_CONFIG) if not (extra / name).is_file()]
    if missing:
        raise InputError(
            f"{path} is a SavedModel without {', '.join(missing)} in assets.extra/: it was not exported by "
            "keras-seq2seq (or by a version before 0.1.0), so it cannot be loaded back into Keras"
        )
    source = tokenizer((extra / SOURCE_PROTO).read_bytes())
    target = tokenizer((extra / TARGET_PROTO).read_bytes())
    config = json.loads((extra / MODEL_CONFIG).read_text())
    if dequantize:
        config.pop("quantization", None)
    model = Seq2SeqTransformer.from_config({**config, "dtype": "float32"})
    model.build()  # quantized as the export's model was, when its config says so
    _restore_variables(model, path / "variables" / "variables", dequantize)
    return model, source, target


def load_translator(path, jit_compile=False):
    """A `Translator` of an export's Keras model (`load_keras_model`: its tokenizers
    `SentencePieceOps`, keras-hub not imported; an int8 export's weights dequantized into the float
    model, as its SavedModel computes), with the beam search settings the export was made with; not
    compiled by default (to run under `run_eagerly`)."""
    from keras_seq2seq.serving.translator import Translator

    model, source, target = load_keras_model(path, SentencePieceOps, dequantize=True)
    return Translator(model, source, target, jit_compile=jit_compile, **decoding_settings(path))


# A quantized layer's int8 variable -> the variable of its scales (Keras' int8 Dense and Embedding).
_SCALES = {"_kernel": "kernel_scale", "_embeddings": "embeddings_scale"}


def _restore_variables(model, checkpoint, dequantize=False):
    """Assigns a SavedModel's `model/...` variables to the Keras model's, by attribute path.

    `dequantize`: an int8 matrix and its scales (`_SCALES`) are assigned as one float matrix
    (`serving.quantization.dequantize`: per output unit for a Dense kernel, per token for
    embeddings) to the float model's variable of that path.
    """
    from keras_seq2seq.serving.quantization import dequantize as dequantized

    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    assigned = set()
    reader = tf.train.load_checkpoint(str(checkpoint))
    stored = reader.get_variable_to_shape_map()
    for name in stored:
        if not (name.startswith("model/") and name.endswith(suffix)):
            continue
        parts = name[len("model/") : -len(suffix)].split("/")
        if dequantize and parts[-1] in _SCALES.values():
            continue  # read with its int8 matrix
        value = reader.get_tensor(name)
        if dequantize and parts[-1] in _SCALES:
            scales = "/".join(["model", *parts[:-1], _SCALES[parts[-1]]]) + suffix
            if scales in stored:
                scale = reader.get_tensor(scales)
                value = dequantized(value, scale if parts[-1] == "_kernel" else scale[:, None])
        target = model
        for part in parts:
            target = target[int(part)] if part.isdigit() else getattr(target, part)
        target.assign(value)
        assigned.add(id(target))
    missing = [weight.path for weight in model.weights if id(weight) not in assigned]
    if missing:
        raise ValueError(f"{checkpoint}: no saved value for {len(missing)} weights, first {missing[:3]}")
