import keras
import numpy as np
import pytest

from keras_seq2seq.models import Decoder, DecoderBlock, Encoder, EncoderBlock, TransformerConfig

STACK = TransformerConfig(
    num_layers=2, d_model=16, num_heads=2, ff_dim=32, dropout=0.1, max_length=20, source_vocab_size=30,
    target_vocab_size=25,
)


@pytest.mark.parametrize(
    "layer",
    [
        Encoder(STACK.replace(normalize_first=True)),
        Decoder(STACK.replace(tie_embeddings=True)),
        EncoderBlock(STACK.replace(attention_dropout=0.1)),
        DecoderBlock(STACK.replace(dropout=0.0, normalize_first=True)),
    ],
    ids=["encoder", "decoder", "encoder_block", "decoder_block"],
)
def test_get_config_round_trip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_encoder_returns_padding_mask_and_ignores_padding(rng):
    encoder = Encoder(STACK)
    ids = np.array([[5, 6, 7, 0, 0]])
    output, mask = encoder(ids)
    np.testing.assert_array_equal(np.asarray(mask), [[True, True, True, False, False]])
    shorter, _ = encoder(ids[:, :3])
    np.testing.assert_allclose(np.asarray(output)[:, :3], np.asarray(shorter), atol=1e-5)


def test_decoder_logits_and_attention_probabilities(rng):
    decoder = Decoder(STACK)
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
    encoder = Encoder(STACK)
    encoder.build(None)
    weights = {w.path.split("/", 1)[1]: tuple(w.shape) for w in encoder.weights}
    assert weights["embedding/token_embedding/embeddings"] == (30, 16)
    assert weights["block_0/feed_forward/hidden/kernel"] == (16, 32)
    assert keras.saving.get_registered_object("keras_seq2seq>Encoder") is Encoder
