#!/usr/bin/env python3
"""Set up the project's virtual environment, then run the main job or the tests.

    python3 dev.py main    # set up, then train -> evaluate -> export -> translate (training/main_job.py)
    python3 dev.py test    # set up, then run the test suite
    python3 dev.py bench   # set up (with the `bench` extra), then run the benchmarks

Needs nothing but Python 3.11: the environment goes to .venv/ inside the repository and is
reinstalled only when pyproject.toml changes.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"


def ensure_environment(extras):
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"keras-seq2seq needs Python 3.11, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating the virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    stamp = VENV / f".installed-{extras}"
    digest = hashlib.sha256(pyproject).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing keras-seq2seq[{extras}] and its dependencies (first run: a few minutes)", flush=True)
    log = VENV / "install.log"
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    with log.open("w") as output:
        for args in (["--upgrade", "pip"], ["-e", f"{ROOT}[{extras}]"]):
            if subprocess.run([*pip, *args], stdout=output, stderr=subprocess.STDOUT).returncode:
                tail = "".join(log.read_text().splitlines(True)[-30:])
                sys.exit(f"installation failed; the last lines of {log}:\n{tail}")
    print(f"installed (log: {log})", flush=True)
    stamp.write_text(digest)


def corpus_environment():
    """`{"KERAS_SEQ2SEQ_CORPUS": ../shared/data/tatoeba-fr-en}` where the workplace's copy exists:
    the default corpus is then read from there instead of fetched (keras_seq2seq/data/fetch.py)."""
    shared = ROOT.parent / "shared" / "data" / "tatoeba-fr-en"
    return {"KERAS_SEQ2SEQ_CORPUS": str(shared)} if (shared / "train.txt").is_file() else {}


def run(args, backend="tensorflow"):
    env = {**corpus_environment(), **os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([str(PYTHON), *args], cwd=ROOT, env=env).returncode


# The portable part of the suite, run a second time on Keras' JAX backend: the layers and models
# (TensorFlow-specific tests skip themselves), the README's layer example, and a `.keras` file
# saved under TensorFlow loaded under JAX.
JAX_TESTS = ["tests/layers", "tests/models", "tests/test_readme.py", "tests/test_old_runs.py"]


def main(argv):
    command = argv[0] if argv else "main"
    rest = argv[1:]
    if command == "test":
        ensure_environment("dev")
        # Two worker processes: much of the suite is single-threaded (XLA compilation,
        # subprocess start-up, small steps); on 2 cores the suite takes about a quarter less time.
        status = run(["-m", "pytest", "-q", "-n", "2", "--dist", "worksteal", "--durations", "15", *rest])
        if rest:  # a selection of tests: TensorFlow only
            return status
        print("the layers and models again, on the JAX backend", flush=True)
        return run(["-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", *JAX_TESTS], "jax") or status
    if command == "main":
        ensure_environment("dev")
        return run([str(ROOT / "training" / "main_job.py"), *rest])
    if command == "bench":
        ensure_environment("dev,bench")
        return run([str(ROOT / "benchmarks" / "run_all.py"), *rest])
    sys.exit(f"unknown command {command!r}: use main, test or bench")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
