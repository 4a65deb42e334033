"""The README's layer-reuse example runs as written, on whichever Keras backend the suite runs on."""

import re
from pathlib import Path

import keras
import numpy as np

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _block_after(heading):
    section = README[README.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_layer_reuse_example_builds_a_causal_model():
    namespace = {}
    exec(_block_after("### Reusing the layers in your own Keras model"), namespace)
    model = namespace["model"]
    token_ids = np.array([[5, 9, 13, 2, 7, 0], [4, 4, 8, 0, 0, 0]], "int32")
    logits = np.asarray(model(token_ids))
    assert logits.shape == (2, 6, 1000)
    # Causal: changing the last real token leaves every earlier position's output unchanged.
    changed = token_ids.copy()
    changed[0, 4] = 11
    other = np.asarray(model(changed))
    np.testing.assert_allclose(other[0, :4], logits[0, :4], atol=1e-5)
    assert np.abs(other[0, 4] - logits[0, 4]).max() > 1e-4
    assert keras.backend.backend() in ("tensorflow", "jax")
