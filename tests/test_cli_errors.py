"""Every bad input to the `keras-seq2seq` command is answered with one line naming what is wrong,
exit status 2 and no traceback (`--debug` shows it). Each case runs the real command."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "tests" / "fixtures" / "tiny-run-0.1.0"
COMMAND = str(Path(sys.executable).parent / "keras-seq2seq")
SMOKE = str(ROOT / "training" / "configs" / "tiny-smoke.yaml")

CASES = {
    "invalid YAML": (["train", "--config", "{tmp}/bad.yaml"], "is not valid YAML"),
    "missing config": (["train", "--config", "{tmp}/none.yaml"], "no configuration file {tmp}/none.yaml"),
    "every corpus line bad": (
        ["train", "--config", SMOKE, "corpus.train={tmp}/no-tabs.txt", "corpus.dev={tmp}/no-tabs.txt",
         "--output", "{tmp}/run"],
        "no usable pair in the train corpus: {tmp}/no-tabs.txt: kept 0 pairs",
    ),
    "corpus not UTF-8": (
        ["train", "--config", SMOKE, "corpus.train={tmp}/latin1.txt", "corpus.dev={tmp}/latin1.txt",
         "--output", "{tmp}/run"],
        "no usable pair in the train corpus: {tmp}/latin1.txt: kept 0 pairs",
    ),
    "override of a local name": (["train", "--config", SMOKE, "model.overrides.shared=1"],
                                 "unknown key model.overrides.shared"),
    "misspelt override": (["train", "--config", SMOKE, "model.overrides.num_head=2"],
                          "unknown key model.overrides.num_head"),
    "key of the wrong type": (["train", "--config", SMOKE, "training.epochs=many"],
                              "training.epochs must be of type int"),
    "rate not finite": (["train", "--config", SMOKE, "training.lr_scale=.nan"],
                        "training.lr_scale must be a finite number"),
    "cool-down longer than the run": (["train", "--config", SMOKE, "training.epochs=2", "training.cooldown_epochs=3"],
                                      "training.cooldown_epochs must be at most training.epochs=2"),
    "init_from missing": (["train", "--config", SMOKE, "training.init_from={tmp}/nowhere"],
                          "training.init_from='{tmp}/nowhere' does not exist"),
    "train output is a file": (["train", "--config", SMOKE, "--output", "{tmp}/a-file"],
                               "--output {tmp}/a-file is a file"),
    "evaluate data missing": (["evaluate", "--model", str(RUN), "--data", "{tmp}/none.txt"],
                              "--data {tmp}/none.txt: no such file"),
    "evaluate data without a pair": (["evaluate", "--model", str(RUN), "--data", "{tmp}/no-tabs.txt"],
                                     "--data {tmp}/no-tabs.txt holds no usable pair"),
    "export of a directory that is not a run": (["export", "{tmp}/empty", "--output", "{tmp}/out"],
                                                "{tmp}/empty is neither a SavedModel"),
    "export checkpoint missing": (["export", str(RUN), "--checkpoint", "last", "--output", "{tmp}/out"],
                                  "has no last checkpoint"),
    "export of a truncated checkpoint": (["export", "{tmp}/truncated-run", "--output", "{tmp}/out"],
                                         "{tmp}/truncated-run/checkpoints/best.weights.h5 cannot be read"),
    "export output is a file": (["export", str(RUN), "--output", "{tmp}/a-file"], "--output {tmp}/a-file is a file"),
    "export beam size 0": (["export", str(RUN), "--output", "{tmp}/out", "--beam-size", "0"],
                           "--beam-size 0: give a whole number from 1 to 64"),
    "export length penalty not a number": (["export", str(RUN), "--output", "{tmp}/out", "--length-penalty", "nan"],
                                           "--length-penalty nan: give a number from 0 (none) to 10"),
    "translate file missing": (["translate", "--model", str(RUN), "--file", "{tmp}/none.txt"],
                               "--file {tmp}/none.txt: no such file"),
    "translate with a .keras file": (["translate", "--model", str(RUN / "model.keras"), "Salut."],
                                     "is a file; give a SavedModel directory or a training run directory (a .keras"),
    "translate with an empty directory": (["translate", "--model", "{tmp}/empty", "Salut."],
                                          "{tmp}/empty is neither a SavedModel"),
    "translate with a missing model": (["translate", "--model", "{tmp}/nowhere", "Salut."],
                                       "{tmp}/nowhere does not exist"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-inputs")
    (tmp / "bad.yaml").write_text("training: {epochs: [1\n")
    (tmp / "no-tabs.txt").write_text("Hello there\nno tab on this line either\n")
    (tmp / "latin1.txt").write_bytes("Go.\tVa !\xa0\xe9t\xe9\n".encode("latin-1") * 3)
    (tmp / "a-file").write_text("not a directory")
    (tmp / "empty").mkdir()
    shutil.copytree(RUN, tmp / "truncated-run")
    weights = tmp / "truncated-run" / "checkpoints" / "best.weights.h5"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return tmp


def _run(arguments, tmp):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [COMMAND, *(argument.replace("{tmp}", str(tmp)) for argument in arguments)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_line_and_status_2(inputs, case):
    arguments, message = CASES[case]
    result = _run(arguments, inputs)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"keras-seq2seq {arguments[0]}: error: ")
    assert message.replace("{tmp}", str(inputs)) in last_line


def test_debug_shows_the_traceback(inputs):
    result = _run(["--debug", "translate", "--model", "{tmp}/nowhere", "Salut."], inputs)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "InputError" in result.stderr
