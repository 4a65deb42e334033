"""`TransformerConfig` and the models' `get_config`: every field survives a round trip, bad values are named."""

import keras
import pytest

from keras_seq2seq.models import (
    PRESETS,
    Decoder,
    DecoderBlock,
    Encoder,
    EncoderBlock,
    Seq2SeqTransformer,
    TransformerConfig,
    preset_config,
)

CONFIG = TransformerConfig(
    num_layers=3, d_model=16, num_heads=2, ff_dim=24, dropout=0.2, max_length=21, source_vocab_size=31,
    target_vocab_size=29, num_decoder_layers=2, attention_dropout=0.1, ff_dropout=0.05, activation="gelu",
    normalize_first=True, tie_embeddings=True,
)
CLASSES = [EncoderBlock, DecoderBlock, Encoder, Decoder, Seq2SeqTransformer]


@pytest.mark.parametrize("model_class", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_get_config_carries_every_field(model_class):
    config = model_class(CONFIG).get_config()
    clone = model_class.from_config(config)
    assert clone.config == CONFIG
    for name, value in CONFIG.to_dict().items():
        assert getattr(clone.config, name) == value, f"{name}: {getattr(clone.config, name)!r} != {value!r}"


def test_the_model_takes_the_fields_as_keywords_too():
    """The flat form is what model_config.json and .keras files of 0.1.0 hold."""
    flat = Seq2SeqTransformer(**CONFIG.to_dict())
    assert flat.config == CONFIG
    assert {name: flat.get_config()[name] for name in TransformerConfig.field_names()} == CONFIG.to_dict()
    with pytest.raises(TypeError, match="not both"):
        Seq2SeqTransformer(CONFIG, num_layers=2)


def test_a_clone_from_the_config_builds_the_same_weights():
    model = Seq2SeqTransformer(CONFIG)
    model.build()
    clone = Seq2SeqTransformer.from_config(model.get_config())
    clone.build()
    assert [(w.path, tuple(w.shape)) for w in clone.weights] == [(w.path, tuple(w.shape)) for w in model.weights]
    assert len(clone.decoder.blocks) == 2 and len(clone.encoder.blocks) == 3


def test_a_keras_file_round_trips(tmp_path):
    model = Seq2SeqTransformer(CONFIG)
    model.build()
    path = tmp_path / "model.keras"
    model.save(path)
    assert keras.saving.load_model(path).config == CONFIG


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(d_model=30, num_heads=4), "d_model must be divisible by num_heads"),
        (dict(num_layers=0), "num_layers must be a positive integer, got num_layers=0"),
        (dict(num_layers=2.0), "num_layers must be a positive integer"),
        (dict(ff_dim=True), "ff_dim must be a positive integer, got ff_dim=True"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\), got dropout=1.0"),
        (dict(attention_dropout=-0.1), "attention_dropout must be a number"),
        (dict(activation="tanh"), "activation must be one of"),
        (dict(tie_embeddings=1), "tie_embeddings must be true or false"),
        (dict(num_decoder_layers=0), "num_decoder_layers must be a positive integer"),
        (dict(shared=1), "unknown TransformerConfig field 'shared'"),
    ],
)
def test_a_bad_field_is_named(change, message):
    with pytest.raises(ValueError, match=message):
        CONFIG.replace(**change)


def test_configs_are_frozen_and_presets_are_configs():
    with pytest.raises(AttributeError):
        CONFIG.d_model = 8
    assert all(isinstance(preset, TransformerConfig) for preset in PRESETS.values())
    assert preset_config("small", dropout=0.3) == PRESETS["small"].replace(dropout=0.3)
    assert PRESETS["small"].dropout == 0.1  # the preset itself is unchanged
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset_config("huge")


def test_a_model_needs_both_vocabularies():
    with pytest.raises(ValueError, match="target_vocab_size must be set"):
        Seq2SeqTransformer(PRESETS["tiny"].replace(source_vocab_size=10))
