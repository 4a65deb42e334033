"""int8 weights: Keras' own quantization of our layers, its `.keras` round trip, and the int8
Translator computing what the quantized Keras model computes."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq import Translator, load_run
from keras_seq2seq.decoding import greedy_decode
from keras_seq2seq.layers import PositionwiseDense
from keras_seq2seq.serving.quantization import DequantizedWeights, is_quantized, quantize_model

RUN = Path(__file__).resolve().parent / "fixtures" / "tiny-run-0.1.0"
SENTENCES = ["Je suis étudiant.", "Il fait beau.", "Où est la gare ?", "Merci beaucoup !", "Va !"]


@pytest.fixture(scope="module")
def loaded():
    return load_run(RUN)


@pytest.fixture(scope="module")
def quantized(loaded):
    return quantize_model(loaded[0])


def _matrices(model):
    """Every Dense and the token Embeddings of `model`, in order."""
    return [
        layer for layer in model._flatten_layers()
        if isinstance(layer, (keras.layers.Dense, keras.layers.Embedding))
    ]


def test_every_matrix_is_int8_with_the_scales_keras_computes(loaded, quantized):
    model = loaded[0]
    floats, ints = _matrices(model), _matrices(quantized)
    # 2 encoder blocks of 5 Dense, 2 decoder blocks of 7, the 2 token embeddings (the output is tied)
    assert len(ints) == len(floats) == 2 * 5 + 2 * 7 + 2
    assert sum(isinstance(layer, PositionwiseDense) for layer in ints) == 24
    for float_layer, int_layer in zip(floats, ints):
        assert int_layer.quantization_mode == "int8", int_layer.path
        dense = isinstance(int_layer, keras.layers.Dense)
        matrix = float_layer.kernel if dense else float_layer.embeddings
        values, scale = keras.quantizers.abs_max_quantize(matrix, axis=0 if dense else -1)
        stored = int_layer._kernel if dense else int_layer._embeddings
        assert stored.dtype == "int8"
        np.testing.assert_array_equal(np.asarray(stored), np.asarray(values))
        stored_scale = int_layer.kernel_scale if dense else int_layer.embeddings_scale
        np.testing.assert_array_equal(np.asarray(stored_scale), np.asarray(scale).reshape(-1))
        # Dequantized, each entry is within half a step of its float value.
        step = np.abs(np.asarray(matrix)).max(axis=0 if dense else -1, keepdims=True) / 127
        restored = np.asarray(stored, "float32") / np.asarray(stored_scale).reshape(step.shape)
        assert np.all(np.abs(restored - np.asarray(matrix)) <= step / 2 + 1e-6)
    assert not is_quantized(model) and is_quantized(quantized)


def test_quantizing_warns_of_nothing(loaded):
    """Keras warns of each layer it finds nothing to quantize in: ours are float by design (layer
    normalization, dropout), and a user quantizing or loading an int8 model sees no warning."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize_model(loaded[0])
    messages = [str(warning.message) for warning in caught]
    assert [message for message in messages if "quantiz" in message] == []


def test_a_quantized_model_round_trips_through_a_keras_file(quantized, tmp_path):
    source = np.array([[5, 6, 7, 0], [9, 10, 0, 0]], "int32")
    target = np.array([[1, 8, 9], [1, 4, 0]], "int32")
    quantized.save(tmp_path / "int8.keras")
    back = keras.saving.load_model(tmp_path / "int8.keras")
    assert back.get_config()["quantization"]["mode"] == "int8"
    assert [w.path for w in back.weights] == [w.path for w in quantized.weights]
    for mine, theirs in zip(back.weights, quantized.weights):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    np.testing.assert_array_equal(np.asarray(back((source, target))), np.asarray(quantized((source, target))))


def test_dequantized_weights_make_the_float_model_compute_the_quantized_one(loaded, quantized):
    model = loaded[0]
    source = np.array([[5, 6, 7, 0], [9, 10, 0, 0]], "int32")
    target = np.array([[1, 8, 9], [1, 4, 0]], "int32")
    weights = DequantizedWeights(model, quantized)
    with keras.StatelessScope(state_mapping=list(zip(weights.variables, weights.values()))):
        mapped = np.asarray(model((source, target)))
    # The same numbers as Keras' int8 layers, up to where the scale divides (before or after the product).
    np.testing.assert_allclose(mapped, np.asarray(quantized((source, target))), atol=1e-4)
    # ... and not the float model's.
    assert np.abs(mapped - np.asarray(model((source, target)))).max() > 1e-4


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_int8_translator_decodes_as_the_quantized_keras_model(loaded, quantized, jit_compile):
    model, source_tokenizer, target_tokenizer = loaded
    translator = Translator(model, source_tokenizer, target_tokenizer, quantize="int8", jit_compile=jit_compile)
    if jit_compile:  # its step copies are made from the dequantized matrices (in memory, not stored)
        layer = translator.quantized_model.decoder.blocks[0].feed_forward._output_dense
        dequantized = layer._kernel.numpy() / layer.kernel_scale.numpy()
        blocks = translator.step_weights.blocks[0][5]
        np.testing.assert_allclose(np.concatenate([block.numpy() for block in blocks], -1), dequantized, rtol=1e-6)
    else:
        assert translator.step_weights is None
    outputs = translator.translate(tf.constant(SENTENCES))
    source_ids = translator.tokenize_source(tf.constant(SENTENCES))["token_ids"]
    expected_ids, expected_scores = greedy_decode(quantized, source_ids)
    expected = [text.decode() for text in translator.detokenize(expected_ids).numpy()]
    assert [text.decode() for text in outputs["translation"].numpy()] == expected
    np.testing.assert_allclose(outputs["score"].numpy(), expected_scores.numpy(), atol=1e-3)


def test_a_quantized_model_is_served_quantized(loaded, quantized):
    translator = Translator(quantized, *loaded[1:], jit_compile=False)
    assert translator.quantized_model is quantized and not is_quantized(translator.model)


def test_an_unknown_quantization_mode_is_named(loaded):
    with pytest.raises(ValueError, match="mode='int4'"):
        Translator(*loaded, quantize="int4")
