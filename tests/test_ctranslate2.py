"""The CTranslate2 conversion runs our weights to the same tokens as our own decoding."""

import pytest
import tensorflow as tf

from keras_seq2seq.decoding import greedy_decode, output_length_limits
from keras_seq2seq.export import load_run

ctranslate2 = pytest.importorskip("ctranslate2")

SENTENCES = ["Je suis étudiant.", "Va !", "Il est là, je crois ?", "Salut."]


@pytest.fixture(scope="module")
def converted(tiny_run, tmp_path_factory):
    from keras_seq2seq.ctranslate2 import convert

    model, source, target = load_run(tiny_run[0], "last")
    path = convert(model, source, target, tmp_path_factory.mktemp("ct2") / "tiny")
    return model, source, target, ctranslate2.Translator(str(path), device="cpu", intra_threads=1)


def _pieces(tokenizer, sentences):
    vocabulary = tokenizer.get_vocabulary()
    return [[vocabulary[i] for i in ids] for ids in tokenizer(sentences)]


def _ids(tokenizer, sentences):
    return tf.ragged.constant(tokenizer(sentences), dtype=tf.int32).to_tensor()


def test_greedy_translations_match_token_for_token(converted):
    model, source, target, translator = converted
    source_ids = _ids(source, SENTENCES)
    ours, _ = greedy_decode(model, source_ids, max_output_length=30)
    # Ours also stops each sentence at 1.5 x its length + 10 tokens; CTranslate2 at 30 only.
    limits = output_length_limits(source_ids, 31).numpy()
    theirs = translator.translate_batch(_pieces(source, SENTENCES), beam_size=1, max_decoding_length=30)
    vocabulary = target.get_vocabulary()
    for row, limit, result in zip(ours.numpy(), limits, theirs, strict=True):
        mine = [vocabulary[i] for i in row if i > 3]
        if len(mine) < limit - 1:  # ended by [END]: the whole output must agree
            assert mine == result.hypotheses[0]
        else:  # cut at our limit: theirs goes on from the same tokens
            assert mine == result.hypotheses[0][: len(mine)]
    assert theirs[0].hypotheses[0] == _pieces(target, ["I am a student."])[0]


def test_forced_length_outputs_match(converted):
    """40 tokens with [END] suppressed (as the benchmarks run both): the same tokens."""
    model, source, target, translator = converted
    ours, _ = greedy_decode(model, _ids(source, SENTENCES[:2]), max_output_length=40, suppress_end=True)
    theirs = translator.translate_batch(
        _pieces(source, SENTENCES[:2]), beam_size=1, min_decoding_length=40, max_decoding_length=40
    )
    vocabulary = target.get_vocabulary()
    for row, result in zip(ours.numpy(), theirs, strict=True):
        assert len(result.hypotheses[0]) == 40
        assert [vocabulary[i] for i in row] == result.hypotheses[0]


def test_unsupported_activation_is_named(converted):
    from keras_seq2seq.ctranslate2 import build_spec
    from keras_seq2seq.models import Seq2SeqTransformer

    model = Seq2SeqTransformer.from_preset("tiny", source_vocab_size=20, target_vocab_size=20, activation="gelu")
    with pytest.raises(ValueError, match="activation='gelu'"):
        build_spec(model, [str(i) for i in range(20)], [str(i) for i in range(20)])
