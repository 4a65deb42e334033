"""keras-seq2seq: encoder-decoder Transformers for Keras 3 / TensorFlow."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_seq2seq import layers, models  # noqa: E402
from keras_seq2seq.models import Seq2SeqTransformer  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Seq2SeqTransformer", "layers", "models", "__version__"]
