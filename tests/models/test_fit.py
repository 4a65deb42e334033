"""`model.fit` on tiny data, on whichever Keras backend the suite runs on: finite, falling loss."""

import keras
import numpy as np
import pytest

from keras_seq2seq.models import Seq2SeqTransformer


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_a_few_fit_steps_memorise_tiny_data(rng, precision):
    keras.mixed_precision.set_global_policy(precision)
    model = Seq2SeqTransformer.from_preset(
        "tiny", source_vocab_size=30, target_vocab_size=30, dropout=0.1, normalize_first=True, tie_embeddings=True
    )
    source = rng.integers(4, 30, size=(8, 7)).astype("int32")
    source[:4, 5:] = 0
    target = rng.integers(4, 30, size=(8, 7)).astype("int32")
    target[:, 0] = 2
    target[4:, 4:] = 0
    labels = np.concatenate([target[:, 1:], np.zeros((8, 1), "int32")], axis=1)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    )
    history = model.fit((source, target), labels, batch_size=8, epochs=40, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    assert history[-1] < 0.5 * history[0]
    assert model.encoder.blocks[0].self_attention.compute_dtype == ("bfloat16" if precision != "float32" else "float32")
