import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq.models import PRESETS, Seq2SeqTransformer

SOURCE_VOCAB, TARGET_VOCAB = 50, 40


def tiny_model(**overrides):
    return Seq2SeqTransformer.from_preset(
        "tiny", source_vocab_size=SOURCE_VOCAB, target_vocab_size=TARGET_VOCAB, **overrides
    )


@pytest.fixture
def batch(rng):
    source = rng.integers(4, SOURCE_VOCAB, size=(3, 9))
    source[0, 6:] = 0
    source[2, 3:] = 0
    target_in = rng.integers(4, TARGET_VOCAB, size=(3, 7))
    target_in[:, 0] = 2
    target_in[1, 5:] = 0
    return source, target_in


def test_logits_shape_and_dtype(batch):
    logits = tiny_model()(batch)
    assert tuple(logits.shape) == (3, 7, TARGET_VOCAB)
    assert logits.dtype == "float32"


def test_dict_inputs_give_same_logits(batch):
    model = tiny_model()
    source, target_in = batch
    np.testing.assert_array_equal(
        np.asarray(model(batch)), np.asarray(model({"source_ids": source, "target_in_ids": target_in}))
    )


@pytest.mark.parametrize("normalize_first", [False, True])
def test_causal_later_targets_do_not_change_earlier_logits(batch, rng, normalize_first):
    model = tiny_model(normalize_first=normalize_first)
    source, target_in = batch
    for position in range(1, 7):
        changed = target_in.copy()
        changed[:, position:] = rng.integers(4, TARGET_VOCAB, size=changed[:, position:].shape)
        before, after = np.asarray(model(batch)), np.asarray(model((source, changed)))
        np.testing.assert_allclose(before[:, :position], after[:, :position], atol=1e-5)
    assert np.abs(before - after).max() > 1e-3


def test_source_padding_does_not_change_outputs(batch, rng):
    model = tiny_model()
    source, target_in = batch
    # Padding positions carry id 0 whatever "content" sits there: extend the padding instead.
    longer = np.concatenate([source, np.zeros((3, 5), source.dtype)], axis=1)
    np.testing.assert_allclose(
        np.asarray(model(batch)), np.asarray(model((longer, target_in))), atol=1e-5
    )


def test_source_padding_masks_encoder_states(batch, rng):
    """Changing what the encoder produces at padded positions leaves every logit unchanged."""
    model = tiny_model()
    source, target_in = batch
    encoder_output, source_mask = model.encode(source)
    noisy = np.asarray(encoder_output) + 10.0 * (~np.asarray(source_mask))[..., None] * rng.normal(
        size=encoder_output.shape
    ).astype("float32")
    reference = model.decoder(target_in, encoder_output, source_mask)
    np.testing.assert_allclose(
        np.asarray(reference), np.asarray(model.decoder(target_in, noisy, source_mask)), atol=1e-5
    )


def test_target_padding_does_not_change_real_positions(batch):
    model = tiny_model()
    source, target_in = batch
    longer = np.concatenate([target_in, np.zeros((3, 4), target_in.dtype)], axis=1)
    real = target_in != 0
    np.testing.assert_allclose(
        np.asarray(model(batch))[real], np.asarray(model((source, longer)))[:, :7][real], atol=1e-5
    )


@pytest.mark.parametrize("normalize_first", [False, True])
def test_cached_decoding_equals_teacher_forced_pass(batch, normalize_first):
    model = tiny_model(normalize_first=normalize_first, tie_embeddings=normalize_first)
    source, target_in = batch
    target_in = np.where(target_in == 0, 5, target_in)  # decoding never feeds padding
    full = np.asarray(model((source, target_in)))

    encoder_output, source_mask = model.encode(source)
    cross_key_values = model.decoder.compute_cross_key_values(encoder_output)
    computed_once = [np.asarray(kv).copy() for kv in cross_key_values]
    cache = model.decoder.init_cache(3, 12)
    step_logits = []
    for position in range(target_in.shape[1]):
        logits, cache = model.decoder.decode_step(
            target_in[:, position : position + 1], position, cache, cross_key_values, source_mask
        )
        step_logits.append(np.asarray(logits)[:, 0])
    np.testing.assert_allclose(np.stack(step_logits, axis=1), full, atol=1e-4)
    # The cross-attention keys and values were computed once and never modified.
    for before, after in zip(computed_once, cross_key_values):
        np.testing.assert_array_equal(before, np.asarray(after))


def test_keras_file_round_trip(batch, tmp_path):
    model = tiny_model(tie_embeddings=True, normalize_first=True, num_decoder_layers=1)
    expected = np.asarray(model(batch))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(loaded(batch)), expected)


@pytest.mark.tensorflow_only
def test_every_trainable_weight_gets_a_gradient(batch):
    model = tiny_model(dropout=0.1, attention_dropout=0.1)
    source, target_in = batch
    labels = np.roll(target_in, -1, axis=1)
    with tf.GradientTape() as tape:
        logits = model((source, target_in), training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, model.trainable_weights)
    missing = [
        weight.path
        for weight, gradient in zip(model.trainable_weights, gradients)
        if gradient is None or not np.any(np.asarray(tf.convert_to_tensor(gradient)))
    ]
    assert not missing
    assert len(model.trainable_weights) > 20


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("tie_embeddings", [False, True])
def test_mixed_bfloat16_forward_and_backward_are_finite(batch, tie_embeddings):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = tiny_model(tie_embeddings=tie_embeddings)
    source, target_in = batch
    with tf.GradientTape() as tape:
        logits = model((source, target_in), training=True)
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(target_in, logits, from_logits=True)
        )
    gradients = tape.gradient(loss, model.trainable_weights)
    assert logits.dtype == "float32"
    assert model.encoder.blocks[0].self_attention.compute_dtype == "bfloat16"
    assert all(weight.dtype == "float32" for weight in model.trainable_weights)
    assert np.isfinite(np.asarray(logits)).all()
    assert all(np.isfinite(np.asarray(tf.convert_to_tensor(g))).all() for g in gradients)


def test_presets():
    assert PRESETS["base"].num_layers == 6
    assert PRESETS["base"].d_model == 512
    assert PRESETS["base"].num_heads == 8
    assert PRESETS["base"].ff_dim == 2048
    model = Seq2SeqTransformer.from_preset("small", source_vocab_size=8000, target_vocab_size=8000)
    model.build()
    assert len(model.encoder.blocks) == 3 and len(model.decoder.blocks) == 3
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        Seq2SeqTransformer.from_preset("huge", source_vocab_size=10, target_vocab_size=10)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"d_model": 30, "num_heads": 4}, "d_model=30 and num_heads=4"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"ff_dim": -8}, "ff_dim=-8"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"dropout": -0.1}, "dropout=-0.1"),
        ({"attention_dropout": 2}, "attention_dropout=2"),
        ({"ff_dropout": -0.5}, "ff_dropout=-0.5"),
        ({"max_length": 0}, "max_length=0"),
        ({"source_vocab_size": 0}, "source_vocab_size=0"),
        ({"num_heads": 2.5}, "num_heads=2.5"),
        ({"activation": "tanh"}, "activation='tanh'"),
    ],
)
def test_invalid_config_names_the_parameter(override, message):
    config = dict(
        source_vocab_size=10, target_vocab_size=10, num_layers=1, d_model=8, num_heads=2, ff_dim=16
    )
    config.update(override)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Seq2SeqTransformer(**config)


@pytest.mark.tensorflow_only
def test_mixed_float16_trains_with_loss_scaling(batch):
    from keras_seq2seq.objectives import MaskedCrossEntropy

    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=MaskedCrossEntropy(0.1))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    source, target_in = batch
    loss = model.train_on_batch((source, target_in), np.roll(target_in, -1, axis=1))
    assert np.isfinite(loss)
    assert all(np.isfinite(np.asarray(w)).all() for w in model.trainable_weights)
