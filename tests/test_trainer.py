import json

import numpy as np


def test_tiny_model_memorises_64_pairs(tiny_run):
    run_dir, history = tiny_run
    assert history.history["accuracy"][-1] >= 0.95
    assert history.history["loss"][-1] < history.history["loss"][0] / 4


def test_run_directory_holds_what_resuming_and_export_need(tiny_run):
    run_dir, _ = tiny_run
    for name in (
        "config.json",
        "model_config.json",
        "tokenizers/source.model",
        "tokenizers/target.model",
        "checkpoints/best.weights.h5",
        "checkpoints/last.weights.h5",
        "logs/training.csv",
        "logs/curves.png",
    ):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "config.json").read_text())["model"]["preset"] == "tiny"
    rows = (run_dir / "logs" / "training.csv").read_text().splitlines()
    assert len(rows) == 61 and "learning_rate" in rows[0]


def test_dev_bleu_is_measured_and_selects_the_best_checkpoint(tiny_run):
    run_dir, history = tiny_run
    bleu = history.history["val_bleu"]
    # Every 20th epoch: on the 64 memorised pairs the last measure is high.
    assert len(bleu) == 3 and bleu[-1] > 80
    assert (run_dir / "checkpoints" / "best.weights.h5").stat().st_size > 0


def test_masked_loss_ignores_padding_and_counts_real_tokens():
    from keras_seq2seq.objectives import MaskedAccuracy, MaskedCrossEntropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 7)).astype("float32")
    labels = np.array([[3, 5, 0, 0], [1, 2, 6, 0]])
    loss = float(MaskedCrossEntropy(label_smoothing=0.0)(labels, logits))
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = labels != 0
    expected = -np.take_along_axis(log_probabilities, labels[..., None], -1)[..., 0][real].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Padding logits may be anything.
    changed = logits.copy()
    changed[~real] = 100.0
    np.testing.assert_allclose(float(MaskedCrossEntropy(label_smoothing=0.0)(labels, changed)), expected, rtol=1e-5)
    accuracy = MaskedAccuracy()
    accuracy.update_state(labels, logits)
    hits = (logits.argmax(-1) == labels)[real].mean()
    np.testing.assert_allclose(float(accuracy.result()), hits, rtol=1e-6)


def test_label_smoothing_matches_its_definition():
    from keras_seq2seq.objectives import MaskedCrossEntropy

    logits = np.array([[[2.0, 0.5, -1.0, 0.0]]], "float32")
    labels = np.array([[1]])
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -(0.9 * log_probabilities[0, 0, 1] + 0.1 * log_probabilities[0, 0].mean())
    np.testing.assert_allclose(float(MaskedCrossEntropy(0.1)(labels, logits)), expected, rtol=1e-5)


def test_schedule_warms_up_then_decays():
    from keras_seq2seq.objectives import TransformerSchedule

    schedule = TransformerSchedule(d_model=256, warmup_steps=100)
    rates = [float(schedule(step)) for step in (0, 49, 99, 399)]
    assert rates[0] < rates[1] < rates[2]
    np.testing.assert_allclose(rates[2], 256**-0.5 * 100**-0.5, rtol=1e-5)
    np.testing.assert_allclose(rates[3], 256**-0.5 * 400**-0.5, rtol=1e-5)
