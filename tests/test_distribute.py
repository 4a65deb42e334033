"""One device, two logical devices (MirroredStrategy) and two worker processes on 127.0.0.1
(MultiWorkerMirroredStrategy) train the same global batches to the same weights."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).resolve().parent / "helpers" / "distributed_worker.py"

pytestmark = pytest.mark.slow


def _run(output, strategy, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(output), strategy, *extra],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(process):
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output[-3000:]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def _weights(path):
    data = np.load(path)
    return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    output = tmp_path_factory.mktemp("single") / "weights.npz"
    _wait(_run(output, "default"))
    return _weights(output)


def _assert_same_training(reference, other):
    assert float(other["loss"]) == pytest.approx(float(reference["loss"]), rel=1e-5)
    assert float(other["accuracy"]) == pytest.approx(float(reference["accuracy"]), rel=1e-6)
    names = [key for key in reference if key.startswith("w")]
    assert len(names) > 20
    for name in names:
        np.testing.assert_allclose(other[name], reference[name], atol=1e-5, err_msg=name)


def test_two_logical_devices_match_one_device(single_device, tmp_path):
    _wait(_run(tmp_path / "mirrored.npz", "mirrored", "2"))
    mirrored = _weights(tmp_path / "mirrored.npz")
    assert int(mirrored["replicas"]) == 2
    _assert_same_training(single_device, mirrored)


def test_two_worker_processes_match_one_worker(single_device, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = [
        _run(
            tmp_path / f"worker{index}.npz",
            "multiworker",
            env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
        )
        for index in range(2)
    ]
    for process in processes:
        _wait(process)
    workers = [_weights(tmp_path / f"worker{index}.npz") for index in range(2)]
    assert int(workers[0]["replicas"]) == 2
    for name in workers[0]:
        np.testing.assert_array_equal(workers[0][name], workers[1][name], err_msg=name)
    _assert_same_training(single_device, workers[0])


def test_keras_still_needs_the_fit_workaround(tmp_path):
    """Without `enable_distributed_fit`, two workers fail in Keras' `fit` (keras-team/keras#20585).
    When this test fails, Keras has fixed it: remove the workaround from distribute.py."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = [
        _run(
            tmp_path / f"worker{index}.npz",
            "multiworker",
            env={
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                "WITHOUT_FIT_WORKAROUND": "1",
            },
        )
        for index in range(2)
    ]
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            process.kill()
            outputs.append(process.communicate()[0])
    assert all(process.returncode != 0 for process in processes), outputs[0][-2000:]
    # What Keras 3.15 fails with: the first batch's per-replica values handed to a conversion.
    assert any("PerReplica" in output for output in outputs), outputs[0][-3000:]


KILLABLE = Path(__file__).resolve().parent / "helpers" / "train_and_kill.py"
ROOT = Path(__file__).resolve().parents[1]


def _train_worker(run_dir, cluster, index, env):
    sample = ROOT / "tests" / "fixtures" / "tatoeba-sample.txt"
    return subprocess.Popen(
        [sys.executable, str(KILLABLE), "train", "--config", str(ROOT / "training" / "configs" / "tiny-smoke.yaml"),
         "--output", str(run_dir), f"corpus.train={sample}", f"corpus.dev={sample}", "corpus.limit=160",
         "tokenizer.source_vocab_size=150", "tokenizer.target_vocab_size=150", "training.epochs=3",
         "training.token_budget=256", "training.max_length=32", "training.strategy=multiworker",
         "training.backup_every_steps=4", "training.verbose=0", "training.collective_timeout=120"],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
             "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _h5_weights(path):
    import h5py

    values = {}

    def read(name, item):
        if isinstance(item, h5py.Dataset):
            values[name] = item[()]

    with h5py.File(path, "r") as weights:
        weights.visititems(read)
    return values


def test_a_killed_worker_stops_the_other_and_both_resume_to_the_same_weights(tmp_path):
    """SIGKILL worker 1 mid-epoch: worker 0 stops within a bounded time with one line (status 1);
    both commands started again resume from their backups and end with identical weights."""
    run_dir = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    first = [_train_worker(run_dir, cluster, index, {"KILL_AT_STEP": "20"} if index else {}) for index in range(2)]
    _, errors = first[0].communicate(timeout=300)  # heartbeats stop within seconds; never a hang
    first[1].communicate(timeout=60)
    assert first[1].returncode == -9
    assert first[0].returncode == 1, errors[-3000:]
    assert "Traceback" not in errors
    last_line = errors.strip().splitlines()[-1]
    # (Named by the coordination service's heartbeat report, or, when a collective's connection to it
    # failed first, as the worker that could not be reached.)
    named = "keras-seq2seq train: error: worker 0 stopped: /job:worker/replica:0/task:1 "
    assert last_line.startswith((named + "stopped sending heartbeats", named + "could not be reached")), last_line
    assert "Start every worker's command again" in last_line

    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    again = [
        _train_worker(run_dir, cluster, index, {"RECORD_RESTORED": str(tmp_path / f"restored{index}.npz")})
        for index in range(2)
    ]
    for process in again:
        _, errors = process.communicate(timeout=400)
        assert process.returncode == 0, errors[-3000:]
    restored = [np.load(tmp_path / f"restored{index}.npz") for index in range(2)]
    # The last backup before the kill at step 20 (backups every 4 steps and at each epoch's end).
    assert int(restored[0]["iterations"]) == int(restored[1]["iterations"])
    assert 16 <= int(restored[0]["iterations"]) < 20
    for name in restored[0].files:
        np.testing.assert_array_equal(restored[0][name], restored[1][name], err_msg=name)
    final = [_h5_weights(run_dir / "checkpoints" / "last.weights.h5"),
             _h5_weights(run_dir / "workers" / "1" / "checkpoints" / "last.weights.h5")]
    assert final[0].keys() == final[1].keys() and len(final[0]) > 20
    for name in final[0]:
        np.testing.assert_array_equal(final[0][name], final[1][name], err_msg=name)
    epochs = [line.split(",")[0] for line in (run_dir / "logs" / "training.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]
