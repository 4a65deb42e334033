import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


@pytest.fixture
def rng():
    return np.random.default_rng(0)


ROOT = Path(__file__).resolve().parents[1]
_TINY_RUN = pytest.StashKey()  # (directory, process, log) of the background tiny run, on the controller


def pytest_configure(config):
    """Under pytest-xdist the controller trains the shared tiny run in the background from the start."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    shared = Path(tempfile.mkdtemp(prefix="keras-seq2seq-tiny-run-"))
    log = (shared / "training.log").open("w")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "tests.tiny_run", str(shared)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    config.stash[_TINY_RUN] = (shared, process, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tells each xdist worker where the background tiny run is written."""
    if _TINY_RUN in node.config.stash:
        node.workerinput["tiny_run_dir"] = str(node.config.stash[_TINY_RUN][0])


def pytest_unconfigure(config):
    if _TINY_RUN in config.stash:
        shared, process, log = config.stash[_TINY_RUN]
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_run(request, tmp_path_factory):
    """A tiny model trained to memorise 64 fixture pairs: `(run_dir, history)` (see tests/tiny_run.py).

    Shared by the training, decoding and export tests: trained once per session, in
    the background under xdist (`python3 dev.py test` runs two workers), else here.
    """
    from tests import tiny_run as tiny

    shared = getattr(request.config, "workerinput", {}).get("tiny_run_dir")
    if shared is None:
        run_dir = tmp_path_factory.mktemp("tiny_run")
        return run_dir, tiny.train(run_dir)
    return tiny.wait_for(Path(shared))
