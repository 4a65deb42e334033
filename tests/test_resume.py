"""A training process killed with SIGKILL resumes from its backup when started again, and logs
each epoch once: the kill comes right after an epoch's row is written to training.csv, before
that epoch's backup (the window where a finished epoch used to be logged twice)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tatoeba-sample.txt"
HELPER = ROOT / "tests" / "helpers" / "train_and_kill.py"
EPOCHS, STEPS, BACKUP_EVERY = 4, 7, 3


def _train(run_dir, **env):
    command = [
        sys.executable, str(HELPER), "train", "--config", "training/configs/tiny-smoke.yaml",
        "--output", str(run_dir),
        f"corpus.train={FIXTURE}", f"corpus.dev={FIXTURE}", "corpus.limit=200",
        "tokenizer.source_vocab_size=200", "tokenizer.target_vocab_size=200",
        "training.token_budget=256", "training.max_length=32",
        f"training.epochs={EPOCHS}", f"training.steps_per_epoch={STEPS}",
        f"training.backup_every_steps={BACKUP_EVERY}", "training.warmup_steps=50", "training.verbose=0",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _logged_epochs(run_dir):
    with (run_dir / "logs" / "training.csv").open() as rows:
        return [int(row["epoch"]) for row in csv.DictReader(rows)]


def _h5_arrays(path):
    arrays = []
    with h5py.File(path, "r") as store:
        store.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.parametrize("truncated", [False, True], ids=["backup", "truncated_latest_backup"])
def test_killed_after_an_epoch_is_logged_then_resumed(tmp_path, truncated):
    """With the latest backup truncated (a kill while it was written), the run resumes from the
    previous copy instead: 3 steps earlier."""
    run_dir = tmp_path / "run"
    killed = _train(run_dir, KILL_AFTER_EPOCH="1")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert _logged_epochs(run_dir) == [0, 1]  # epoch 1's row was written, its backup was not
    metadata = json.loads((run_dir / "backup" / "training_metadata.json").read_text())
    # The last backup is a step backup inside epoch 1 (every 3 steps: after its 6th step).
    assert metadata == {"epoch": 1, "batch": 5}
    backup_steps = STEPS + 6
    if truncated:
        latest = run_dir / "backup" / "latest.weights.h5"
        latest.write_bytes(latest.read_bytes()[:1000])
        assert json.loads((run_dir / "backup" / "training_metadata.json.bkp").read_text())["batch"] == 2
        backup_arrays, backup_steps = _h5_arrays(run_dir / "backup" / "latest.weights.h5.bkp"), STEPS + 3
    else:
        backup_arrays = _h5_arrays(run_dir / "backup" / "latest.weights.h5")

    restored = tmp_path / "restored.npz"
    resumed = _train(run_dir, RECORD_RESTORED=str(restored))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _logged_epochs(run_dir) == list(range(EPOCHS))  # each epoch once
    assert "dropped 1 logged row(s)" in resumed.stdout
    # The resumed run started from the backup: its optimizer step (epoch 0's 7 steps and 6 of
    # epoch 1, or 3 from the previous copy) and every weight as stored there.
    state = np.load(restored)
    assert int(state["iterations"]) == backup_steps
    weights = [state[name] for name in state.files if name.startswith("w")]
    assert len(weights) > 20
    for weight in weights:
        assert any(array.shape == weight.shape and np.array_equal(array, weight) for array in backup_arrays)
    # Keras deletes the backup when training ends.
    assert not (run_dir / "backup").exists()


def test_a_nan_loss_stops_the_run_before_anything_is_saved(tmp_path):
    """A NaN loss at epoch 1's third step (where a step backup is due): the run stops with one line,
    and checkpoints/ and backup/ hold exactly what they held before that step."""
    sys.path.insert(0, str(HELPER.parent))
    from train_and_kill import saved_state

    run_dir, snapshot = tmp_path / "run", tmp_path / "before.json"
    result = _train(run_dir, NAN_AT_STEP=str(STEPS + 2), NAN_SNAPSHOT=str(snapshot))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "loss became nan at batch 2; stopped before saving" in result.stderr.strip().splitlines()[-1]
    before = json.loads(snapshot.read_text())
    assert {name.split("/")[0] for name in before} == {"checkpoints", "backup"}
    assert saved_state(run_dir) == before
