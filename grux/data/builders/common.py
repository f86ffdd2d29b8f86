"""Shared machinery of the grux TFDS builders: source files, checksums, readers, base class.

Where the raw files come from
-----------------------------
Every builder lists its raw files as :class:`SourceFile` entries (path under the data root,
sha256, canonical public URL pinned to a commit). ``download_and_prepare`` takes them from
one of two places:

* **local** (no network): when ``DownloadConfig(manual_dir=ROOT)`` is given, every file must
  exist at ``ROOT/<path>``, laid out like the shared data directory, e.g.
  ``ROOT/ptb/ptb.valid.txt`` or ``ROOT/polyphonic_music/JSB_Chorales.mat``. A missing file is
  an error (there is no silent fallback to the network).
* **download**: without a ``manual_dir``, each file is fetched from its URL with
  ``dl_manager.download``.

Either way the sha256 of every file is checked before anything is parsed; a missing file
raises :class:`MissingSourceFileError` and a corrupt one :class:`SourceChecksumError`, both
naming the file path and the expected sha256 (and the actual one when corrupt). Both derive
from :class:`SourceFileError`, which, like :class:`PreparedDataCorruptError` (a damaged
prepared dataset, see :mod:`grux.data.datasets`), derives from :class:`DataError`: one-line
messages that a command-line tool can print alone.

Storage
-------
All builders write ``array_record`` files (the default ``tfrecord`` writer needs TensorFlow),
keep the source order of examples (``disable_shuffling``) and are read back with
``builder.as_data_source(split)`` (random access, no TensorFlow).
"""
from __future__ import annotations

import abc
import csv
import dataclasses
import gzip
import hashlib
import io
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

GZIP_MAGIC = b"\x1f\x8b"


def github_raw(repo: str, commit: str, path: str) -> str:
    """URL of ``path`` in GitHub repository ``repo`` (``owner/name``) at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One raw file of a dataset.

    Attributes:
      path: location under the data root, e.g. ``"ptb/ptb.valid.txt"``.
      sha256: hex sha256 of the file at ``path``.
      url: canonical public URL (pinned to a commit) to download it from.
      url_sha256: sha256 of what ``url`` serves, when that differs from the local copy (the
        local copy is a gzip of the served file); defaults to ``sha256``.
    """
    path: str
    sha256: str
    url: str
    url_sha256: str | None = None

    @property
    def download_sha256(self) -> str:
        return self.url_sha256 or self.sha256


class DataError(Exception):
    """Base of the data errors a user can act on (a missing or corrupt raw file, a corrupt
    prepared dataset). The message is one line naming the file and what to do; a command-line
    tool can catch this class and print it alone."""


class SourceFileError(DataError):
    """A raw source file is missing or does not have the expected sha256."""


class MissingSourceFileError(SourceFileError, FileNotFoundError):
    """A raw source file is not where it must be."""


class SourceChecksumError(SourceFileError, ValueError):
    """A raw source file's sha256 differs from the expected one (corrupt or wrong file)."""


class PreparedDataCorruptError(DataError):
    """A prepared dataset's file is missing, or differs from the checksum recorded when it was
    prepared, or cannot be read back. The message names the file and the command that
    re-prepares the dataset (``grux-data prepare NAME``).

    Attributes:
      path: the file found missing, changed or unreadable.
      detail: what is wrong with it, without the repair hint.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, detail: str = ""):
        super().__init__(message)
        self.path = path
        self.detail = detail or message


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | Path, expected_sha256: str, *, origin: str = "") -> Path:
    """Returns ``path`` if it exists with the expected sha256, else raises a SourceFileError."""
    path = Path(path)
    where = f" (downloaded from {origin})" if origin else ""
    if not path.is_file():
        raise MissingSourceFileError(
            f"missing source file {path}{where}; expected sha256 {expected_sha256}")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise SourceChecksumError(
            f"checksum mismatch for source file {path}{where}: expected sha256 "
            f"{expected_sha256}, got {actual}")
    return path


def local_sources(root: str | Path, sources: Mapping[str, SourceFile]) -> dict[str, Path]:
    """Checks ``root/<path>`` of every source and returns ``{key: path}`` (no network).

    All missing files are named in one :class:`MissingSourceFileError`.
    """
    paths = {k: Path(root) / s.path for k, s in sources.items()}
    missing = [f"{paths[k]} (expected sha256 {s.sha256})"
               for k, s in sources.items() if not paths[k].is_file()]
    if missing:
        raise MissingSourceFileError("missing source file(s): " + "; ".join(missing))
    return {k: verify_file(paths[k], s.sha256) for k, s in sources.items()}


def download_sources(dl_manager: tfds.download.DownloadManager,
                     sources: Mapping[str, SourceFile]) -> dict[str, Path]:
    """Downloads every source from its URL, checks it and returns ``{key: path}``."""
    paths = dl_manager.download({k: s.url for k, s in sources.items()})
    return {k: verify_file(Path(paths[k]), s.download_sha256, origin=s.url)
            for k, s in sources.items()}


# ---------------------------------------------------------------------------------- readers
def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The whole text of a file, gunzipped first when it is a gzip (by its magic bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    return data.decode(encoding)


def read_lines(path: str | Path, encoding: str = "utf-8", *, strip: bool = True) -> list[str]:
    """Newline-terminated lines of a text file, without the newline; with ``strip`` also
    without surrounding whitespace.

    A whitespace-only fragment after the last newline (PTB char files end in ``"\\n "``) is
    not a line. Empty lines are kept. Only ``"\\n"`` ends a line (unlike ``str.splitlines``).
    """
    pieces = read_text(path, encoding).split("\n")
    if not pieces[-1].strip():
        pieces.pop()
    return [p.strip() for p in pieces] if strip else pieces


def read_csv_rows(path: str | Path, encoding: str = "utf-8") -> list[list[str]]:
    """All rows (header first) of a CSV file, gunzipped when needed."""
    return list(csv.reader(io.StringIO(read_text(path, encoding))))


def read_dated_csv(path: str | Path, encoding: str = "utf-8"
                   ) -> tuple[list[str], list[str], np.ndarray]:
    """Reads a CSV whose first column is a date and the others numbers.

    Returns ``(columns, dates, values)``: the numeric column names in file order, the date
    strings as written, and a float32 ``(T, len(columns))`` array (parsed as float64, then
    rounded to float32).
    """
    header, *rows = read_csv_rows(path, encoding)
    dates = [r[0] for r in rows]
    values = np.array([r[1:] for r in rows], dtype=np.float64).astype(np.float32)
    return header[1:], dates, values.reshape(len(rows), len(header) - 1)


# ---------------------------------------------------------------------------- text layout
def text_features() -> tfds.features.FeaturesDict:
    """One text per example: ``{"text": str}``."""
    return tfds.features.FeaturesDict({"text": tfds.features.Text()})


# ------------------------------------------------------------------------ time-series layout
SERIES_FULL_SPLIT = "full"


@dataclasses.dataclass(frozen=True)
class SeriesSpec:
    """A dated CSV series: its source, expected columns and rows, and split borders.

    ``borders`` maps split name to row range ``[start, stop)``; empty for a series without
    a standard split (then only the ``full`` split exists).
    """
    source: SourceFile
    columns: tuple[str, ...]
    rows: int
    borders: Mapping[str, tuple[int, int]]
    encoding: str = "utf-8"


def series_features(num_columns: int) -> tfds.features.FeaturesDict:
    """Features of one series example: ``values`` float32 (T, C), ``dates`` (T,) str,
    ``columns`` (C,) str."""
    return tfds.features.FeaturesDict({
        "values": tfds.features.Tensor(shape=(None, num_columns), dtype=np.float32),
        "dates": tfds.features.Tensor(shape=(None,), dtype=np.object_),
        "columns": tfds.features.Tensor(shape=(num_columns,), dtype=np.object_),
    })


def series_split_examples(columns: Sequence[str], dates: Sequence[str], values: np.ndarray,
                          borders: Mapping[str, tuple[int, int]]) -> dict[str, list[dict]]:
    """One example per split: rows ``[start, stop)`` of each border, plus the whole series
    under the ``full`` split."""
    def example(start: int, stop: int) -> dict:
        return {"values": values[start:stop],
                "dates": np.array(dates[start:stop], dtype=object),
                "columns": np.array(columns, dtype=object)}
    out = {split: [example(*b)] for split, b in borders.items()}
    out[SERIES_FULL_SPLIT] = [example(0, len(dates))]
    return out


# ------------------------------------------------------------------------------ base class
class LocalDatasetInfo(tfds.core.DatasetInfo):
    """DatasetInfo that never looks for pre-computed metadata on TFDS's GCS bucket.

    TFDS calls ``initialize_from_bucket`` whenever a builder of an unprepared dataset is
    created; it makes a ``tempfile.mkdtemp("tfds")`` folder *before* finding out that GCS
    access is disabled and never removes it, so each builder construction left an empty
    ``tmp*tfds`` folder in the system temp dir. grux datasets are not on that bucket."""

    def initialize_from_bucket(self) -> None:
        return None


class GruxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the grux builders: array_record output, source order kept, checked sources.

    Subclasses set ``name``, ``DESCRIPTION``/``HOMEPAGE``/``CITATION`` and ``SOURCES`` (or
    override :meth:`source_files`, e.g. per config) and implement :meth:`features` and
    :meth:`split_examples`. Prepare with
    ``builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
    manual_dir=ROOT))`` to read local files under ``ROOT`` (see the module docstring), or
    without ``manual_dir`` to download them.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""
    SOURCES: dict[str, SourceFile] = {}

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls) -> None:
        """No code path: grux builders ship no TFDS checksums.tsv (sha256s live in
        ``SOURCES``), and TFDS's module-path lookup would need ``importlib_resources``,
        which is not installed."""
        return None

    def __init__(self, *, file_format: str = "array_record", **kwargs: Any):
        super().__init__(file_format=file_format, **kwargs)
        self._local_root: Path | None = None

    def source_files(self) -> dict[str, SourceFile]:
        """``{key: SourceFile}`` of the raw files of this builder (config)."""
        return self.SOURCES

    @abc.abstractmethod
    def features(self) -> tfds.features.FeaturesDict:
        """The feature spec of one example."""

    @abc.abstractmethod
    def split_examples(self, paths: dict[str, Path]) -> Mapping[str, Iterable[dict]]:
        """``{split: examples in order}`` given ``{key: checked local path}`` of the sources."""

    def _info(self) -> tfds.core.DatasetInfo:
        return LocalDatasetInfo(
            builder=self, description=self.DESCRIPTION, features=self.features(),
            homepage=self.HOMEPAGE, citation=self.CITATION, disable_shuffling=True)

    # TFDS prints "Downloading and preparing dataset Unknown size ..." and "Dataset ...
    # downloaded and prepared to ..." from these two methods (termcolor, to stdout); grux
    # prints its own one line per preparation (grux.data.datasets.prepare).
    def _log_download_bytes(self) -> None:
        return None

    def _log_download_done(self) -> None:
        return None

    def _download_and_prepare(self, dl_manager, download_config):
        self._local_root = (Path(download_config.manual_dir)
                            if download_config and download_config.manual_dir else None)
        return super()._download_and_prepare(dl_manager, download_config)

    def _split_generators(self, dl_manager):
        sources = self.source_files()
        if self._local_root is not None:
            paths = local_sources(self._local_root, sources)
        else:
            paths = download_sources(dl_manager, sources)
        return {split: self._generate_examples(examples=examples)
                for split, examples in self.split_examples(paths).items()}

    def _generate_examples(self, examples: Iterable[dict]):
        yield from enumerate(examples)


class SeriesBuilder(GruxBuilder, skip_registration=True):
    """Base of the dated-CSV series builders (ETT, weather, airline passengers).

    Splits: one example per split in ``spec().borders`` (rows ``[start, stop)``) plus
    ``full``, the whole series; features per :func:`series_features`. Subclasses set
    ``SPEC`` or override :meth:`spec` (per config).
    """

    SPEC: SeriesSpec

    def spec(self) -> SeriesSpec:
        return self.SPEC

    def source_files(self):
        return {"csv": self.spec().source}

    def features(self):
        return series_features(len(self.spec().columns))

    def split_examples(self, paths):
        spec = self.spec()
        columns, dates, values = read_dated_csv(paths["csv"], spec.encoding)
        if tuple(columns) != spec.columns or len(dates) != spec.rows:
            raise ValueError(f"{paths['csv']}: got {len(dates)} rows of {columns}, expected "
                             f"{spec.rows} rows of {list(spec.columns)}")
        return series_split_examples(columns, dates, values, spec.borders)
