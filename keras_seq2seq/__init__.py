"""keras-seq2seq: encoder-decoder Transformers for Keras 3 / TensorFlow."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_seq2seq import layers, models  # noqa: E402
from keras_seq2seq.decoding import beam_search, greedy_decode, sample_decode  # noqa: E402
from keras_seq2seq.models import Seq2SeqTransformer, TransformerConfig  # noqa: E402
from keras_seq2seq.optimizers import FusedAdam  # noqa: E402
from keras_seq2seq.runs import RunDirectory, load_run  # noqa: E402
from keras_seq2seq.serving import Translator, export_translator  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "FusedAdam",
    "RunDirectory",
    "Seq2SeqTransformer",
    "TransformerConfig",
    "Translator",
    "beam_search",
    "export_translator",
    "greedy_decode",
    "layers",
    "load_run",
    "models",
    "sample_decode",
    "__version__",
]
