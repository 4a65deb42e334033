"""Serving: the `Translator` (strings in, strings out) and its SavedModel.

`Translator` loads Keras on first use; the SavedModel functions need TensorFlow only.
"""

from keras_seq2seq.serving.saved_model import export_translator, load_keras_model, load_saved_model

__all__ = ["Translator", "export_translator", "load_keras_model", "load_saved_model"]


def __getattr__(name):
    if name == "Translator":
        from keras_seq2seq.serving.translator import Translator

        return Translator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
