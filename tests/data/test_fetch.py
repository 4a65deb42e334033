import hashlib
import zipfile
from pathlib import Path

import pytest

from keras_seq2seq.data import fetch
from keras_seq2seq.errors import InputError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tatoeba-sample.txt"


def _sides(path):
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {line[0] for line in lines}, {line[1] for line in lines}, len(lines)


def test_split_is_deterministic_and_keeps_sentences_in_one_split(tmp_path):
    archive = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        # Duplicate sentences on purpose: pairs sharing a side must stay together.
        text = FIXTURE.read_text(encoding="utf-8")
        handle.writestr("fra.txt", text + "I am a student.\tJe suis élève.\tx\nI'm a pupil.\tJe suis élève.\tx\n")
    counts = fetch.split_pair_file(archive, tmp_path / "a")
    fetch.split_pair_file(archive, tmp_path / "b")
    assert counts["train"] + counts["dev"] + counts["test"] == 402
    for name in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"{name}.txt").read_bytes() == (tmp_path / "b" / f"{name}.txt").read_bytes()
    train_en, train_fr, _ = _sides(tmp_path / "a" / "train.txt")
    for name in ("dev", "test"):
        english, french, _ = _sides(tmp_path / "a" / f"{name}.txt")
        assert not english & train_en and not french & train_fr
    assert "CC-BY 2.0" in (tmp_path / "a" / "_about.txt").read_text()


def test_the_corpus_directory_of_the_environment_is_preferred(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "train.txt").write_text("a\tb\tc\n")
    monkeypatch.setenv("KERAS_SEQ2SEQ_CORPUS", str(shared))
    monkeypatch.setenv("KERAS_SEQ2SEQ_CACHE", str(tmp_path / "cache"))  # never fetched: it would fail the test
    with pytest.raises(InputError, match=f"KERAS_SEQ2SEQ_CORPUS={shared} lacks {shared / 'dev.txt'}"):
        fetch.default_corpus_files()
    (shared / "dev.txt").write_text("a\tb\tc\n")
    assert fetch.default_corpus_files() == {"train": shared / "train.txt", "dev": shared / "dev.txt"}


def test_cached_zip_is_used_only_with_the_right_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SEQ2SEQ_CACHE", str(tmp_path))
    (tmp_path / "fra-eng.zip").write_bytes(b"not the corpus")
    monkeypatch.setattr(fetch, "FRA_ENG_SHA256", hashlib.sha256(b"not the corpus").hexdigest())
    assert fetch.fetch_fra_eng_zip() == tmp_path / "fra-eng.zip"
