"""The shifted-target `tf.data` pipeline: `((source_ids, target_in_ids), labels)` in length buckets.

For a pair (x, y) of token id lists: `source_ids = x`, `target_in_ids = [START] + y`,
`labels = y + [END]`. Batches group sentences of similar length under a token budget
and are padded with 0, which the loss and metrics ignore.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_seq2seq.data.tokenizers import END_ID, START_ID


@dataclasses.dataclass
class LengthReport:
    """How many pairs exceeded `max_length` tokens, and what was done with them."""

    total: int
    too_long: int
    handling: str
    first_indices: list

    def summary(self):
        if not self.too_long:
            return f"{self.total} pairs, none longer than the limit"
        verb = "dropped" if self.handling == "filter" else "truncated"
        return (
            f"{self.too_long} of {self.total} pairs longer than the limit were {verb} "
            f"(first at pair indices {self.first_indices})"
        )


def tokenize_texts(tokenizer, texts, batch_size=8192):
    """Token ids of `texts` as a list of int32 numpy arrays, tokenized in-graph in chunks."""
    ids = []
    for start in range(0, len(texts), batch_size):
        rows = tokenizer(tf.constant(texts[start : start + batch_size]))
        # keras-hub returns Python lists when called eagerly, a RaggedTensor inside tf.data.
        rows = rows.to_list() if hasattr(rows, "to_list") else rows
        ids.extend(np.asarray(row, dtype=np.int32) for row in rows)
    return ids


def encode_pairs(pairs, source_tokenizer, target_tokenizer, max_length, too_long="filter"):
    """Token ids of the pairs, with pairs over `max_length` filtered or truncated (and counted).

    The limit applies to the source and to the target plus its `[START]`/`[END]` token.
    """
    if too_long not in ("filter", "truncate"):
        raise ValueError(f"too_long must be 'filter' or 'truncate', got too_long={too_long!r}")
    source_ids = tokenize_texts(source_tokenizer, [source for source, _ in pairs])
    target_ids = tokenize_texts(target_tokenizer, [target for _, target in pairs])
    kept_source, kept_target, offending = [], [], []
    for index, (source, target) in enumerate(zip(source_ids, target_ids)):
        if len(source) > max_length or len(target) + 1 > max_length:
            offending.append(index)
            if too_long == "filter":
                continue
            source, target = source[:max_length], target[: max_length - 1]
        kept_source.append(source)
        kept_target.append(target)
    report = LengthReport(len(pairs), len(offending), too_long, offending[:10])
    return kept_source, kept_target, report


def bucket_boundaries(max_length, width=8):
    """Upper bounds (exclusive) of the length buckets: width+1, 2*width+1, ... up to max_length+1."""
    return list(range(width + 1, max_length + 1, width)) + [max_length + 1]


def make_dataset(
    source_ids,
    target_ids,
    token_budget=4096,
    max_length=128,
    bucket_width=8,
    shuffle=True,
    seed=0,
    pad_to_bucket_boundary=False,
    repeat=False,
):
    """A batched dataset of `((source_ids, target_in_ids), labels)` from lists of id arrays.

    Each batch holds sentences of one length bucket, and about `token_budget` tokens
    (batch size times the bucket's longest length). Shuffling is seeded and changes
    every epoch. `pad_to_bucket_boundary` fixes the padded length of each bucket, so
    an XLA-compiled step sees few distinct shapes.
    """
    if token_budget < max_length:
        raise ValueError(
            f"token_budget must be at least max_length={max_length}, got token_budget={token_budget!r}"
        )
    source, target = _ragged(source_ids), _ragged(target_ids)
    dataset = tf.data.Dataset.from_tensor_slices((source, target))
    if shuffle:
        dataset = dataset.shuffle(len(source_ids), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()

    start, end = tf.constant([START_ID]), tf.constant([END_ID])

    def shift(source_row, target_row):
        return source_row, tf.concat([start, target_row], 0), tf.concat([target_row, end], 0)

    dataset = dataset.map(shift, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    boundaries = bucket_boundaries(max_length, bucket_width)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda source, target_in, labels: tf.maximum(tf.shape(source)[0], tf.shape(target_in)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[max(1, token_budget // (b - 1)) for b in boundaries] + [1],
        pad_to_bucket_boundary=pad_to_bucket_boundary,
        drop_remainder=False,
    )
    dataset = dataset.map(
        lambda source, target_in, labels: ((source, target_in), labels), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _ragged(rows):
    return tf.RaggedTensor.from_row_lengths(
        np.concatenate(rows).astype(np.int32), [len(row) for row in rows]
    )


def padding_fraction(dataset):
    """Share of padding among all label positions of one pass over `dataset`."""
    real = total = 0
    for _, labels in dataset:
        real += int(tf.math.count_nonzero(labels))
        total += int(tf.size(labels))
    return 1.0 - real / max(total, 1)
