"""A training process killed with SIGKILL resumes from its backup when started again."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tatoeba-sample.txt"
EPOCHS, STEPS = 8, 10


def _command(run_dir):
    return [
        sys.executable, "-m", "keras_seq2seq.cli", "train", "--config", "training/configs/tiny-smoke.yaml",
        "--output", str(run_dir),
        f"corpus.train={FIXTURE}", f"corpus.dev={FIXTURE}", "corpus.limit=200",
        "tokenizer.source_vocab_size=200", "tokenizer.target_vocab_size=200",
        "training.token_budget=256", "training.max_length=32",
        f"training.epochs={EPOCHS}", f"training.steps_per_epoch={STEPS}",
        "training.backup_every_steps=3", "training.warmup_steps=50", "training.verbose=2",
    ]


def _epochs_logged(run_dir):
    path = run_dir / "logs" / "training.csv"
    if not path.exists():
        return []
    return list(csv.DictReader(path.open()))


def test_sigkill_then_same_command_resumes(tmp_path):
    root = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(_command(run_dir), cwd=root, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    while len(_epochs_logged(run_dir)) < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(0.6)  # into the middle of a later epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = len(_epochs_logged(run_dir))
    assert 3 <= killed_after < EPOCHS, "the run should be killed mid-way"
    assert (run_dir / "backup").exists()

    result = subprocess.run(_command(run_dir), cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, "\n".join(result.stderr.splitlines()[-15:])
    rows = _epochs_logged(run_dir)
    epochs = [int(row["epoch"]) for row in rows]
    # The second run did not start again from epoch 0: every epoch is logged once.
    assert epochs == list(range(EPOCHS))
    # The optimizer's step counter came back from the mid-epoch backup: Keras resumes
    # at the start of the interrupted epoch, so at most that epoch's steps are redone
    # (with the backed-up weights), and nothing restarts from step zero.
    from keras_seq2seq.objectives import TransformerSchedule

    schedule = TransformerSchedule(32, 50)
    final_rate = float(rows[-1]["learning_rate"])
    steps_done = [s for s in range(EPOCHS * STEPS - 1, EPOCHS * STEPS + STEPS)
                  if float(schedule(s)) == pytest.approx(final_rate, rel=1e-4)]
    assert steps_done, f"final learning rate {final_rate} matches no step count in the expected range"
