from pathlib import Path

import numpy as np
import pytest

from keras_seq2seq.data import pipeline
from keras_seq2seq.data.corpora import read_tatoeba
from keras_seq2seq.data.tokenizers import END_ID, START_ID, make_tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def tokenizers():
    return make_tokenizer(FIXTURES / "fr.model"), make_tokenizer(FIXTURES / "en.model")


@pytest.fixture(scope="module")
def encoded(tokenizers):
    pairs, _ = read_tatoeba(FIXTURES / "tatoeba-sample.txt")
    return pipeline.encode_pairs(pairs, *tokenizers, max_length=32)


def test_shifted_target_exact_ids(tokenizers):
    source_ids, target_ids, _ = pipeline.encode_pairs(
        [("Je suis étudiant.", "I am a student.")], *tokenizers, max_length=32
    )
    dataset = pipeline.make_dataset(source_ids, target_ids, token_budget=64, max_length=32, shuffle=False)
    (source, target_in), labels = next(iter(dataset))
    assert source.numpy().tolist() == [[4, 396, 5, 4, 7, 57, 108, 16, 60, 18, 138, 6]]
    assert target_in.numpy().tolist() == [[START_ID, 8, 12, 23, 12, 219, 190, 4]]
    assert labels.numpy().tolist() == [[8, 12, 23, 12, 219, 190, 4, END_ID]]


def test_every_pair_appears_once_shifted_and_padded(encoded):
    source_ids, target_ids, _ = encoded
    dataset = pipeline.make_dataset(source_ids, target_ids, token_budget=256, max_length=32, seed=3)
    seen = []
    for (source, target_in), labels in dataset:
        source, target_in, labels = source.numpy(), target_in.numpy(), labels.numpy()
        assert (target_in[:, 0] == START_ID).all()
        # labels are target_in shifted left by one, END where target_in's content stops.
        real = labels != 0
        following = target_in[:, 1:] != 0
        np.testing.assert_array_equal(target_in[:, 1:][following], labels[:, :-1][following])
        lengths = real.sum(1)
        assert (labels[np.arange(len(labels)), lengths - 1] == END_ID).all()
        assert (target_in != 0).sum() == real.sum()  # same number of real positions
        for row in source:
            seen.append(tuple(row[row != 0]))
    assert sorted(seen) == sorted(tuple(row) for row in source_ids)


def test_batches_respect_buckets_and_budget(encoded):
    source_ids, target_ids, _ = encoded
    boundaries = pipeline.bucket_boundaries(32, width=8)
    assert boundaries == [9, 17, 25, 33]
    dataset = pipeline.make_dataset(source_ids, target_ids, token_budget=256, max_length=32, bucket_width=8)
    for (source, target_in), _ in dataset:
        longest = max(source.shape[1], target_in.shape[1])
        bucket = next(b for b in boundaries if longest < b)
        assert source.shape[0] <= 256 // (bucket - 1)
        # Every sentence of the batch falls in the same bucket.
        lengths = np.maximum((source.numpy() != 0).sum(1), (target_in.numpy() != 0).sum(1))
        lower = ([0] + boundaries)[boundaries.index(bucket)]
        assert (lengths >= lower).all()


def test_pad_to_bucket_boundary_fixes_shapes(encoded):
    source_ids, target_ids, _ = encoded
    dataset = pipeline.make_dataset(
        source_ids, target_ids, token_budget=256, max_length=32, pad_to_bucket_boundary=True
    )
    assert {source.shape[1] for (source, _), _ in dataset} <= {8, 16, 24, 32}


def test_padding_fraction_is_small_with_buckets(encoded):
    source_ids, target_ids, _ = encoded
    bucketed = pipeline.padding_fraction(
        pipeline.make_dataset(source_ids, target_ids, token_budget=512, max_length=32, bucket_width=4)
    )
    one_bucket = pipeline.padding_fraction(
        pipeline.make_dataset(source_ids, target_ids, token_budget=512, max_length=32, bucket_width=32)
    )
    assert bucketed < 0.25
    assert bucketed < one_bucket


def test_too_long_pairs_are_counted(tokenizers):
    pairs = [("Je suis étudiant.", "I am a student."), ("Je " * 40, "I " * 40)]
    source_ids, _, report = pipeline.encode_pairs(pairs, *tokenizers, max_length=16)
    assert len(source_ids) == 1 and report.too_long == 1 and report.first_indices == [1]
    source_ids, target_ids, report = pipeline.encode_pairs(pairs, *tokenizers, max_length=16, too_long="truncate")
    assert len(source_ids) == 2 and len(source_ids[1]) == 16 and len(target_ids[1]) == 15
    assert "truncated" in report.summary()
    with pytest.raises(ValueError, match="too_long='drop'"):
        pipeline.encode_pairs(pairs, *tokenizers, max_length=16, too_long="drop")
