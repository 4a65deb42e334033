"""Serving: the `Translator` (strings in, strings out) and its SavedModel.

`Translator` loads Keras on first use; the SavedModel functions need TensorFlow only.
"""

from keras_seq2seq.serving.saved_model import export_translator, load_keras_model, load_saved_model, load_translator

__all__ = ["Translator", "export_translator", "load_keras_model", "load_saved_model", "load_translator", "run_eagerly"]


def __getattr__(name):
    if name in ("Translator", "run_eagerly"):
        from keras_seq2seq.serving import translator

        return getattr(translator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
