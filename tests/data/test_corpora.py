import zipfile
from pathlib import Path

import pytest

from keras_seq2seq.data.corpora import CorpusError, normalize_text, read_aligned, read_columns, read_tatoeba

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tatoeba-sample.txt"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "tatoeba-fr-en"


def test_reads_the_fixture_french_to_english():
    pairs, report = read_tatoeba(FIXTURE)
    assert report.kept == len(pairs) == 400 and report.total_skipped == 0
    assert pairs[0] == ("Je suis étudiant.", "I am a student.")


def test_english_to_other_direction():
    pairs, _ = read_tatoeba(FIXTURE, direction="en-other")
    assert pairs[0] == ("I am a student.", "Je suis étudiant.")
    with pytest.raises(ValueError, match="direction='fr-en'"):
        read_tatoeba(FIXTURE, direction="fr-en")


@pytest.mark.skipif(not SHARED.exists(), reason="no ../shared on this machine")
def test_reads_shared_train_and_dev():
    train, train_report = read_tatoeba(SHARED / "train.txt")
    dev, dev_report = read_tatoeba(SHARED / "dev.txt")
    assert (len(train), len(dev)) == (167346, 5303)
    assert train_report.total_skipped == dev_report.total_skipped == 0


def test_no_break_spaces_are_normalised():
    assert normalize_text("Quoi\u00a0?\u202f! a\u200bb  c ") == "Quoi ? ! ab c"
    assert normalize_text("e\u0301te\u0301") == "été"  # NFC


@pytest.fixture
def bad_file(tmp_path):
    lines = [
        b"Hello.\tBonjour.\tattribution",
        b"no tab at all",
        b"Empty French.\t   \tattribution",
        b"Bad bytes \xff\xfe.\tMauvais.\tattribution",
        b"Long.\t" + b"x" * 50 + b"\tattribution",
        b"Fine.\tBien.\tattribution",
        b"",
        b"",
    ]
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\n".join(lines))
    return path


def test_bad_lines_are_counted_with_line_numbers(bad_file):
    pairs, report = read_tatoeba(bad_file, max_chars=40)
    assert pairs == [("Bonjour.", "Hello."), ("Bien.", "Fine.")]
    assert report.skipped == {
        "missing tab-separated column": 1,
        "empty side": 1,
        "invalid UTF-8": 1,
        "side longer than 40 characters": 1,
    }
    assert report.first_lines == {
        "missing tab-separated column": [2],
        "empty side": [3],
        "invalid UTF-8": [4],
        "side longer than 40 characters": [5],
    }
    assert "skipped 4" in report.summary() and "first at lines 2" in report.summary()


def test_strict_mode_names_file_and_line(bad_file):
    with pytest.raises(CorpusError, match=r"bad\.txt, line 2: missing tab-separated column"):
        read_tatoeba(bad_file, strict=True)


def test_zip_archive_is_read_like_its_text(tmp_path):
    archive = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(FIXTURE, "fra.txt")
        handle.writestr("_about.txt", "about")
    assert read_tatoeba(archive)[0] == read_tatoeba(FIXTURE)[0]


def test_tsv_and_aligned_files(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("un\tone\ndeux\ttwo\n")
    assert read_columns(tsv, 0, 1)[0] == [("un", "one"), ("deux", "two")]
    (tmp_path / "src.txt").write_text("un\ndeux\n")
    (tmp_path / "tgt.txt").write_text("one\ntwo\n")
    assert read_aligned(tmp_path / "src.txt", tmp_path / "tgt.txt")[0] == [("un", "one"), ("deux", "two")]
    (tmp_path / "short.txt").write_text("one\n")
    with pytest.raises(CorpusError, match="has 2 lines but"):
        read_aligned(tmp_path / "src.txt", tmp_path / "short.txt")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        read_tatoeba(tmp_path / "nowhere.txt")
