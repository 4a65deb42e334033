"""A run written by version 0.1.0 (before the layer redesign) still loads and computes the same.

`tests/fixtures/tiny-run-0.1.0/` is a `tiny` pre-norm model with tied embeddings trained 12 epochs on
the fixture sample by that version, with its logits on a fixed batch and its translations. Weights are
restored by attribute path: renaming a sublayer would break every earlier run, and this test.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

RUN = Path(__file__).parent / "fixtures" / "tiny-run-0.1.0"
EXPECTED = json.loads((RUN / "expected.json").read_text())


def _logits(model):
    return np.asarray(model((tf.constant(EXPECTED["source_ids"]), tf.constant(EXPECTED["target_in_ids"]))))


@pytest.mark.tensorflow_only
def test_the_checkpoint_loads_with_the_same_logits():
    from keras_seq2seq import load_run

    model, _, _ = load_run(RUN)
    np.testing.assert_allclose(_logits(model), np.load(RUN / "logits.npy"), atol=1e-5)


def test_the_keras_file_loads_with_the_same_logits():
    import keras_seq2seq  # noqa: F401  (registers the classes)

    model = keras.saving.load_model(RUN / "model.keras")
    np.testing.assert_allclose(_logits(model), np.load(RUN / "logits.npy"), atol=1e-5)


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_the_translator_gives_the_same_translations():
    from keras_seq2seq import Translator, load_run

    translator = Translator(*load_run(RUN))
    text = tf.constant(EXPECTED["sources"])
    assert [t.decode() for t in translator.translate(text)["translation"].numpy()] == EXPECTED["greedy"]
    assert [t.decode() for t in translator.translate_beam(text)["translation"].numpy()] == EXPECTED["beam"]
