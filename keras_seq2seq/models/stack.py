"""What the encoder and decoder stacks share: hyper-parameters, embedding, blocks, final norm."""

import keras

from keras_seq2seq.layers import PositionalEmbedding
from keras_seq2seq.layers.dropout import Dropout
from keras_seq2seq.models.config import validate_model_config


class TransformerStack(keras.layers.Layer):
    """Base of `Encoder` and `Decoder`: a `PositionalEmbedding` and `num_layers` blocks.

    Subclasses set `block_class` and implement `call`.
    """

    block_class = None

    def __init__(
        self,
        vocab_size,
        num_layers,
        d_model,
        num_heads,
        ff_dim,
        dropout=0.1,
        max_length=256,
        attention_dropout=0.0,
        ff_dropout=0.0,
        activation="relu",
        normalize_first=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validate_model_config(
            vocab_size=vocab_size,
            num_layers=num_layers,
            d_model=d_model,
            num_heads=num_heads,
            ff_dim=ff_dim,
            dropout=dropout,
            max_length=max_length,
            attention_dropout=attention_dropout,
            ff_dropout=ff_dropout,
            activation=activation,
        )
        self.vocab_size = vocab_size
        self.num_layers = num_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.max_length = max_length
        self.attention_dropout = attention_dropout
        self.ff_dropout = ff_dropout
        self.activation = activation
        self.normalize_first = normalize_first

    def _build_stack(self):
        self.embedding = PositionalEmbedding(
            self.vocab_size, self.d_model, self.max_length, dtype=self.dtype_policy, name="embedding"
        )
        self.embedding.build(None)
        self._embedding_dropout = Dropout(self.dropout, dtype=self.dtype_policy)
        stream_shape = (None, None, self.d_model)
        self.blocks = []
        for index in range(self.num_layers):
            block = self.block_class(
                self.num_heads,
                self.ff_dim,
                dropout=self.dropout,
                attention_dropout=self.attention_dropout,
                ff_dropout=self.ff_dropout,
                activation=self.activation,
                normalize_first=self.normalize_first,
                dtype=self.dtype_policy,
                name=f"block_{index}",
            )
            block.build(stream_shape)
            self.blocks.append(block)
        self.final_norm = None
        if self.normalize_first:
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=1e-6, dtype=self.dtype_policy, name="final_norm"
            )
            self.final_norm.build(stream_shape)

    def _embed(self, token_ids, start_index=0, training=None):
        return self._embedding_dropout(self.embedding(token_ids, start_index=start_index), training=training)

    def _finish(self, stream):
        return stream if self.final_norm is None else self.final_norm(stream)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "num_layers": self.num_layers,
                "d_model": self.d_model,
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
                "max_length": self.max_length,
                "attention_dropout": self.attention_dropout,
                "ff_dropout": self.ff_dropout,
                "activation": self.activation,
                "normalize_first": self.normalize_first,
            }
        )
        return config
