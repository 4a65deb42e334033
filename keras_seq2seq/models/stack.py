"""What the encoder and decoder stacks share: configuration, embedding, blocks, final norm."""

import keras

from keras_seq2seq.layers import PositionalEmbedding
from keras_seq2seq.layers.dropout import Dropout
from keras_seq2seq.models.config import as_config


class TransformerStack(keras.layers.Layer):
    """Base of `Encoder` and `Decoder`: a `PositionalEmbedding` and a stack of blocks.

    Subclasses set `block_class`, `vocab_size` and `num_layers` (which of the config's
    fields they read), and implement `call`.
    """

    block_class = None

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = as_config(config)
        if self.vocab_size is None:
            raise ValueError(f"{type(self).__name__} needs the config's vocabulary size, got None")

    @property
    def vocab_size(self):
        raise NotImplementedError

    @property
    def num_layers(self):
        raise NotImplementedError

    def _build_stack(self):
        config = self.config
        self.embedding = PositionalEmbedding(
            self.vocab_size, config.d_model, config.max_length, dtype=self.dtype_policy, name="embedding"
        )
        self.embedding.build(None)
        self._embedding_dropout = Dropout(config.dropout, dtype=self.dtype_policy)
        stream_shape = (None, None, config.d_model)
        self.blocks = []
        for index in range(self.num_layers):
            block = self.block_class(config, dtype=self.dtype_policy, name=f"block_{index}")
            block.build(stream_shape)
            self.blocks.append(block)
        self.final_norm = None
        if config.normalize_first:
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=1e-6, dtype=self.dtype_policy, name="final_norm"
            )
            self.final_norm.build(stream_shape)

    def _embed(self, token_ids, start_index=0, training=None):
        return self._embedding_dropout(self.embedding(token_ids, start_index=start_index), training=training)

    def _finish(self, stream):
        return stream if self.final_norm is None else self.final_norm(stream)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}
