"""The encoder-decoder Transformer as one Keras model."""

import keras

from keras_seq2seq.models.config import validate_model_config
from keras_seq2seq.models.decoder import Decoder
from keras_seq2seq.models.encoder import Encoder
from keras_seq2seq.models.presets import preset_config


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class Seq2SeqTransformer(keras.Model):
    """Encoder-decoder Transformer returning next-token logits (teacher forcing).

    Args:
        source_vocab_size: size of the source vocabulary (id 0 is padding).
        target_vocab_size: size of the target vocabulary (id 0 is padding).
        num_layers: encoder blocks, and decoder blocks unless `num_decoder_layers` is set.
        d_model: width of the streams; must be divisible by `num_heads`.
        num_heads: attention heads.
        ff_dim: hidden size of the feed-forward blocks.
        dropout: residual and embedding dropout, in [0, 1).
        max_length: longest source or target sequence, in tokens.
        num_decoder_layers: decoder blocks, when different from `num_layers`.
        attention_dropout: dropout on attention probabilities, in [0, 1).
        ff_dropout: dropout on the feed-forward hidden activations, in [0, 1)
            (tensor2tensor's "relu dropout"; the paper has none, and it is costly
            under XLA on CPU, where random bits for the wide hidden layer dominate).
        activation: feed-forward activation: relu, gelu, silu or swish.
        normalize_first: pre-norm blocks instead of the paper's post-norm (AddNorm).
        tie_embeddings: share the target embedding with the output projection.

    Call arguments:
        inputs: `(source_ids, target_in_ids)`, int [batch, source_length] and
            [batch, target_length], 0 for padding; a dict with those keys works too.

    Returns:
        float32 logits [batch, target_length, target_vocab_size].

    For inference, `encode()` runs the encoder once, then the decoder's
    `compute_cross_key_values`, `init_cache` and `decode_step` extend the output one
    position at a time without recomputing earlier positions.

    Example:

    >>> import numpy as np
    >>> model = Seq2SeqTransformer.from_preset("tiny", source_vocab_size=50, target_vocab_size=40)
    >>> model((np.array([[5, 6, 7, 0]]), np.array([[2, 9, 10]]))).shape
    (1, 3, 40)

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        num_layers,
        d_model,
        num_heads,
        ff_dim,
        dropout=0.1,
        max_length=256,
        num_decoder_layers=None,
        attention_dropout=0.0,
        ff_dropout=0.0,
        activation="relu",
        normalize_first=False,
        tie_embeddings=False,
        **kwargs,
    ):
        kwargs.setdefault("name", "seq2seq_transformer")
        super().__init__(**kwargs)
        validate_model_config(
            source_vocab_size=source_vocab_size,
            target_vocab_size=target_vocab_size,
            num_layers=num_layers,
            num_decoder_layers=num_decoder_layers,
            d_model=d_model,
            num_heads=num_heads,
            ff_dim=ff_dim,
            dropout=dropout,
            max_length=max_length,
            attention_dropout=attention_dropout,
            ff_dropout=ff_dropout,
            activation=activation,
        )
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.num_layers = num_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.max_length = max_length
        self.num_decoder_layers = num_decoder_layers
        self.attention_dropout = attention_dropout
        self.ff_dropout = ff_dropout
        self.activation = activation
        self.normalize_first = normalize_first
        self.tie_embeddings = tie_embeddings

        shared = dict(
            d_model=d_model,
            num_heads=num_heads,
            ff_dim=ff_dim,
            dropout=dropout,
            max_length=max_length,
            attention_dropout=attention_dropout,
            ff_dropout=ff_dropout,
            activation=activation,
            normalize_first=normalize_first,
            dtype=self.dtype_policy,
        )
        self.encoder = Encoder(source_vocab_size, num_layers, name="encoder", **shared)
        self.decoder = Decoder(
            target_vocab_size,
            num_decoder_layers or num_layers,
            tie_embeddings=tie_embeddings,
            name="decoder",
            **shared,
        )

    @classmethod
    def from_preset(cls, preset, source_vocab_size, target_vocab_size, **overrides):
        """A model of a named size (`tiny`, `small`, `base`), any argument overridable."""
        return cls(
            source_vocab_size=source_vocab_size,
            target_vocab_size=target_vocab_size,
            **preset_config(preset, **overrides),
        )

    def build(self, inputs_shape=None):
        self.encoder.build(None)
        self.decoder.build(None)
        self.built = True

    @staticmethod
    def _unpack(inputs):
        if isinstance(inputs, dict):
            return inputs["source_ids"], inputs["target_in_ids"]
        source_ids, target_in_ids = inputs
        return source_ids, target_in_ids

    def call(self, inputs, training=None):
        source_ids, target_in_ids = self._unpack(inputs)
        encoder_output, source_padding_mask = self.encoder(source_ids, training=training)
        return self.decoder(target_in_ids, encoder_output, source_padding_mask, training=training)

    def encode(self, source_ids, training=False):
        """Runs the encoder once: `(encoder_output, source_padding_mask)`."""
        if not self.built:
            self.build()
        return self.encoder(source_ids, training=training)

    def cross_attention_weights(self, source_ids, target_in_ids):
        """Last decoder block's cross-attention probabilities [batch, heads, target_len, source_len]."""
        encoder_output, source_padding_mask = self.encoder(source_ids, training=False)
        _, probabilities = self.decoder(
            target_in_ids, encoder_output, source_padding_mask, return_attention_scores=True
        )
        return probabilities

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size,
                "num_layers": self.num_layers,
                "d_model": self.d_model,
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
                "max_length": self.max_length,
                "num_decoder_layers": self.num_decoder_layers,
                "attention_dropout": self.attention_dropout,
                "ff_dropout": self.ff_dropout,
                "activation": self.activation,
                "normalize_first": self.normalize_first,
                "tie_embeddings": self.tie_embeddings,
            }
        )
        return config

