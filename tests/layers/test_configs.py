"""Every layer's `get_config` carries each constructor argument: a clone from the config has the
values given to the original (a config compared with itself would not notice a dropped key)."""

import keras
import pytest

from keras_seq2seq import layers


def _initializer_name(initializer):
    return keras.initializers.serialize(initializer)["class_name"]


CASES = [
    (layers.AddNorm, dict(dropout=0.25, epsilon=1e-3)),
    (layers.Dropout, dict(rate=0.3, seed=7)),
    (
        layers.FeedForward,
        dict(ff_dim=24, activation="gelu", dropout=0.2, kernel_initializer="he_normal"),
    ),
    (
        layers.MaskedMHA,
        dict(num_heads=3, head_dim=5, attention_dropout=0.15, use_bias=False, kernel_initializer="he_normal"),
    ),
    (
        layers.CrossMHA,
        dict(
            num_heads=3, head_dim=5, key_value_dim=12, attention_dropout=0.15, use_bias=False,
            kernel_initializer="he_normal",
        ),
    ),
    (layers.PositionalEmbedding, dict(vocab_size=33, d_model=10, max_length=40)),
]
if hasattr(layers, "SelfMHA"):
    CASES.append(
        (
            layers.SelfMHA,
            dict(num_heads=3, head_dim=5, attention_dropout=0.15, use_bias=False, kernel_initializer="he_normal"),
        )
    )


@pytest.mark.parametrize("layer_class, arguments", CASES, ids=[case[0].__name__ for case in CASES])
def test_get_config_carries_every_argument(layer_class, arguments):
    original = layer_class(**arguments, name="configured")
    config = original.get_config()
    clone = layer_class.from_config(config)
    assert clone.name == "configured"
    for name, value in arguments.items():
        assert name in config, f"{layer_class.__name__}.get_config() drops {name}"
        restored = getattr(clone, name)
        if name == "kernel_initializer":
            assert _initializer_name(restored) == "HeNormal"
        elif name == "activation":
            assert keras.activations.serialize(restored) == value
        else:
            assert restored == value, f"{name}: {restored!r} != {value!r}"


def test_dense_config_round_trips_its_dense_arguments():
    original = layers.PositionwiseDense(7, activation="relu", use_bias=False, name="dense")
    clone = layers.PositionwiseDense.from_config(original.get_config())
    assert (clone.units, clone.use_bias, keras.activations.serialize(clone.activation)) == (7, False, "relu")
