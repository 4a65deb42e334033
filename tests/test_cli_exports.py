"""The `keras-seq2seq` command on exports, each step through the real command: every `export`
option (a checkpoint, --no-xla, --format ctranslate2, re-exporting an export with int8 weights), then `translate`
(--file with blank lines, --beam --n-best; compiled and eager) and `evaluate` on the SavedModels."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND = str(Path(sys.executable).parent / "keras-seq2seq")
SAMPLE = Path(__file__).resolve().parent / "fixtures" / "tatoeba-sample.txt"


def _run(*arguments, cwd):
    env = {key: value for key, value in os.environ.items() if key != "TF_XLA_FLAGS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_SEQ2SEQ_CACHE=str(Path(cwd) / "cache"))
    result = subprocess.run([COMMAND, *map(str, arguments)], capture_output=True, text=True, timeout=600,
                            env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def exports(tiny_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-exports")
    run_dir = tiny_run[0]
    _run("export", run_dir, "--checkpoint", "last", "--output", tmp / "xla", cwd=tmp)
    _run("export", run_dir, "--checkpoint", "last", "--no-xla", "--beam-size", "2", "--length-penalty", "1.0",
         "--output", tmp / "plain", cwd=tmp)
    # An export exported again, quantized: it keeps the export's beam search.
    _run("export", tmp / "plain", "--quantize", "int8", "--output", tmp / "int8", cwd=tmp)
    _run("export", run_dir, "--checkpoint", "last", "--format", "ctranslate2", "--output", tmp / "ct2", cwd=tmp)
    (tmp / "input.txt").write_text("Je suis étudiant.\n\n   \nVa !\n")
    return tmp


def test_every_export_option_writes_a_model(exports):
    for name in ("xla", "plain", "int8"):
        assert (exports / name / "saved_model.pb").is_file()
        assert (exports / name / "assets.extra" / "model_config.json").is_file()
    assert (exports / "ct2" / "model.bin").is_file()
    decoding = {name: json.loads((exports / name / "assets.extra" / "decoding.json").read_text())
                for name in ("xla", "plain", "int8")}
    assert decoding["xla"] == {"beam_size": 4, "length_penalty": 0.6}
    assert decoding["plain"] == {"beam_size": 2, "length_penalty": 1.0}
    assert decoding["int8"] == decoding["plain"]  # an export exported again keeps its beam search
    assert json.loads((exports / "int8" / "assets.extra" / "model_config.json").read_text())["quantization"]


def _translate(model, *options, engine="compiled", cwd):
    return _run("translate", "--model", model, "--engine", engine, *options, "--file", cwd / "input.txt",
                cwd=cwd).splitlines()


def test_translate_a_file_one_line_per_line_blank_for_blank(exports):
    outputs = {name: _translate(exports / name, cwd=exports) for name in ("xla", "plain", "int8")}
    assert outputs["xla"][:3] == ["I am a student.", "", ""] and len(outputs["xla"]) == 4
    assert outputs["plain"] == outputs["xla"]
    assert outputs["int8"][:3] == ["I am a student.", "", ""] and len(outputs["int8"]) == 4
    # XLA's compiled programs were kept for the next run ($KERAS_SEQ2SEQ_CACHE/xla).
    cached = sorted((exports / "cache" / "xla").iterdir())
    assert cached and all(path.stat().st_size > 0 for path in cached)
    assert _translate(exports / "xla", cwd=exports) == outputs["xla"]
    # A few sentences run eagerly by default (nothing compiled): the same translations, float and int8.
    for name in ("xla", "int8"):
        assert _translate(exports / name, engine="auto", cwd=exports) == outputs[name]


def test_translate_n_best_with_beam_search(exports):
    lines = _translate(exports / "xla", "--beam", "--n-best", "2", cwd=exports)
    assert len(lines) == 8  # 2 per input line
    assert lines[0].endswith("\tI am a student.")
    assert lines[2:6] == ["0.000\t"] * 4  # the blank lines: empty hypotheses, score 0
    assert _translate(exports / "xla", "--beam", "--n-best", "2", engine="eager", cwd=exports) == lines
    # An export's beam size is its own: `plain` keeps 2 beams, so 3 asked for give 2.
    lines = _run("translate", "--model", exports / "plain", "--beam", "--n-best", "3", "Je suis étudiant.",
                 cwd=exports).splitlines()
    assert len(lines) == 2 and lines[0].endswith("\tI am a student.")


def test_evaluate_a_savedmodel(exports):
    _run("evaluate", "--model", exports / "plain", "--data", SAMPLE, "--limit", "16", "--beam",
         "--output", exports / "evaluation", cwd=exports)
    scores = json.loads((exports / "evaluation" / "scores.json").read_text())
    assert scores["sentences"] == 16 and scores["decoding"] == "beam search"
    hypotheses = (exports / "evaluation" / "hypotheses.txt").read_text().splitlines()
    assert len(hypotheses) == 16 and hypotheses[0] == "I am a student."
