"""Serving: the `Translator` (strings in, strings out) and its SavedModel."""

from keras_seq2seq.serving.saved_model import export_translator, load_keras_model, load_saved_model
from keras_seq2seq.serving.translator import Translator

__all__ = ["Translator", "export_translator", "load_keras_model", "load_saved_model"]
