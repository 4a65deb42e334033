import subprocess
import sys

import pytest

from keras_seq2seq.run_config import ConfigError, load_config


def test_the_shipped_model_configs_are_valid():
    first = load_config("training/configs/small-fr-en.yaml")
    assert first.model.preset == "small"
    assert (first.training.epochs, first.training.select_by, first.training.precision) == (6, "loss", "mixed_bfloat16")
    second = load_config("training/configs/small-fr-en-continue.yaml", ["training.init_from=saved_models/fr-en-small"])
    assert (second.training.epochs, second.training.cooldown_epochs, second.training.keep_checkpoints) == (2, 2, 2)
    assert second.transformer_config(8000, 8000) == first.transformer_config(8000, 8000)
    third = load_config("training/configs/small-fr-en-leg3.yaml", ["training.init_from=saved_models/fr-en-small"])
    assert (third.training.epochs, third.training.cooldown_epochs, third.training.lr_scale) == (2, 2, 0.2)
    assert third.transformer_config(8000, 8000) == first.transformer_config(8000, 8000)
    long = load_config("training/configs/small-fr-en-long.yaml")
    assert (long.training.epochs, long.training.cooldown_epochs, long.training.keep_checkpoints) == (12, 5, 4)
    assert long.transformer_config(8000, 8000) == first.transformer_config(8000, 8000)
    averaged = load_config("training/configs/small-fr-en-swa.yaml", ["training.init_from=saved_models/fr-en-small"])
    settings = averaged.training
    assert (settings.epochs, settings.steps_per_epoch, settings.keep_checkpoints) == (6, 256, 6)
    assert (settings.cooldown_epochs, settings.seed, settings.lr_scale) == (0, 1, 0.15)
    assert averaged.transformer_config(8000, 8000) == first.transformer_config(8000, 8000)


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.epochs=0", "training.epochs must be positive, got training.epochs=0"),
        ("training.epoch=3", "unknown key training.epoch"),
        ("training.precision=float8", "training.precision must be one of"),
        ("training.strategy=gpu", "training.strategy must be one of"),
        ("model.preset=huge", "model.preset must be one of"),
        ("model.overrides.num_heads=3", "d_model=256 and num_heads=3"),
        ("model.overrides.depth=3", "unknown key model.overrides.depth"),
        ("model.overrides.shared=1", "unknown key model.overrides.shared"),  # a local variable's name
        ("model.overrides.source_vocab_size=9", "unknown key model.overrides.source_vocab_size"),
        ("model.overrides.num_layers='3'", "num_layers must be a positive integer, got num_layers='3'"),
        ("model.overrides.tie_embeddings=0", "tie_embeddings must be true or false"),
        ("training.keep_checkpoints=-1", "training.keep_checkpoints must not be negative"),
        ("training.epochs=abc", "training.epochs must be of type int"),
        ("tokenizer.lowercase=maybe", "tokenizer.lowercase must be of type bool"),
        ("bogus.key=1", "unknown section bogus"),
        ("training.token_budget=16", "training.token_budget must be at least"),
        ("corpus.kind=aligned", "needs corpus.train and corpus.dev paths"),
        ("corpus.kind=tfds", "needs corpus.tfds_name"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config("training/configs/small-fr-en.yaml", [override])


@pytest.mark.slow
def test_train_command_fails_fast_on_a_bad_config(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  epochs: -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "keras_seq2seq.cli", "train", "--config", str(config),
         "--output", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "training.epochs must be positive, got training.epochs=-1" in result.stderr
    assert not (tmp_path / "run").exists()


def test_translate_command_greedy_n_best_and_sampling(tiny_run, capsys, monkeypatch):
    import io

    from keras_seq2seq import cli

    run_dir = str(tiny_run[0])
    cli.main(["translate", "--model", run_dir, "Je suis étudiant."])
    assert capsys.readouterr().out == "I am a student.\n"
    cli.main(["translate", "--model", run_dir, "--n-best", "2", "Je suis étudiant."])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith("\tI am a student.")
    assert float(lines[0].split("\t")[0]) >= float(lines[1].split("\t")[0])
    cli.main(["translate", "--model", run_dir, "--sample", "--top-k", "1", "--temperature", "2", "Je suis étudiant."])
    assert capsys.readouterr().out == "I am a student.\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("Je suis étudiant.\n\n"))
    cli.main(["translate", "--model", run_dir])
    assert capsys.readouterr().out.splitlines()[0] == "I am a student."


@pytest.mark.parametrize("options", [[], ["--n-best", "3"], ["--sample", "--temperature", "3", "--seed", "7"]])
def test_translate_command_eager_and_compiled_agree(tiny_run, capsys, options):
    """A few sentences run eagerly (`--engine auto`'s choice for up to 64), more compiled: the same
    outputs. Sampling is always compiled (XLA draws other numbers from a seed than TensorFlow's kernels)."""
    from keras_seq2seq import cli

    assert cli.EAGER_SENTENCES == 64
    sources = ["Je suis étudiant.", "", "Va !", "Il fait beau aujourd'hui.", "   "]
    outputs = {}
    for engine in ("auto" if "--sample" in options else "eager", "compiled"):
        cli.main(["translate", "--model", str(tiny_run[0]), "--engine", engine, *options, *sources])
        outputs[engine] = capsys.readouterr().out
    first, compiled = outputs.values()
    assert first == compiled and len(compiled.splitlines()) == len(sources) * (3 if "--n-best" in options else 1)
    assert compiled.splitlines()[0].endswith("I am a student.") or "--sample" in options


def test_evaluate_command_writes_scores_and_hypotheses(tiny_run, tmp_path):
    from pathlib import Path

    from keras_seq2seq import cli

    sample = Path(__file__).resolve().parent / "fixtures" / "tatoeba-sample.txt"
    scores = cli.command_evaluate(cli.build_parser().parse_args(
        ["evaluate", "--model", str(tiny_run[0]), "--data", str(sample), "--limit", "64",
         "--output", str(tmp_path / "evaluation")]
    ))
    hypotheses = (tmp_path / "evaluation" / "hypotheses.txt").read_text().splitlines()
    assert len(hypotheses) == 64 and hypotheses[0] == "I am a student."
    assert scores["bleu"] > 80 and "case:mixed" in scores["bleu_signature"]
