"""The models' `get_config` carries each constructor argument (a clone has the original's values)."""

import pytest

from keras_seq2seq.models import Decoder, DecoderBlock, Encoder, EncoderBlock, Seq2SeqTransformer

BLOCK = dict(
    num_heads=2, ff_dim=24, dropout=0.2, attention_dropout=0.1, ff_dropout=0.05, activation="gelu",
    normalize_first=True,
)
STACK = dict(
    num_layers=3, d_model=16, num_heads=2, ff_dim=24, dropout=0.2, max_length=21, attention_dropout=0.1,
    ff_dropout=0.05, activation="gelu", normalize_first=True,
)
CASES = [
    (EncoderBlock, BLOCK),
    (DecoderBlock, BLOCK),
    (Encoder, dict(vocab_size=31, **STACK)),
    (Decoder, dict(vocab_size=29, tie_embeddings=True, **STACK)),
    (
        Seq2SeqTransformer,
        dict(source_vocab_size=31, target_vocab_size=29, num_decoder_layers=2, tie_embeddings=True, **STACK),
    ),
]


@pytest.mark.parametrize("model_class, arguments", CASES, ids=[case[0].__name__ for case in CASES])
def test_get_config_carries_every_argument(model_class, arguments):
    config = model_class(**arguments).get_config()
    clone = model_class.from_config(config)
    for name, value in arguments.items():
        assert name in config, f"{model_class.__name__}.get_config() drops {name}"
        assert getattr(clone, name) == value, f"{name}: {getattr(clone, name)!r} != {value!r}"


def test_a_clone_from_the_config_builds_the_same_weights():
    model = Seq2SeqTransformer(**CASES[-1][1])
    model.build()
    clone = Seq2SeqTransformer.from_config(model.get_config())
    clone.build()
    assert [(w.path, tuple(w.shape)) for w in clone.weights] == [(w.path, tuple(w.shape)) for w in model.weights]
