"""The encoder-decoder Transformer as one Keras model."""

import gc
import warnings

import keras

from keras_seq2seq.models.config import TransformerConfig, as_config
from keras_seq2seq.models.decoder import Decoder
from keras_seq2seq.models.encoder import Encoder
from keras_seq2seq.models.presets import preset_config


@keras.saving.register_keras_serializable(package="keras_seq2seq")
class Seq2SeqTransformer(keras.Model):
    """Encoder-decoder Transformer returning next-token logits (teacher forcing).

    Args:
        config: a `TransformerConfig` with both vocabulary sizes set. Its fields may
            be given as keyword arguments instead (`Seq2SeqTransformer(num_layers=2,
            d_model=64, ...)`), which is also how `get_config()` round-trips.

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
    >>> model.config.num_layers
    2
    >>> model((np.array([[5, 6, 7, 0]]), np.array([[2, 9, 10]]))).shape
    (1, 3, 40)

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
    """

    def __init__(self, config=None, quantization=None, **kwargs):
        fields = {name: kwargs.pop(name) for name in TransformerConfig.field_names() if name in kwargs}
        kwargs.setdefault("name", "seq2seq_transformer")
        super().__init__(**kwargs)
        if config is None:
            config = TransformerConfig.from_dict(fields)
        elif fields:
            raise TypeError(f"give the hyper-parameters in `config` or as keywords, not both: {sorted(fields)}")
        self.config = as_config(config).require_vocabularies()
        # From the config of a quantized model: `build` quantizes the same way, so that a
        # `.keras` file of it loads (its int8 weights then replace the values quantized here).
        self._quantization_to_apply = quantization
        self.encoder = Encoder(self.config, dtype=self.dtype_policy, name="encoder")
        self.decoder = Decoder(self.config, dtype=self.dtype_policy, name="decoder")

    @classmethod
    def from_preset(cls, preset, source_vocab_size, target_vocab_size, **overrides):
        """A model of a named size (`tiny`, `small`, `base`), any field overridable."""
        config = preset_config(preset, **overrides)
        return cls(config.replace(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size))

    def build(self, inputs_shape=None):
        self.encoder.build(None)
        self.decoder.build(None)
        self.built = True
        if self._quantization_to_apply:
            settings, self._quantization_to_apply = self._quantization_to_apply, None
            config = settings.get("config")
            self.quantize(settings["mode"], config=keras.saving.deserialize_keras_object(config) if config else None)

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Keras' `Model.quantize`, with its garbage collections made cheap.

        Keras runs a full `gc.collect()` for every variable quantization replaces, which
        with TensorFlow loaded took 0.2 s each, 8 s for the `small` model. Objects alive
        before quantizing are not its garbage: they sit out those collections (`gc.freeze`).
        Its warning for each layer that has nothing to quantize (layer normalization,
        dropout) is not shown: those stay float by design.
        """
        gc.freeze()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Layer \w+ does not have a `quantize` method implemented")
                super().quantize(mode, config=config, filters=filters, **kwargs)
        finally:
            gc.unfreeze()

    def quantization(self):
        """`{"mode": ..., "config": ...}` of a model quantized with `quantize` (Keras'), else None."""
        layers = [layer for layer in self._flatten_layers() if getattr(layer, "quantization_mode", None)]
        if not layers:
            return None
        modes = {layer.quantization_mode for layer in layers}
        if len(modes) > 1:
            raise ValueError(f"{self.name} mixes quantization modes {sorted(modes)}: it cannot be saved")
        config = getattr(layers[0], "quantization_config", None)
        return {
            "mode": modes.pop(),
            "config": keras.saving.serialize_keras_object(config) if config is not None else None,
        }

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
        # The fields at the top level: the format of model_config.json and of .keras files since 0.1.0.
        config = {**super().get_config(), **self.config.to_dict()}
        quantization = self.quantization() if self.built else self._quantization_to_apply
        return {**config, "quantization": quantization} if quantization else config
