"""Validation of the model hyper-parameters, shared by the encoder, decoder and full model."""

import numbers

_ACTIVATIONS = ("relu", "gelu", "silu", "swish")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")


def _rate(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {name}={value!r}")


def validate_model_config(**params):
    """Raises ValueError naming the first bad hyper-parameter; returns `params` unchanged.

    Integers must be positive, rates in [0, 1), and `d_model` divisible by `num_heads`.
    """
    for name in (
        "source_vocab_size",
        "target_vocab_size",
        "vocab_size",
        "num_layers",
        "num_encoder_layers",
        "num_decoder_layers",
        "d_model",
        "num_heads",
        "ff_dim",
        "max_length",
    ):
        if name in params and params[name] is not None:
            _positive_int(name, params[name])
    for name in ("dropout", "attention_dropout", "ff_dropout"):
        if name in params:
            _rate(name, params[name])
    if "d_model" in params and "num_heads" in params and params["d_model"] % params["num_heads"]:
        raise ValueError(
            f"d_model must be divisible by num_heads, got d_model={params['d_model']!r} "
            f"and num_heads={params['num_heads']!r}"
        )
    activation = params.get("activation", "relu")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got activation={activation!r}")
    return params
