"""A SIGKILL during `keras-seq2seq export` leaves the previous model at the target, or nothing there
(with both versions whole beside it), never a directory holding part of a model."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_seq2seq.atomic import atomic_directory

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "tests" / "helpers" / "export_and_kill.py"
RUN = ROOT / "tests" / "fixtures" / "tiny-run-0.1.0"


def _export(target, kill_at=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **({"KILL_AT": kill_at} if kill_at else {})}
    # --no-xla: where the export is killed does not depend on how it decodes, and it is faster.
    return subprocess.run([sys.executable, str(HELPER), "export", str(RUN), "--no-xla", "--output", str(target)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


def _complete(path):
    """Every file an export ends with is there (the SavedModel is written first, assets.extra last)."""
    return all((path / name).is_file() for name in ("saved_model.pb", "variables/variables.index",
                                                     "assets.extra/model_config.json", "assets.extra/target.spm.model"))


def _translates(path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    translation = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(["Salut."]))
    return translation["translation"].shape == (1,)


@pytest.mark.slow
def test_a_killed_export_leaves_the_previous_model_or_none(tmp_path):
    target = tmp_path / "model"
    first = _export(target)
    assert first.returncode == 0, first.stderr[-2000:]
    (target / "assets.extra" / "which.txt").write_text("previous")

    killed = _export(target, "saved")
    assert killed.returncode == -9
    assert (target / "assets.extra" / "which.txt").read_text() == "previous" and _complete(target)
    assert _translates(target)

    killed = _export(target, "rename")
    assert killed.returncode == -9
    assert not target.exists()
    previous = [path for path in tmp_path.iterdir() if path.name.startswith(".model.previous-")]
    new = [path for path in tmp_path.iterdir() if path.name.startswith(".model.partial-")]
    assert len(previous) == 1 and (previous[0] / "assets.extra" / "which.txt").read_text() == "previous"
    assert _complete(previous[0]) and len(new) == 1 and _complete(new[0])


def test_a_failed_block_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "file").write_text("one")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "file").write_text("two")
        raise RuntimeError("export failed")
    assert (target / "file").read_text() == "one"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
