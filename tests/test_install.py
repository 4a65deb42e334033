"""The package installed from its wheel (not editable) works from any directory."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "saved_models" / "fr-en-small"
SAMPLE = ROOT / "tests" / "fixtures" / "tatoeba-sample.txt"

pytestmark = pytest.mark.slow


def _run(bin_dir, *args, cwd, env=None):
    return subprocess.run(
        [str(bin_dir / "keras-seq2seq"), *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def test_the_wheel_holds_the_package_and_runs_from_elsewhere(installed_package, tmp_path):
    where = subprocess.run(
        [str(installed_package / "python"), "-c", "import keras_seq2seq, keras_seq2seq.serving; "
         "print(keras_seq2seq.__file__)"], cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed_package.parent / "lib"), where
    result = _run(installed_package, "translate", "--model", str(SHIPPED), "Je suis étudiant.", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "I'm a student.\n"


def test_train_from_the_wheel_finds_the_default_corpus_through_the_environment(installed_package, tmp_path):
    """`corpus.train: default` reads `$KERAS_SEQ2SEQ_CORPUS`, whatever the package's location."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    (corpus / "train.txt").write_text("".join(lines[:300]), encoding="utf-8")
    (corpus / "dev.txt").write_text("".join(lines[300:]), encoding="utf-8")
    result = _run(
        installed_package, "train", "--config", str(ROOT / "training" / "configs" / "tiny-smoke.yaml"),
        "--output", "run", "training.epochs=1", "training.verbose=0", "tokenizer.source_vocab_size=150",
        "tokenizer.target_vocab_size=150", cwd=tmp_path, env={"KERAS_SEQ2SEQ_CORPUS": str(corpus),
                                                             "KERAS_SEQ2SEQ_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{corpus / 'train.txt'}: kept 300 pairs" in result.stdout, result.stdout[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "best.weights.h5").is_file()
    # Nothing fetched (the cache may hold XLA's compiled programs, nothing else).
    cached = {path.name for path in (tmp_path / "cache").iterdir()} if (tmp_path / "cache").exists() else set()
    assert cached <= {"xla"}, cached
