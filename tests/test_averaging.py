"""Checkpoint averaging: exact means, clear errors, and an averaged run that exports and translates."""

import json
import subprocess
import sys

import numpy as np
import pytest

from keras_seq2seq.averaging import average_run
from keras_seq2seq.errors import InputError
from keras_seq2seq.models import PRESETS, Seq2SeqTransformer
from keras_seq2seq.runs import RunDirectory


@pytest.fixture
def run_with_checkpoints(tmp_path):
    """A run directory whose epoch-001..003 checkpoints hold known random weights."""
    run = RunDirectory(tmp_path / "run").create()
    model = Seq2SeqTransformer(PRESETS["tiny"].replace(source_vocab_size=30, target_vocab_size=20))
    model.build()
    run.write_model_config(model)
    rng = np.random.default_rng(0)
    weights = []
    for epoch in (1, 2, 3):
        values = [rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()]
        model.set_weights(values)
        model.save_weights(str(run.epoch_checkpoint(epoch)))
        weights.append(values)
    return run, weights


def _read(run, path):
    model = run.build_model()
    model.load_weights(str(path))
    return model.get_weights()


def test_the_mean_of_two_checkpoints_is_exact(run_with_checkpoints):
    run, weights = run_with_checkpoints
    output, averaged = average_run(run.path, last=2)
    assert [p.name for p in averaged] == ["epoch-002.weights.h5", "epoch-003.weights.h5"]
    assert output == run.checkpoint("averaged")
    for got, second, third in zip(_read(run, output), weights[1], weights[2]):
        expected = ((second.astype(np.float64) + third) / 2).astype(np.float32)
        np.testing.assert_array_equal(got, expected)


def test_the_mean_of_identical_checkpoints_is_that_checkpoint(run_with_checkpoints, tmp_path):
    run, weights = run_with_checkpoints
    output, _ = average_run(run.path, checkpoints=["epoch-002"] * 3, output=tmp_path / "same.weights.h5")
    for got, expected in zip(_read(run, output), weights[1]):
        np.testing.assert_array_equal(got, expected)


def test_bad_requests_are_named(run_with_checkpoints):
    run, _ = run_with_checkpoints
    with pytest.raises(InputError, match=r"keeps 3 epoch checkpoint\(s\).*fewer than --last 5"):
        average_run(run.path, last=5)
    with pytest.raises(InputError, match="has no epoch-009 checkpoint"):
        average_run(run.path, checkpoints=["epoch-009"])
    run.epoch_checkpoint(3).write_bytes(run.epoch_checkpoint(3).read_bytes()[:500])
    with pytest.raises(InputError, match="epoch-003.weights.h5 cannot be read"):
        average_run(run.path, last=2)
    with pytest.raises(InputError, match="must end in .weights.h5"):
        average_run(run.path, checkpoints=["epoch-001"], output=run.path / "mean.h5")


def test_epoch_checkpoints_keep_the_last_n(tiny_run):
    run_dir, history = tiny_run
    kept = [p.name for p in RunDirectory(run_dir).epoch_checkpoints()]
    epochs = len(history.history["loss"])
    assert kept == [f"epoch-{epoch:03d}.weights.h5" for epoch in range(epochs - 2, epochs + 1)]
    # The last epoch's checkpoint is the run's last checkpoint.
    run = RunDirectory(run_dir)
    for a, b in zip(_read(run, run.epoch_checkpoint(epochs)), _read(run, run.checkpoint("last"))):
        np.testing.assert_array_equal(a, b)


def test_an_averaged_run_exports_and_translates(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    output = tmp_path / "mean.weights.h5"
    command = [sys.executable, "-m", "keras_seq2seq.cli"]
    result = subprocess.run([*command, "average", str(run_dir), "--last", "3", "--output", str(output)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"--checkpoint {output}" in result.stdout
    export = tmp_path / "export"
    result = subprocess.run([*command, "export", str(run_dir), "--checkpoint", str(output), "--output", str(export)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The export holds the averaged weights, not the best checkpoint's, and translates.
    import tensorflow as tf

    from keras_seq2seq import Translator
    from keras_seq2seq.runs import load_run

    model, source_tokenizer, target_tokenizer = load_run(export)
    averaged = _read(RunDirectory(run_dir), output)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), averaged))
    translator = Translator(model, source_tokenizer, target_tokenizer, jit_compile=False)
    assert translator.translate(tf.constant(["Je suis étudiant."]))["translation"].numpy()[0]
    assert json.loads((export / "assets.extra" / "model_config.json").read_text())["num_layers"] == 2
