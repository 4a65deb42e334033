import json

import numpy as np
import pytest


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


def test_schedule_continues_at_an_offset_and_cools_down_to_zero():
    from keras_seq2seq.objectives import TransformerSchedule

    plain = TransformerSchedule(d_model=256, warmup_steps=100, scale=0.7)
    continued = TransformerSchedule(d_model=256, warmup_steps=100, scale=0.7, step_offset=500)
    for step in (0, 7, 300):
        np.testing.assert_allclose(float(continued(step)), float(plain(step + 500)), rtol=1e-6)
    cooled = TransformerSchedule(256, 100, 0.7, step_offset=500, total_steps=1000, cooldown_steps=400)
    for step in (0, 599):  # before the cool-down: the plain curve
        np.testing.assert_allclose(float(cooled(step)), float(continued(step)), rtol=1e-6)
    for step, fraction in ((600, 1.0), (800, 0.5), (999, 1 / 400), (1000, 0.0), (1200, 0.0)):
        np.testing.assert_allclose(float(cooled(step)), fraction * float(continued(step)), rtol=1e-5, atol=1e-12)
    with pytest.raises(ValueError, match="cooldown_steps=20"):
        TransformerSchedule(256, 100, total_steps=10, cooldown_steps=20)


def test_rates_written_in_exponent_notation_are_numbers():
    from keras_seq2seq.run_config import load_config

    # PyYAML (YAML 1.1) reads "1e-4" as a string; the configuration takes it as the number.
    assert load_config(None, ["training.lr_scale=1e-4"]).training.lr_scale == 1e-4
    assert load_config(None, ["training.clipnorm=2E0"]).training.clipnorm == 2.0


def test_nan_guard_stops_before_anything_is_saved():
    import math

    import pytest

    from keras_seq2seq.trainer import NaNGuard

    guard = NaNGuard()
    guard.on_train_batch_end(0, {"loss": 1.5})
    with pytest.raises(FloatingPointError, match="loss became nan at batch 7"):
        guard.on_train_batch_end(7, {"loss": math.nan})


@pytest.mark.slow
def test_seeded_runs_are_reproducible(tmp_path):
    from pathlib import Path

    import keras

    from keras_seq2seq import trainer
    from keras_seq2seq.run_config import load_config
    from keras_seq2seq.runs import load_run

    sample = str(Path(__file__).resolve().parent / "fixtures" / "tatoeba-sample.txt")
    overrides = [
        f"corpus.train={sample}", f"corpus.dev={sample}", "corpus.limit=64",
        "tokenizer.source_vocab_size=150", "tokenizer.target_vocab_size=150", "model.preset=tiny",
        "model.overrides.dropout=0.1", "training.token_budget=256", "training.max_length=32",
        "training.epochs=2", "training.steps_per_epoch=4", "training.verbose=0",
        "training.backup_every_steps=0", "training.seed=3",
    ]
    weights = []
    for name in ("first", "second"):
        trainer.train(load_config(None, overrides), tmp_path / name)
        keras.mixed_precision.set_global_policy("float32")
        model, _, _ = load_run(tmp_path / name, "last")
        weights.append([np.asarray(w) for w in model.weights])
    assert (tmp_path / "first" / "tokenizers" / "source.model").read_bytes() == (
        tmp_path / "second" / "tokenizers" / "source.model"
    ).read_bytes()
    for first, second in zip(weights[0], weights[1]):
        np.testing.assert_array_equal(first, second)


def test_loss_gradient_is_the_smoothed_softmax_difference():
    import tensorflow as tf

    from keras_seq2seq.objectives import smoothed_cross_entropy

    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(size=(2, 3, 6)), tf.float32)
    labels = tf.constant([[1, 0, 5], [2, 2, 3]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(smoothed_cross_entropy(labels, logits, 0.1) * tf.constant([[1.0, 2.0, 3.0]]))
    gradient = tape.gradient(loss, logits).numpy()
    # The same loss through TensorFlow's own ops, differentiated by TensorFlow.
    with tf.GradientTape() as tape:
        tape.watch(logits)
        log_probabilities = tf.nn.log_softmax(logits)
        target = 0.9 * tf.one_hot(labels, 6) + 0.1 / 6
        reference = tf.reduce_sum(-tf.reduce_sum(target * log_probabilities, -1) * tf.constant([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(float(loss), float(reference), rtol=1e-5)
    np.testing.assert_allclose(gradient, tape.gradient(reference, logits).numpy(), atol=1e-6)


@pytest.mark.slow
def test_a_run_continues_the_weights_and_tokenizers_of_an_export(tmp_path):
    """`training.init_from` takes a shipped export's tokenizers and weights; with a vanishing
    learning rate one step leaves the weights where the export had them."""
    from pathlib import Path

    import keras

    from keras_seq2seq import trainer
    from keras_seq2seq.run_config import ConfigError, load_config
    from keras_seq2seq.runs import load_run

    root = Path(__file__).resolve().parent.parent
    shipped = root / "saved_models" / "fr-en-small"
    sample = str(root / "tests" / "fixtures" / "tatoeba-sample.txt")
    overrides = [
        f"corpus.train={sample}", f"corpus.dev={sample}", "corpus.limit=32", "model.preset=small",
        "training.token_budget=256", "training.max_length=32", "training.epochs=1",
        "training.steps_per_epoch=1", "training.verbose=0", "training.backup_every_steps=0",
        f"training.init_from={shipped}", "training.initial_step=4608", "training.lr_scale=1e-9",
    ]
    trainer.train(load_config(None, overrides), tmp_path / "continued")
    keras.mixed_precision.set_global_policy("float32")
    continued, source, _ = load_run(tmp_path / "continued", "last")
    origin, origin_source, _ = load_run(shipped)
    sentence = "Je suis étudiant."
    assert np.asarray(source.tokenize(sentence)).tolist() == np.asarray(origin_source.tokenize(sentence)).tolist()
    for side, proto in (("source", "source.spm.model"), ("target", "target.spm.model")):
        assert (tmp_path / "continued" / "tokenizers" / f"{side}.model").read_bytes() == (
            shipped / "assets.extra" / proto
        ).read_bytes()
    assert len(continued.weights) == len(origin.weights)
    for mine, theirs in zip(continued.weights, origin.weights):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), atol=1e-6, err_msg=mine.path)

    with pytest.raises(ConfigError, match=r"holds another model \(d_model: 256 there, 32 here"):
        trainer.train(load_config(None, [*overrides[:-3], f"training.init_from={shipped}", "model.preset=tiny"]),
                      tmp_path / "other")
    keras.mixed_precision.set_global_policy("float32")


def test_a_lost_worker_is_named_from_what_the_collective_error_says(monkeypatch):
    """The one line a multi-worker training ends with names the lost worker: from the coordination
    service's heartbeat report, or from a failed connection naming another worker (as the remote
    target, or by its address in TF_CONFIG); never this worker; in a cluster of two, the other one
    when nothing is named; otherwise the error, shortened."""
    import json

    import tensorflow as tf

    from keras_seq2seq.trainer import _lost_worker

    cluster = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    unavailable = lambda text: tf.errors.UnavailableError(None, None, text)  # noqa: E731
    heartbeats = ("Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are "
                  "unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed.")
    assert _lost_worker(unavailable(heartbeats), 120) == (
        "/job:worker/replica:0/task:1 stopped sending heartbeats (killed or crashed)")
    remote = ("Collective ops is aborted by: Socket closed\nAdditional GRPC error information from remote target "
              "/job:worker/replica:0/task:1 while calling /tensorflow.WorkerService/RecvBuf")
    unreachable = "/job:worker/replica:0/task:1 could not be reached (killed or crashed)"
    assert _lost_worker(unavailable(remote), 120) == unreachable
    address = "failed to connect to all addresses; last error: ipv4:127.0.0.1:2223: Connection refused"
    assert _lost_worker(unavailable(address), 120) == unreachable
    # No task named, in a cluster of two: the other worker is the only peer there is.
    for vague in ("Connection reset by peer", "127.0.0.1:22230 is another port"):
        assert _lost_worker(unavailable(vague), 120) == unreachable
    # This worker named (and no other): not a lost peer's name; the error itself, shortened.
    mine = "error from /job:worker/replica:0/task:0, this worker"
    assert _lost_worker(unavailable(mine), 120).startswith("a collective operation failed (UnavailableError: ")
    # In a cluster of three, a peer not named stays unknown: the error itself, shortened.
    cluster["worker"].append("127.0.0.1:2224")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    for vague in ("Connection reset by peer", "error from /job:worker/replica:0/task:0, this worker",
                  "127.0.0.1:22230 is another port"):
        assert _lost_worker(unavailable(vague), 120).startswith("a collective operation failed (UnavailableError: ")
    assert _lost_worker(unavailable(address), 120) == unreachable
    assert _lost_worker(tf.errors.DeadlineExceededError(None, None, remote), 120) == (
        "a collective operation waited more than training.collective_timeout=120 s")
