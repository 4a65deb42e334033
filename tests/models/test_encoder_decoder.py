import keras
import numpy as np
import pytest

from keras_seq2seq.models import Decoder, DecoderBlock, Encoder, EncoderBlock

STACK = dict(num_layers=2, d_model=16, num_heads=2, ff_dim=32, dropout=0.1, max_length=20)


@pytest.mark.parametrize(
    "layer",
    [
        Encoder(30, normalize_first=True, **STACK),
        Decoder(25, tie_embeddings=True, **STACK),
        EncoderBlock(2, 32, dropout=0.1, attention_dropout=0.1),
        DecoderBlock(2, 32, normalize_first=True),
    ],
    ids=["encoder", "decoder", "encoder_block", "decoder_block"],
)
def test_get_config_round_trip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_encoder_returns_padding_mask_and_ignores_padding(rng):
    encoder = Encoder(30, **STACK)
    ids = np.array([[5, 6, 7, 0, 0]])
    output, mask = encoder(ids)
    np.testing.assert_array_equal(np.asarray(mask), [[True, True, True, False, False]])
    shorter, _ = encoder(ids[:, :3])
    np.testing.assert_allclose(np.asarray(output)[:, :3], np.asarray(shorter), atol=1e-5)


def test_decoder_logits_and_attention_probabilities(rng):
    decoder = Decoder(25, **STACK)
    encoder_output = rng.normal(size=(2, 6, 16)).astype("float32")
    source_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    logits, probabilities = decoder(
        np.array([[2, 7, 8], [2, 9, 0]]), encoder_output, source_mask, return_attention_scores=True
    )
    assert tuple(logits.shape) == (2, 3, 25)
    probabilities = np.asarray(probabilities)
    assert probabilities.shape == (2, 2, 3, 6)
    np.testing.assert_array_equal(probabilities[0, :, :, 4:], 0.0)


def test_blocks_build_with_the_stack_width():
    encoder = Encoder(30, **STACK)
    encoder.build(None)
    weights = {w.path.split("/", 1)[1]: tuple(w.shape) for w in encoder.weights}
    assert weights["embedding/token_embedding/embeddings"] == (30, 16)
    assert weights["block_0/feed_forward/hidden/kernel"] == (16, 32)
    assert keras.saving.get_registered_object("keras_seq2seq>Encoder") is Encoder


@pytest.mark.parametrize("normalize_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_encode_tokens_equals_the_padded_encoder_at_real_tokens(normalize_first, jit_compile):
    """The encoder run on real tokens only gives the padded encoder's output at each of them."""
    import tensorflow as tf

    encoder = Encoder(30, normalize_first=normalize_first, **STACK)
    ids = np.array([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [9, 10, 11, 12, 13]])
    expected, mask = encoder(ids)
    positions = tf.cast(tf.where(ids != 0), tf.int32)
    tokens, tokens_mask = tf.function(encoder.encode_tokens, jit_compile=jit_compile)(ids, positions)
    np.testing.assert_array_equal(np.asarray(tokens_mask), np.asarray(mask))
    assert tokens.shape == (9, 16)
    np.testing.assert_allclose(tokens.numpy(), tf.gather_nd(expected, positions).numpy(), atol=1e-5)
    # Tokens listed in another order, some twice, with a padding position: each comes out in its place.
    shuffled = tf.concat([tf.gather(positions, [8, 0, 3, 3, 7, 6, 5, 4, 2, 1]), [[1, 4]]], axis=0)
    again, _ = encoder.encode_tokens(ids, shuffled)
    np.testing.assert_allclose(again.numpy()[:10], tf.gather_nd(expected, shuffled[:10]).numpy(), atol=1e-5)
