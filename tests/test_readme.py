"""Every Python block of the README runs as written; the blocks' results are checked.

The blocks that use TensorFlow or the shipped SavedModel run on the TensorFlow backend only;
the layer-reuse example runs on whichever Keras backend the suite runs on.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _block(marker):
    """The one README block containing `marker`."""
    (block,) = [block for block in BLOCKS if marker in block]
    return block


def test_every_python_block_is_covered_below():
    markers = ["preset_config(", "model.fit(", "export_translator(", "tf.saved_model.load(", "MaskedMHA(num_heads=4)"]
    assert sorted(BLOCKS) == sorted(_block(marker) for marker in markers)


def test_the_layer_reuse_example_builds_a_causal_model():
    namespace = {}
    exec(_block("MaskedMHA(num_heads=4)"), namespace)
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


@pytest.mark.tensorflow_only
def test_the_model_and_decoding_example():
    namespace = {}
    exec(_block("preset_config("), namespace)
    assert tuple(namespace["logits"].shape) == (2, 3, 80)
    token_ids, beams = np.asarray(namespace["token_ids"]), np.asarray(namespace["beams"])
    assert token_ids.shape[0] == 2 and beams.shape[:2] == (2, 4)
    # The beams come best first.
    beam_scores = np.asarray(namespace["beam_scores"])
    assert (np.diff(beam_scores, axis=1) <= 1e-6).all()


@pytest.mark.tensorflow_only
def test_the_training_example_learns():
    namespace = {}
    exec(_block("preset_config("), namespace)
    exec(_block("model.fit("), namespace)
    losses = namespace["history"].history["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_the_export_example(tiny_run, tmp_path, monkeypatch):
    """Run on the tiny trained run in place of the shipped model (`load_run` takes either):
    exporting the shipped model would add a minute to the suite; test_golden covers its outputs."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved_models").mkdir()
    (tmp_path / "saved_models" / "fr-en-small").symlink_to(tiny_run[0])
    namespace = {}
    exec(_block("export_translator("), namespace)
    expected = namespace["translator"].translate(tf.constant(["Où est la gare ?"]))["translation"].numpy()
    exported = tf.saved_model.load(str(tmp_path / "my-fr-en"))
    got = exported.signatures["serving_default"](text=tf.constant(["Où est la gare ?"]))["translation"].numpy()
    assert got.tolist() == expected.tolist() and expected[0]


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_the_saved_model_example():
    """Run as a server runs it: in a fresh process, importing what the block imports only (not the
    package, not keras-hub, not the rest of tensorflow-text: the block registers the SentencePiece ops)."""
    code = _block("tf.saved_model.load(") + (
        "import sys\n"
        "print(beam['n_best'].shape, sorted(m for m in sys.modules if m.startswith(('tensorflow_text', 'keras_"
        "seq2seq', 'keras_hub'))))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**environment, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines() == ['[b"I\'m a student."]', "(1, 4) []"]


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 225  # "about 200 lines" (issue 19)
    assert os.path.exists(ROOT / "docs" / "design.md") and os.path.exists(ROOT / "benchmarks" / "README.md")


def test_the_model_cards_and_the_readme_give_the_shipped_models_scores():
    """The float card's scores are a shipped row of the run table (training/runs.json), the README
    quotes them, the int8 card's are within 0.3 BLEU of them (issue 21), and the pictures exist."""
    import json

    card = (ROOT / "saved_models" / "fr-en-small" / "README.md").read_text()
    greedy = re.search(r"^\| greedy \| ([\d.]+) \| ([\d.]+) \|$", card, re.M).groups()
    beam = re.search(r"^\| beam 4, length penalty [\d.]+ \| ([\d.]+) \| ([\d.]+) \|$", card, re.M).groups()
    greedy_bleu, _, beam_bleu, beam_chrf = (float(value) for value in (*greedy, *beam))
    shipped = [run for run in json.loads((ROOT / "training" / "runs.json").read_text()) if "(shipped" in run["name"]]
    assert (greedy_bleu, beam_bleu, beam_chrf) == tuple(
        shipped[-1][key] for key in ("bleu_greedy", "bleu_beam4", "chrf_beam4")
    )
    assert f"sacreBLEU {greedy_bleu:.1f} greedy, {beam_bleu:.1f} with beam 4" in " ".join(README.split())
    int8 = (ROOT / "saved_models" / "fr-en-small-int8" / "README.md").read_text()
    for decoding, float_bleu in (("greedy", greedy_bleu), ("beam 4", beam_bleu)):
        int8_bleu, _, same_float, _ = re.search(rf"^\| {decoding} \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
                                                int8, re.M).groups()
        assert float(same_float) == float_bleu and abs(float(int8_bleu) - float_bleu) <= 0.3
    for picture in re.findall(r"!\[[^]]*\]\(([^)]+)\)", card):
        assert (ROOT / "saved_models" / "fr-en-small" / picture).is_file(), picture
