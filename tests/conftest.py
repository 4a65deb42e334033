import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The default corpus from the workplace's copy where it exists, as `dev.py` runs everything.
for _name, _value in __import__("dev").corpus_environment().items():
    os.environ.setdefault(_name, _value)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Each test starts seeded, in float32, whatever the previous test did."""
    keras.utils.set_random_seed(1234)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def pytest_collection_modifyitems(config, items):
    """The tests that use `tiny_run` first, the others after (each group in its usual order).

    `python3 dev.py test` runs two xdist workers, which start on the two halves of
    this list (work stealing rebalances them later). In file order, both halves soon
    reached a test that needs `tiny_run`, and the worker that did not train it waited
    for it, idle, for a minute or two; now one worker trains it first while the other
    runs tests that do not need it (the multi-process training tests among them).
    """
    items.sort(key=lambda item: "tiny_run" not in getattr(item, "fixturenames", ()))
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)  # trains a model (shared by the session)
    if keras.backend.backend() != "tensorflow":
        reason = f"TensorFlow-specific (tf.function, XLA or GradientTape); backend is {keras.backend.backend()}"
        for item in items:
            if "tensorflow_only" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


FIXTURES = __import__("pathlib").Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id):
    """A tiny model trained to memorise 64 fixture pairs: `(run_dir, history)`.

    Shared by the training, decoding and export tests (half a minute to two, by the
    machine). Under pytest-xdist (`python3 dev.py test` runs two workers) the first
    worker that needs it trains it and the others read the same run directory
    (training it in a third process from the start was slower: three TensorFlow
    processes contending for 2 cores).
    """
    if worker_id == "master":
        run_dir = tmp_path_factory.mktemp("tiny_run")
        return run_dir, _train_tiny(run_dir)
    import json
    from types import SimpleNamespace

    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of this session
    run_dir, record = shared / "tiny_run", shared / "tiny_run_history.json"
    with FileLock(str(shared / "tiny_run.lock")):
        if not record.exists():
            record.write_text(json.dumps(_train_tiny(run_dir).history, default=float))
    return run_dir, SimpleNamespace(history=json.loads(record.read_text()))


def _train_tiny(run_dir):
    """Trains the tiny model into `run_dir`; returns the Keras History."""
    from keras_seq2seq import trainer
    from keras_seq2seq.run_config import load_config

    keras.utils.set_random_seed(0)
    sample = str(FIXTURES / "tatoeba-sample.txt")
    config = load_config(
        None,
        [
            f"corpus.train={sample}",
            f"corpus.dev={sample}",
            "corpus.limit=64",
            "tokenizer.source_vocab_size=200",
            "tokenizer.target_vocab_size=200",
            "model.preset=tiny",
            "training.token_budget=512",
            "training.max_length=32",
            "training.epochs=60",
            "training.warmup_steps=60",
            "training.lr_scale=0.5",
            "training.label_smoothing=0.0",
            "training.early_stopping_patience=0",
            "training.backup_every_steps=0",
            "training.keep_checkpoints=3",
            "training.select_by=bleu",
            "training.dev_bleu_every=20",
            "training.dev_bleu_sentences=64",
            "training.verbose=0",
        ],
    )
    history = trainer.train(config, run_dir)
    keras.mixed_precision.set_global_policy("float32")
    return history


@pytest.fixture(scope="session")
def installed_package(tmp_path_factory, worker_id):
    """A virtual environment with keras-seq2seq installed from its wheel (not editable): its `bin/`.

    The wheel is built from this checkout and installed with `--no-deps`; the environment
    sees the project environment's installed dependencies through a `.pth` line (a fresh
    install of TensorFlow would take minutes). Lines of a `.pth` file are plain paths, so
    the checkout's editable install, itself a `.pth` hook, stays inactive there: the package
    imports from the wheel's files. Shared by the session's workers.
    """
    import subprocess
    import sys
    import sysconfig

    from filelock import FileLock

    root = FIXTURES.parents[1]
    shared = tmp_path_factory.getbasetemp().parent if worker_id != "master" else tmp_path_factory.getbasetemp()
    environment = shared / "wheel-venv"
    with FileLock(str(shared / "wheel-venv.lock")):
        if not (environment / "done").exists():
            dist = shared / "dist"
            run = lambda *command: subprocess.run(command, check=True, capture_output=True, text=True)
            run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                str(root))
            run(sys.executable, "-m", "venv", "--without-pip", str(environment))
            packages = environment / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
            (packages / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
            wheel = next(dist.glob("keras_seq2seq-*.whl"))
            run(str(environment / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel))
            (environment / "done").write_text(wheel.name)
    return environment / "bin"
