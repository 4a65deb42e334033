import keras
import numpy as np

from keras_seq2seq.layers import CrossMHA, mask_fill_value


def test_fill_value_is_finite_in_every_float_type():
    for dtype in ("float16", "bfloat16", "float32"):
        value = keras.ops.cast(mask_fill_value(dtype), dtype)
        assert np.isfinite(float(value)), dtype


def test_fully_masked_row_stays_finite_in_float16(rng):
    layer = CrossMHA(num_heads=2, dtype="float16")
    query = rng.normal(size=(1, 2, 8)).astype("float16")
    encoder_output = rng.normal(size=(1, 3, 8)).astype("float16")
    output = np.asarray(layer(query, encoder_output, np.zeros((1, 3), bool)), dtype="float32")
    assert np.isfinite(output).all()


def test_head_dim_must_divide_width():
    import pytest

    with pytest.raises(ValueError, match="num_heads=3"):
        CrossMHA(num_heads=3)(np.zeros((1, 2, 8), "float32"), np.zeros((1, 2, 8), "float32"))
