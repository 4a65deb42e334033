"""keras-seq2seq: encoder-decoder Transformers for Keras 3 / TensorFlow.

The names below load on first use (PEP 562): `import keras_seq2seq.cli` or loading a SavedModel
through `keras_seq2seq.serving.saved_model` imports neither Keras nor the layers, so the
command line translates with a SavedModel after importing TensorFlow alone.
"""

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

_EXPORTS = {
    "FusedAdam": "keras_seq2seq.optimizers",
    "RunDirectory": "keras_seq2seq.runs",
    "Seq2SeqTransformer": "keras_seq2seq.models",
    "TransformerConfig": "keras_seq2seq.models",
    "Translator": "keras_seq2seq.serving.translator",
    "beam_search": "keras_seq2seq.decoding",
    "export_translator": "keras_seq2seq.serving.saved_model",
    "greedy_decode": "keras_seq2seq.decoding",
    "load_run": "keras_seq2seq.runs",
    "sample_decode": "keras_seq2seq.decoding",
}
_SUBPACKAGES = ("layers", "models")

__all__ = sorted([*_EXPORTS, *_SUBPACKAGES, "__version__"])


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
