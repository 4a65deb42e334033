"""The CTranslate2 conversion runs our weights to the same tokens as our own decoding."""

import ctranslate2  # a dev dependency: the test fails, not skips, when it is missing
import numpy as np
import pytest
import tensorflow as tf

from keras_seq2seq.decoding import greedy_decode, output_length_limits
from keras_seq2seq.runs import load_run

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


@pytest.mark.parametrize(
    "normalize_first, tie_embeddings", [(True, False), (False, True), (True, True)], ids=["pre_norm", "tied", "both"]
)
def test_block_arrangements_decode_alike(tmp_path, normalize_first, tie_embeddings):
    """Pre-norm blocks and tied embeddings (untrained tiny models, forced to 12 tokens): the same tokens.
    CTranslate2 is an independent implementation of the block arrangement."""
    from keras_seq2seq.ctranslate2 import build_spec
    from keras_seq2seq.models import Seq2SeqTransformer

    model = Seq2SeqTransformer.from_preset(
        "tiny", source_vocab_size=40, target_vocab_size=36, normalize_first=normalize_first,
        tie_embeddings=tie_embeddings,
    )
    model.build()
    if normalize_first:  # untrained final norms are the identity: give them weights that matter
        rng = np.random.default_rng(3)
        for norm in (model.encoder.final_norm, model.decoder.final_norm):
            norm.set_weights([rng.uniform(0.5, 1.5, size=32).astype("float32"), rng.normal(size=32).astype("float32")])
    source_vocabulary = ["[PAD]", "[UNK]", "[START]", "[END]", *(f"s{i}" for i in range(4, 40))]
    target_vocabulary = ["[PAD]", "[UNK]", "[START]", "[END]", *(f"t{i}" for i in range(4, 36))]
    spec = build_spec(model, source_vocabulary, target_vocabulary)
    spec.validate()
    spec.optimize()
    spec.save(str(tmp_path))
    translator = ctranslate2.Translator(str(tmp_path), device="cpu", intra_threads=1)
    sources = [[5, 9, 17, 4, 30], [12, 6], [33, 21, 8]]
    source_ids = tf.ragged.constant(sources, dtype=tf.int32).to_tensor()
    ours, _ = greedy_decode(model, source_ids, max_output_length=12, suppress_end=True)
    theirs = translator.translate_batch(
        [[source_vocabulary[i] for i in row] for row in sources],
        beam_size=1, min_decoding_length=12, max_decoding_length=12,
    )
    for row, result in zip(ours.numpy(), theirs, strict=True):
        assert [target_vocabulary[i] for i in row] == result.hypotheses[0]
