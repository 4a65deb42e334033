from pathlib import Path

import numpy as np
import pytest

from keras_seq2seq.data.corpora import read_tatoeba
from keras_seq2seq.data.tokenizers import RESERVED_TOKENS, make_tokenizer, train_sentencepiece

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def french():
    return make_tokenizer(FIXTURES / "fr.model")


@pytest.fixture(scope="module")
def english():
    return make_tokenizer(FIXTURES / "en.model")


def test_reserved_ids(french, english):
    for tokenizer in (french, english):
        assert [tokenizer.id_to_token(i) for i in range(4)] == list(RESERVED_TOKENS)


@pytest.mark.parametrize(
    "text",
    ["Je suis étudiant.", "Où est-il ? « Ça va ! »", "L'été, à Paris, c'est bien.", "Hélène, déçue, s'en va."],
)
def test_french_round_trip(french, text):
    assert french.detokenize(french([text]))[0] == text


@pytest.mark.parametrize("text", ["I am a student.", "Don't! It's \"really\" far?", "Tom's car, Mary's dog."])
def test_english_round_trip(english, text):
    assert english.detokenize(english([text]))[0] == text


def test_no_break_spaces_tokenize_like_spaces(french):
    assert french(["Quoi\u00a0?"]) == french(["Quoi ?"])


def test_unknown_characters_become_unk_without_crashing(french):
    ids = np.asarray(french(["Bonjour 😀 你好 \U0001F600"])[0])
    assert (ids == 1).sum() >= 2  # [UNK]
    assert french.detokenize(french(["Bonjour 😀"]))[0].startswith("Bonjour")


def test_trained_tokenizer_reloads_identically(tmp_path):
    pairs, _ = read_tatoeba(FIXTURES / "tatoeba-sample.txt")
    proto = train_sentencepiece([source for source, _ in pairs], 300)
    (tmp_path / "fr.model").write_bytes(proto)
    first, second = make_tokenizer(proto), make_tokenizer(tmp_path / "fr.model")
    texts = [source for source, _ in pairs[:50]]
    assert first(texts) == second(texts)


def test_lowercase_option():
    pairs, _ = read_tatoeba(FIXTURES / "tatoeba-sample.txt")
    tokenizer = make_tokenizer(train_sentencepiece([s for s, _ in pairs], 300, lowercase=True))
    assert tokenizer.detokenize(tokenizer(["JE SUIS"]))[0] == "je suis"


def test_bad_vocabulary_size_is_named():
    with pytest.raises(ValueError, match="vocabulary_size=3"):
        train_sentencepiece(["a b c"], 3)


def test_the_serving_ops_tokenize_as_keras_hub_in_a_graph_and_save(french, tmp_path):
    """`SentencePieceOps` (an export's tokenizers without keras-hub): keras-hub's ids and text in a
    graph, the reserved ids, and a SavedModel holding it loads and tokenizes the same."""
    import tensorflow as tf

    from keras_seq2seq.serving.saved_model import SentencePieceOps

    ops = SentencePieceOps((FIXTURES / "fr.model").read_bytes())
    texts = tf.constant(["Je suis étudiant.", "Quoi\u00a0?", "", "Bonjour 😀 你好", "L'été, à Paris, c'est bien."])
    ids = ops(texts)
    assert ids.to_list() == tf.function(lambda text: french(text))(texts).to_list()
    padded = ids.to_tensor()
    assert ops.detokenize(padded).numpy().tolist() == tf.function(french.detokenize)(padded).numpy().tolist()
    assert [ops.id_to_token(i) for i in range(4)] == list(RESERVED_TOKENS)
    holder = tf.Module()
    holder.tokenizer = ops
    holder.tokenize = tf.function(
        lambda text: ops(text).to_tensor(), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    tf.saved_model.save(holder, str(tmp_path / "ops"))
    assert tf.saved_model.load(str(tmp_path / "ops")).tokenize(texts).numpy().tolist() == padded.numpy().tolist()


def test_the_sentencepiece_ops_come_from_their_library_or_from_tensorflow_text(monkeypatch, tmp_path):
    """`sentencepiece_ops` loads tensorflow-text's SentencePiece op library alone (a fresh process
    that runs the CLI imports no `tensorflow_text`: test_export.py); where the installed
    tensorflow-text has no such file, it imports the package's own op module (the same ops);
    without tensorflow-text, an error naming it."""
    import importlib.machinery
    import importlib.util

    from keras_seq2seq.data import tokenizers

    real = importlib.util.find_spec

    def installed_in(directory):  # tensorflow-text's spec, as if installed in `directory` (None: not installed)
        def find_spec(name, *args):
            if name != "tensorflow_text":
                return real(name, *args)
            if directory is None:
                return None
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(directory)]
            return spec

        return find_spec

    try:
        tokenizers.sentencepiece_ops.cache_clear()
        assert {"sentencepiece_op", "sentencepiece_tokenize_op", "sentencepiece_detokenize_op"} <= set(
            dir(tokenizers.sentencepiece_ops()))
        monkeypatch.setattr(importlib.util, "find_spec", installed_in(tmp_path))
        tokenizers.sentencepiece_ops.cache_clear()
        from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

        assert tokenizers.sentencepiece_ops() is gen_sentencepiece_tokenizer
        monkeypatch.setattr(importlib.util, "find_spec", installed_in(None))
        tokenizers.sentencepiece_ops.cache_clear()
        with pytest.raises(ModuleNotFoundError, match="tensorflow-text is not installed"):
            tokenizers.sentencepiece_ops()
    finally:
        monkeypatch.undo()
        tokenizers.sentencepiece_ops.cache_clear()
