"""Obtaining the default corpus (Tatoeba French-English, manythings release of 2020-08-23).

Where the environment variable `KERAS_SEQ2SEQ_CORPUS` names a directory, its `train.txt`
and `dev.txt` are used as they are (`dev.py` sets it to the project's
`../shared/data/tatoeba-fr-en/` when that exists). Elsewhere the corpus comes from the
source archive of the PyPI package `nmt==0.0.6`, which carries `fra-eng.zip`: it is
fetched with pip, checked against its sha256, cached, and split deterministically so that
no English or French sentence occurs in two splits.

Data license: CC-BY 2.0 (France), from tatoeba.org via manythings.org/anki.
"""

import hashlib
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

FRA_ENG_SHA256 = "dcdc2b15b5f2ffaca67292fbd6d671b95e404413d0d0cc3b998692b5ac51920a"
ATTRIBUTION = "Tatoeba (tatoeba.org) via manythings.org/anki, CC-BY 2.0 (France)"
CORPUS_ENV = "KERAS_SEQ2SEQ_CORPUS"
DEV_FRACTION = 0.03
TEST_FRACTION = 0.03


def cache_dir():
    return Path(os.environ.get("KERAS_SEQ2SEQ_CACHE", Path.home() / ".cache" / "keras_seq2seq"))


def default_corpus_files():
    """`{"train": path, "dev": path}` of the default corpus: `$KERAS_SEQ2SEQ_CORPUS`, else fetched and cached."""
    if os.environ.get(CORPUS_ENV):
        directory = Path(os.environ[CORPUS_ENV])
        files = {"train": directory / "train.txt", "dev": directory / "dev.txt"}
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            from keras_seq2seq.errors import InputError

            raise InputError(f"{CORPUS_ENV}={directory} lacks {', '.join(missing)}; unset it to fetch the corpus")
        return files
    target = cache_dir() / "tatoeba-fr-en"
    if not (target / "train.txt").exists():
        split_pair_file(fetch_fra_eng_zip(), target)
    return {"train": target / "train.txt", "dev": target / "dev.txt"}


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fetch_fra_eng_zip():
    """Path of a verified `fra-eng.zip` in the cache, downloading the `nmt` sdist with pip if needed."""
    cached = cache_dir() / "fra-eng.zip"
    if cached.exists() and _sha256(cached) == FRA_ENG_SHA256:
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    print("fetching fra-eng.zip from the source archive of the PyPI package nmt==0.0.6", flush=True)
    with tempfile.TemporaryDirectory() as work:
        # The sdist's setup.py imports pkg_resources: build its metadata with an old setuptools.
        build_env = Path(work) / "env"
        pip = [str(build_env / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
        for command in (
            [sys.executable, "-m", "venv", str(build_env)],
            [*pip, "install", "setuptools<70", "wheel"],
            [*pip, "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
             "-d", work, "nmt==0.0.6"],
        ):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        archive = next(Path(work).glob("nmt-0.0.6.tar.gz"))
        with tarfile.open(archive) as sdist:
            member = sdist.getmember("nmt-0.0.6/data/fra-eng.zip")
            data = sdist.extractfile(member).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != FRA_ENG_SHA256:
        raise RuntimeError(f"fra-eng.zip has sha256 {digest}, expected {FRA_ENG_SHA256}")
    cached.write_bytes(data)
    return cached


def split_pair_file(source, output_dir, seed=20200823):
    """Splits a pair file (or its zip) into train/dev/test with no sentence shared across splits.

    Pairs sharing an English or a French sentence are grouped (connected components)
    and a whole group goes to one split, chosen by a seeded shuffle of the groups.
    """
    from keras_seq2seq.data.corpora import _open_lines

    lines = [line for line in _open_lines(source) if line.strip()]
    parent = list(range(len(lines)))

    def find(index):
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_seen = {}
    for index, line in enumerate(lines):
        columns = line.split(b"\t")
        for side, sentence in enumerate(columns[:2]):
            key = (side, sentence.strip())
            if key in first_seen:
                parent[find(index)] = find(first_seen[key])
            else:
                first_seen[key] = index
    groups = {}
    for index in range(len(lines)):
        groups.setdefault(find(index), []).append(index)
    ordered = sorted(groups.values(), key=lambda members: members[0])
    random.Random(seed).shuffle(ordered)
    dev_size, test_size = int(len(lines) * DEV_FRACTION), int(len(lines) * TEST_FRACTION)
    splits = {"dev": [], "test": [], "train": []}
    for members in ordered:
        name = "dev" if len(splits["dev"]) < dev_size else "test" if len(splits["test"]) < test_size else "train"
        splits[name].extend(members)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, members in splits.items():
        (output_dir / f"{name}.txt").write_bytes(b"".join(lines[i] + b"\n" for i in sorted(members)))
    (output_dir / "_about.txt").write_text(f"Split of {Path(source).name} (seed {seed}). {ATTRIBUTION}\n")
    return {name: len(members) for name, members in splits.items()}
