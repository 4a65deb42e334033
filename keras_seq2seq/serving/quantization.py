"""int8 weights for serving: Keras' own quantization, computed with in float.

`quantize_model` applies Keras 3's `model.quantize("int8")` to a copy of a model, weights
only (activations stay float: `Int8QuantizationConfig(activation_quantizer=None)`): every
Dense kernel becomes int8 with one float scale per output unit, the token embeddings int8
with one scale per token (so the tied output projection has one per output token too).
Biases, layer normalization and the sinusoidal positions stay float32. The quantized model
is a Keras model like any other (it saves to `.keras` and loads back, and its own `call`
runs Keras' int8 layers).

A `Translator` built with `quantize="int8"` keeps those int8 variables and nothing else of
the weights (its SavedModel stores 1 byte a parameter), and decodes with
`DequantizedWeights`: each int8 matrix times its scales, in float, fed to the model's layers
in place of their float variables (`keras.StatelessScope`). The float values are computed
once per process and kept in memory (`serving.prepared.PreparedWeights`: the SavedModel
stores them empty and computes them while it loads); a step then runs the
float computation of the float model, at its speed.
"""

import keras
from keras import ops

from keras_seq2seq.models import Seq2SeqTransformer

MODES = ("int8",)


def _weights_only():
    return keras.quantizers.Int8QuantizationConfig(activation_quantizer=None)


def is_quantized(model):
    """Whether any layer of `model` holds quantized weights."""
    return any(getattr(layer, "quantization_mode", None) for layer in model._flatten_layers())


def quantize_model(model, mode="int8"):
    """A copy of the float `model` with int8 Dense and Embedding weights (Keras' `quantize`, weights only)."""
    if mode not in MODES:
        raise ValueError(f"quantization mode must be one of {list(MODES)}, got mode={mode!r}")
    if is_quantized(model):
        raise ValueError(f"{model.name} is already quantized")
    copy = float_twin(model)
    copy.set_weights(model.get_weights())
    copy.quantize(mode, config=_weights_only())
    return copy


def float_twin(model):
    """A float32 model of `model`'s configuration (its weights not copied)."""
    config = {key: value for key, value in model.get_config().items() if key not in ("dtype", "quantization")}
    twin = Seq2SeqTransformer.from_config({**config, "dtype": "float32"})
    twin.build()
    return twin


def _own_variables(layer):
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


class DequantizedWeights:
    """The float value of each variable of `model`, computed from `quantized` (its int8 copy).

    Args:
        model: a float `Seq2SeqTransformer`; its variables' values are never read.
        quantized: `quantize_model(model)`, or a quantized model of the same configuration.

    `variables` lists `model`'s variables; `values()` builds, in the current graph, each
    one's value from `quantized` (an int8 matrix divided by its scales, Keras' convention;
    any other variable as it is). Run code under
    `keras.StatelessScope(state_mapping=zip(variables, values()))` and `model` computes
    with the quantized weights.
    """

    def __init__(self, model, quantized):
        self.variables, self._sources = [], []
        pairs = zip(model._flatten_layers(include_self=True), quantized._flatten_layers(include_self=True))
        for mine, theirs in pairs:
            if type(mine) is not type(theirs):
                raise ValueError(f"{quantized.name} is not a quantized copy of {model.name}: {mine.path}")
            mode = getattr(theirs, "quantization_mode", None)
            if mode is None:
                for variable, source in zip(_own_variables(mine), _own_variables(theirs), strict=True):
                    self._add(variable, lambda source=source: source)
            elif mode == "int8" and isinstance(theirs, keras.layers.Embedding):
                source = lambda layer=theirs: dequantize(layer._embeddings, layer.embeddings_scale[:, None])
                self._add(mine.embeddings, source)
            elif mode == "int8" and isinstance(theirs, keras.layers.Dense):
                self._add(mine.kernel, lambda layer=theirs: dequantize(layer._kernel, layer.kernel_scale))
                if mine.bias is not None:
                    self._add(mine.bias, lambda layer=theirs: layer.bias)
            else:
                raise ValueError(f"{theirs.path}: cannot serve a {type(theirs).__name__} quantized as {mode!r}")
        # (Dropout's seed states are not weights: inference never reads them.)
        unmatched = {id(v) for v in model.trainable_variables} - {id(v) for v in self.variables}
        if unmatched:
            names = [v.path for v in model.trainable_variables if id(v) in unmatched]
            raise ValueError(f"no quantized source for {len(names)} variables of {model.name}, first {names[:3]}")

    def _add(self, variable, source):
        self.variables.append(variable)
        self._sources.append(source)

    def values(self):
        return [ops.convert_to_tensor(source()) for source in self._sources]


def dequantize(quantized, scale):
    """The float value of an int8 matrix: `quantized / scale` in float32 (Keras' convention; `scale`
    broadcast over it: [units] for a Dense kernel, [tokens, 1] for embeddings)."""
    return ops.divide(ops.cast(quantized, "float32"), ops.cast(scale, "float32"))
