"""Token embedding scaled by sqrt(d_model) plus sinusoidal positions."""

import math

import keras
from keras import ops


def sinusoidal_positions(positions, d_model, dtype="float32"):
    """[len(positions), d_model]: sines in the first half of the features, cosines in the second."""
    half = d_model // 2
    inverse_frequencies = ops.exp(
        ops.arange(half, dtype="float32") * (-math.log(10000.0) / max(half - 1, 1))
    )
    angles = ops.expand_dims(ops.cast(positions, "float32"), 1) * ops.expand_dims(
        inverse_frequencies, 0
    )
    table = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    if d_model % 2:
        table = ops.pad(table, ((0, 0), (0, 1)))
    return ops.cast(table, dtype)


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class PositionalEmbedding(keras.layers.Layer):
    """Embeds token ids, scales by sqrt(d_model) and adds sinusoidal position encodings.

    Id 0 is padding: the layer's Keras mask (`compute_mask`) is `ids != 0`, so the
    attention layers after it pick up the padding mask.

    Args:
        vocab_size: number of token ids.
        d_model: embedding size.
        max_length: longest sequence accepted; longer inputs raise an error when
            their length is known while tracing.
        embeddings_initializer: initializer of the embedding matrix; defaults to a
            normal distribution with standard deviation d_model ** -0.5, which the
            sqrt(d_model) scaling brings back to unit scale.

    Call arguments:
        token_ids: int [batch, length].
        start_index: position of `token_ids[:, 0]` (for incremental decoding).

    Example:

    >>> import numpy as np
    >>> layer = PositionalEmbedding(vocab_size=10, d_model=4, max_length=8)
    >>> layer(np.array([[5, 6, 0]])).shape
    (1, 3, 4)

    References:
        Vaswani et al., "Attention Is All You Need", 2017 (sections 3.4 and 3.5).
    """

    def __init__(self, vocab_size, d_model, max_length=512, embeddings_initializer=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("max_length", max_length)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.max_length = max_length
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer or keras.initializers.RandomNormal(stddev=d_model**-0.5)
        )

    def build(self, token_ids_shape=None):
        self.token_embedding = keras.layers.Embedding(
            self.vocab_size,
            self.d_model,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.token_embedding.build(None)
        self.built = True

    @property
    def embeddings(self):
        """The [vocab_size, d_model] embedding matrix (for tying the output projection).

        After `quantize("int8")` (Keras' int8 Embedding: one scale per token), the matrix
        computed back in float from the int8 values and scales.
        """
        layer = self.token_embedding
        mode = layer.quantization_mode
        if mode is None:
            return layer.embeddings
        if mode != "int8":
            raise NotImplementedError(f"{self.name}: tied embeddings quantized as {mode!r} (int8 is supported)")
        return ops.divide(
            ops.cast(layer._embeddings, self.compute_dtype),
            ops.expand_dims(ops.cast(layer.embeddings_scale, self.compute_dtype), -1),
        )

    def call(self, token_ids, start_index=0):
        length = token_ids.shape[1]
        if isinstance(length, int) and isinstance(start_index, int) and start_index + length > self.max_length:
            raise ValueError(
                f"sequence of length {start_index + length} exceeds max_length={self.max_length}"
            )
        embedded = self.token_embedding(token_ids)
        embedded = embedded * ops.cast(math.sqrt(self.d_model), embedded.dtype)
        positions = ops.arange(ops.shape(token_ids)[1]) + start_index
        return embedded + ops.expand_dims(
            sinusoidal_positions(positions, self.d_model, embedded.dtype), 0
        )

    def compute_mask(self, token_ids, mask=None):
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, token_ids_shape):
        return tuple(token_ids_shape) + (self.d_model,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "d_model": self.d_model,
                "max_length": self.max_length,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config
