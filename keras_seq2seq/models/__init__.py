"""Encoder, decoder and the full encoder-decoder Transformer, with their configuration and named sizes."""

from keras_seq2seq.models.config import TransformerConfig
from keras_seq2seq.models.decoder import Decoder, DecoderBlock
from keras_seq2seq.models.encoder import Encoder, EncoderBlock
from keras_seq2seq.models.presets import PRESETS, preset_config
from keras_seq2seq.models.seq2seq_transformer import Seq2SeqTransformer

__all__ = [
    "PRESETS",
    "Decoder",
    "DecoderBlock",
    "Encoder",
    "EncoderBlock",
    "Seq2SeqTransformer",
    "TransformerConfig",
    "preset_config",
]
