"""Reading parallel corpora: Tatoeba/manythings pair files, TSVs and aligned text files.

Every reader cleans text the same way (`normalize_text`) and accounts for every line
it does not keep: bad lines are counted by reason with their first line numbers in a
`ReadReport`, or, with `strict=True`, raise `CorpusError` naming file and line.
"""

import dataclasses
import re
import unicodedata
import zipfile
from pathlib import Path

from keras_seq2seq.errors import InputError

# No-break, narrow no-break and thin spaces (French typography puts them before
# punctuation) and other odd blanks become plain spaces; zero-width characters go.
_SPACES = re.compile(r"[\u00a0\u202f\u2009\u2007\u2002\u2003\u3000\t]+")
_ZERO_WIDTH = re.compile(r"[\u200b\u200c\u200d\ufeff]")
_MULTIPLE_SPACES = re.compile(r" {2,}")

DEFAULT_MAX_CHARS = 1000
FIRST_LINES_KEPT = 10


def normalize_text(text):
    """NFC, plain spaces for no-break and thin spaces, no zero-width characters, single spaces."""
    text = unicodedata.normalize("NFC", text)
    text = _ZERO_WIDTH.sub("", _SPACES.sub(" ", text))
    return _MULTIPLE_SPACES.sub(" ", text).strip()


class CorpusError(InputError):
    """A bad line in strict mode: names the file, the line and what is wrong."""


@dataclasses.dataclass
class ReadReport:
    """What a reader kept and what it skipped, by reason, with the first line numbers of each."""

    path: str
    kept: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)
    first_lines: dict = dataclasses.field(default_factory=dict)

    def skip(self, reason, line_number):
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        lines = self.first_lines.setdefault(reason, [])
        if len(lines) < FIRST_LINES_KEPT:
            lines.append(line_number)

    @property
    def total_skipped(self):
        return sum(self.skipped.values())

    def summary(self):
        if not self.skipped:
            return f"{self.path}: kept {self.kept} pairs, skipped none"
        reasons = "; ".join(
            f"{count} {reason} (first at lines {', '.join(map(str, self.first_lines[reason]))})"
            for reason, count in sorted(self.skipped.items())
        )
        return f"{self.path}: kept {self.kept} pairs, skipped {self.total_skipped}: {reasons}"


def _open_lines(path):
    """Raw lines (bytes) of a text file, or of the single `.txt` member of a zip named like it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus file not found: {path}")
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.endswith(".txt") and not name.startswith("_")]
            if len(members) != 1:
                raise CorpusError(f"{path}: expected one pair file in the archive, found {members}")
            return archive.read(members[0]).splitlines()
    return path.read_bytes().splitlines()


def _check(report, strict, path, line_number, reason):
    if strict:
        raise CorpusError(f"{path}, line {line_number}: {reason}")
    report.skip(reason, line_number)


def _collect(path, raw_pairs, strict, max_chars):
    """Cleans `(line_number, raw_source, raw_target, *extra)` (raw = bytes, or None when missing).

    Extra raw columns, when given, are decoded and appended to each kept pair.
    """
    report = ReadReport(str(path))
    pairs = []
    for line_number, raw_source, raw_target, *extra in raw_pairs:
        if raw_source is None or raw_target is None:
            _check(report, strict, path, line_number, "missing tab-separated column")
            continue
        try:
            source, target = normalize_text(raw_source.decode("utf-8")), normalize_text(raw_target.decode("utf-8"))
        except UnicodeDecodeError:
            _check(report, strict, path, line_number, "invalid UTF-8")
            continue
        if not source or not target:
            _check(report, strict, path, line_number, "empty side")
            continue
        if len(source) > max_chars or len(target) > max_chars:
            _check(report, strict, path, line_number, f"side longer than {max_chars} characters")
            continue
        extra = tuple((raw or b"").decode("utf-8", "replace").strip() for raw in extra)
        pairs.append((source, target, *extra))
    report.kept = len(pairs)
    return pairs, report


def read_columns(
    path, source_column, target_column, strict=False, max_chars=DEFAULT_MAX_CHARS, extra_columns=()
):
    """Pairs `(source, target)` from a tab-separated file (or zip of one), with a `ReadReport`.

    Lines that are not valid UTF-8, lack the needed columns, have an empty side after
    cleaning or a side longer than `max_chars` characters are skipped and counted
    (or raise `CorpusError` when `strict`). Trailing blank lines are ignored. The
    `extra_columns` (e.g. Tatoeba's attribution) are appended to each pair.
    """
    lines = _open_lines(path)
    needed = max(source_column, target_column) + 1
    while lines and not lines[-1].strip():
        lines.pop()

    def raw_pairs():
        for line_number, line in enumerate(lines, start=1):
            columns = line.rstrip(b"\r").split(b"\t") + [None] * (needed + len(extra_columns))
            yield line_number, columns[source_column], columns[target_column], *(columns[i] for i in extra_columns)

    return _collect(path, raw_pairs(), strict, max_chars)


def read_tatoeba(path, direction="other-en", strict=False, max_chars=DEFAULT_MAX_CHARS):
    """Pairs from a manythings/Tatoeba file (`English<TAB>Other<TAB>attribution`).

    `direction` is "other-en" (e.g. French -> English, the default task) or "en-other".
    """
    if direction not in ("other-en", "en-other"):
        raise ValueError(f"direction must be 'other-en' or 'en-other', got direction={direction!r}")
    columns = (1, 0) if direction == "other-en" else (0, 1)
    return read_columns(path, *columns, strict=strict, max_chars=max_chars)


def read_aligned(source_path, target_path, strict=False, max_chars=DEFAULT_MAX_CHARS):
    """Pairs from two aligned plain-text files, one sentence a line."""
    source_lines, target_lines = _open_lines(source_path), _open_lines(target_path)
    if len(source_lines) != len(target_lines):
        raise CorpusError(
            f"{source_path} has {len(source_lines)} lines but {target_path} has {len(target_lines)}"
        )
    raw_pairs = (
        (number, source, target)
        for number, (source, target) in enumerate(zip(source_lines, target_lines), start=1)
    )
    return _collect(source_path, raw_pairs, strict, max_chars)
