"""Reusable Transformer layers: plain Keras 3 (`keras.ops` only, any backend), each round-tripping
through `get_config` and `.keras` files."""

from keras_seq2seq.layers.add_norm import AddNorm
from keras_seq2seq.layers.attention_core import MultiHeadAttentionCore, mask_fill_value
from keras_seq2seq.layers.cross_mha import CrossMHA
from keras_seq2seq.layers.dense import PositionwiseDense
from keras_seq2seq.layers.dropout import Dropout
from keras_seq2seq.layers.feed_forward import FeedForward
from keras_seq2seq.layers.masked_mha import MaskedMHA, causal_mask
from keras_seq2seq.layers.positional_embedding import PositionalEmbedding, sinusoidal_positions
from keras_seq2seq.layers.self_mha import SelfMHA

__all__ = [
    "AddNorm",
    "CrossMHA",
    "Dropout",
    "FeedForward",
    "MaskedMHA",
    "MultiHeadAttentionCore",
    "PositionalEmbedding",
    "PositionwiseDense",
    "SelfMHA",
    "causal_mask",
    "mask_fill_value",
    "sinusoidal_positions",
]
