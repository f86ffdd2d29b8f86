"""LibriSpeech ASR corpus (Panayotov et al., ICASSP 2015; OpenSLR resource 12): read English.

About 1,000 hours of read English speech from LibriVox audiobooks, segmented and aligned into
utterances of up to ~35 s, FLAC, 16-bit PCM mono at 16 kHz, with upper-case transcripts
(letters, apostrophes and spaces). Licence CC BY 4.0. Seven subsets, one split each:

================  ===================  ==========  ======  ========  ==================
split             corpus subset        utterances  hours   speakers  archive (bytes)
================  ===================  ==========  ======  ========  ==================
train_clean100    train-clean-100          28,539   100.6       251   6,387,309,499
train_clean360    train-clean-360         104,014   363.6       921  23,049,477,885
train_other500    train-other-500         148,688   496.7     1,166  30,593,501,606
dev_clean         dev-clean                 2,703     5.4        40     337,926,286
dev_other         dev-other                 2,864     5.3        33     314,305,928
test_clean        test-clean                2,620     5.4        40     346,663,984
test_other        test-other                2,939     5.1        33     328,757,843
================  ===================  ==========  ======  ========  ==================

The splits are **speaker-disjoint** by the corpus's own design (each speaker's recordings are
in exactly one subset); preparation checks it for the subsets it reads. The split names are
those of TFDS's own builder for this corpus: underscores rather than the folders' hyphens,
which TFDS's shard file names use as separators
(``librispeech-dev_clean.array_record-00000-of-00001``). The reader
:func:`grux.data.datasets.librispeech` accepts the folder names too (:data:`SPLIT_OF_FOLDER`).

Each example is one utterance: ``audio`` int16 ``(T,)`` (the FLAC's samples, 16 kHz),
``text`` str (the transcript line after the id, as in the corpus: upper case), ``speaker``
int, ``chapter`` int, ``id`` str (``<speaker>-<chapter>-<utterance>``, e.g.
``84-121123-0000``). Examples are in source order: speaker, chapter, utterance (numerically).
Prepared as int16, a split takes about 115 MB per hour of audio (train_clean100 ~11.6 GB,
all seven ~113 GB), more than the FLAC archives (~61 GB).

Where the data comes from
-------------------------
* **local** (no network): with a data root (``DownloadConfig(manual_dir=ROOT)``, i.e. the
  ``data_dir`` of :mod:`grux.data.datasets`), the archives must already be extracted there:
  ``ROOT/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` and
  ``<speaker>-<chapter>-<utterance>.flac`` (``tar xzf train-clean-100.tar.gz -C ROOT`` for
  each archive; ``LibriSpeech/SPEAKERS.TXT`` and the other top-level files are not read).
  Every subset folder must be there: the missing ones are named in one
  :class:`MissingSourceFileError` (no fallback to a 60 GB download). The extracted files have
  no published checksums; instead the layout is checked in full before any audio is read:
  a chapter folder without its ``trans.txt``, a transcript line whose FLAC is missing, a FLAC
  without a transcript line, a malformed line or id, a speaker in two subsets, or (for the
  real subsets) an utterance count other than the table's is an error naming the file.
* **download**: without a data root, the seven ``.tar.gz`` archives are fetched from
  ``https://www.openslr.org/resources/12/`` with TFDS's download manager (at most 5 at a time,
  as OpenSLR asks and as TFDS's own ``librispeech`` builder does), their size and sha256
  checked (:class:`SourceChecksumError` naming the URL), extracted next to them
  (:func:`extract_archive`; TFDS's extractor needs TensorFlow) and read as above. The
  extracted copies are removed once the dataset is prepared; the archives stay in TFDS's
  download cache, ``<prepared_dir>/downloads/``, which may be deleted.

The sizes and sha256s of :data:`SUBSETS` are copied from the ``checksums.tsv`` of TFDS's own
builder, ``tensorflow_datasets/datasets/librispeech/checksums.tsv`` in tensorflow-datasets
4.9.10 (there listed under the same URLs with ``http://``; OpenSLR serves the same files over
https). They were not recomputed here: this machine has no internet access.

A FLAC that is unreadable or not 16-bit PCM mono at 16 kHz raises :class:`FlacFormatError`
naming it. FLAC is decoded with ``soundfile`` (libsndfile), imported only when audio is read,
so the rest of :mod:`grux.data` works without it.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from grux.data.builders.common import (GruxBuilder, MissingSourceFileError, SourceChecksumError,
                                      SourceFile, SourceFileError, verify_file)

SAMPLE_RATE = 16000
CORPUS_DIR = "LibriSpeech"
HOMEPAGE = "https://www.openslr.org/12"
DOWNLOAD_URL = "https://www.openslr.org/resources/12/"
CHECKSUMS_ORIGIN = ("tensorflow_datasets/datasets/librispeech/checksums.tsv "
                    "(tensorflow-datasets 4.9.10)")
_ID = re.compile(r"([0-9]+)-([0-9]+)-([0-9]+)")


@dataclasses.dataclass(frozen=True)
class Subset:
    """One LibriSpeech subset: its split, corpus folder, archive and expected contents.

    Attributes:
      split: the TFDS split name, e.g. ``"train_clean100"``.
      folder: the corpus folder and archive stem, e.g. ``"train-clean-100"``.
      size: bytes of the archive ``<folder>.tar.gz``.
      sha256: hex sha256 of the archive.
      utterances: number of utterances, checked when preparing (``None``: not checked).
      hours: hours of audio (the paper's table of subsets).
      speakers: number of speakers.
    """
    split: str
    folder: str
    size: int
    sha256: str
    utterances: int | None
    hours: float
    speakers: int

    @property
    def archive(self) -> str:
        return f"{self.folder}.tar.gz"

    @property
    def url(self) -> str:
        return DOWNLOAD_URL + self.archive


SUBSETS: tuple[Subset, ...] = (
    Subset("train_clean100", "train-clean-100", 6387309499,
           "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2", 28539, 100.6, 251),
    Subset("train_clean360", "train-clean-360", 23049477885,
           "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf", 104014, 363.6, 921),
    Subset("train_other500", "train-other-500", 30593501606,
           "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2", 148688, 496.7, 1166),
    Subset("dev_clean", "dev-clean", 337926286,
           "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3", 2703, 5.4, 40),
    Subset("dev_other", "dev-other", 314305928,
           "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365", 2864, 5.3, 33),
    Subset("test_clean", "test-clean", 346663984,
           "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23", 2620, 5.4, 40),
    Subset("test_other", "test-other", 328757843,
           "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29", 2939, 5.1, 33),
)
SPLITS = tuple(s.split for s in SUBSETS)
# Corpus folder name -> split name ("dev-clean" -> "dev_clean"), for readers that accept both.
SPLIT_OF_FOLDER = {s.folder: s.split for s in SUBSETS}


class FlacFormatError(SourceFileError, ValueError):
    """A FLAC source is unreadable or not 16-bit PCM mono at :data:`SAMPLE_RATE`."""


class TranscriptError(SourceFileError, ValueError):
    """The transcripts and FLAC files of a LibriSpeech folder do not match up (named)."""


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance found by :func:`index_subset` (audio not read yet)."""
    id: str
    speaker: int
    chapter: int
    number: int
    text: str
    flac: Path


def read_flac(path: str | Path) -> np.ndarray:
    """The int16 samples of a 16-bit PCM mono :data:`SAMPLE_RATE` FLAC file.

    Raises:
      FlacFormatError: unreadable, not FLAC, or another sample rate, sample format or channel
        count (the message names the file).
    """
    import soundfile  # deferred: only preparing LibriSpeech needs libsndfile

    try:
        with soundfile.SoundFile(str(path)) as f:
            fmt = (f.format, f.subtype, f.channels, f.samplerate)
            if fmt != ("FLAC", "PCM_16", 1, SAMPLE_RATE):
                raise FlacFormatError(
                    f"audio file {path} is {f.channels} channel(s), {f.subtype}, "
                    f"{f.samplerate} Hz ({f.format}); expected mono 16-bit PCM FLAC at "
                    f"{SAMPLE_RATE} Hz")
            audio = f.read(dtype="int16", always_2d=False)
    except soundfile.SoundFileError as e:
        cause = " ".join(str(e).split())
        raise FlacFormatError(f"cannot read FLAC file {path}: {cause}") from e
    return np.ascontiguousarray(audio, dtype=np.int16)


def _numeric_dirs(folder: Path, what: str) -> list[Path]:
    """The sub-folders of ``folder`` (speakers or chapters), in numeric order; a sub-folder
    whose name is not a number is an error naming it. Files are ignored."""
    dirs = [p for p in folder.iterdir() if p.is_dir()]
    for p in dirs:
        if not p.name.isdigit():
            raise TranscriptError(f"unexpected folder {p} in LibriSpeech folder {folder}: "
                                  f"{what} folders are named by number")
    return sorted(dirs, key=lambda p: int(p.name))


def read_transcripts(path: Path, speaker: int, chapter: int) -> dict[str, str]:
    """``{id: text}`` of a ``<speaker>-<chapter>.trans.txt`` file, in file order.

    Raises:
      TranscriptError: a line without text, an id not of this speaker and chapter, or a
        repeated id (named with the file and line number).
    """
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, text = line.strip().partition(" ")
        m = _ID.fullmatch(key)
        where = f"{path} line {number}"
        if not text.strip():
            raise TranscriptError(f"{where}: no transcript after the id {key!r}")
        if not m or (int(m[1]), int(m[2])) != (speaker, chapter):
            raise TranscriptError(f"{where}: id {key!r} is not <speaker>-<chapter>-<utterance> "
                                  f"of speaker {speaker}, chapter {chapter}")
        if key in out:
            raise TranscriptError(f"{where}: id {key} appears twice")
        out[key] = text.strip()
    return out


def index_subset(folder: Path, subset: Subset) -> list[Utterance]:
    """Every utterance of an extracted subset folder (``.../LibriSpeech/<subset>``), in source
    order (speaker, chapter, utterance), checking that transcripts and FLACs match one to one.

    Raises:
      MissingSourceFileError: a chapter folder without its ``trans.txt``, or a transcript line
        whose FLAC is missing (named).
      TranscriptError: a FLAC without a transcript line, a malformed transcript, no utterance
        at all, or another count than ``subset.utterances`` (named).
    """
    utterances = []
    for speaker_dir in _numeric_dirs(folder, "speaker"):
        speaker = int(speaker_dir.name)
        for chapter_dir in _numeric_dirs(speaker_dir, "chapter"):
            chapter = int(chapter_dir.name)
            trans = chapter_dir / f"{speaker}-{chapter}.trans.txt"
            if not trans.is_file():
                raise MissingSourceFileError(f"missing LibriSpeech transcript file {trans}")
            texts = read_transcripts(trans, speaker, chapter)
            flacs = {p.stem: p for p in chapter_dir.glob("*.flac")}
            for key in texts:
                if key not in flacs:
                    raise MissingSourceFileError(
                        f"missing LibriSpeech audio file {chapter_dir / (key + '.flac')} "
                        f"(transcribed in {trans})")
            for key, p in sorted(flacs.items()):
                if key not in texts:
                    raise TranscriptError(f"audio file {p} has no transcript line in {trans}")
            utterances += [Utterance(key, speaker, chapter, int(_ID.fullmatch(key)[3]), text,
                                     flacs[key]) for key, text in texts.items()]
    if not utterances:
        raise TranscriptError(f"LibriSpeech subset folder {folder} holds no utterances")
    if subset.utterances is not None and len(utterances) != subset.utterances:
        raise TranscriptError(
            f"LibriSpeech subset folder {folder} holds {len(utterances)} utterances, expected "
            f"{subset.utterances} (an incomplete or damaged extraction of {subset.archive}?)")
    return sorted(utterances, key=lambda u: (u.speaker, u.chapter, u.number))


def check_speakers_disjoint(indices: dict[str, list[Utterance]],
                            folders: dict[str, Path]) -> None:
    """Raises :class:`TranscriptError` when a speaker has utterances in two subsets."""
    owner: dict[int, str] = {}
    for split, utterances in indices.items():
        for speaker in sorted({u.speaker for u in utterances}):
            if speaker in owner:
                raise TranscriptError(
                    f"speaker {speaker} is in both {folders[owner[speaker]] / str(speaker)} and "
                    f"{folders[split] / str(speaker)}; LibriSpeech subsets are speaker-disjoint")
            owner[speaker] = split


def extract_archive(archive: Path, dest: Path, *, origin: str = "") -> Path:
    """Extracts the ``.tar.gz`` ``archive`` into ``dest`` and returns ``dest``; a ``dest``
    already there (a complete earlier extraction: it is made by renaming) is reused.

    Python's ``tarfile`` with the ``data`` filter (no absolute paths, links out of ``dest``
    or special files) is used rather than TFDS's extractor, which needs TensorFlow.

    Raises:
      SourceFileError: the archive cannot be read (named, with ``origin``).
    """
    if dest.is_dir():
        return dest
    tmp = dest.with_name(dest.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        where = f" (downloaded from {origin})" if origin else ""
        cause = " ".join(str(e).split())
        raise SourceFileError(f"cannot extract archive {archive}{where}: "
                              f"{type(e).__name__}: {cause}") from e
    os.replace(tmp, dest)
    return dest


def _examples(utterances: Sequence[Utterance]) -> Iterator[dict]:
    for u in utterances:
        yield {"audio": read_flac(u.flac), "text": u.text, "speaker": u.speaker,
               "chapter": u.chapter, "id": u.id}


class Librispeech(GruxBuilder, skip_registration=True):
    """LibriSpeech, one split per subset; see the module docstring."""

    name = "librispeech"
    DESCRIPTION = __doc__
    HOMEPAGE = HOMEPAGE
    CITATION = ("Vassil Panayotov, Guoguo Chen, Daniel Povey, Sanjeev Khudanpur 2015, "
                "Librispeech: an ASR corpus based on public domain audio books, ICASSP 2015, "
                "pp. 5206-5210")
    MAX_SIMULTANEOUS_DOWNLOADS = 5  # as OpenSLR asks (and TFDS's librispeech builder sets)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._extracted: list[Path] = []  # archives extracted by this preparation

    def subsets(self) -> tuple[Subset, ...]:
        """The subsets prepared, one split each (all seven)."""
        return SUBSETS

    def source_files(self):
        """The archives, ``{split: SourceFile}``; ``path`` is the archive's file name (only
        downloads are archives: a data root holds the extracted ``LibriSpeech/`` folder)."""
        return {s.split: SourceFile(s.archive, s.sha256, s.url) for s in self.subsets()}

    def features(self):
        return tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "text": tfds.features.Text(),
            "speaker": tfds.features.Scalar(dtype=np.int32),
            "chapter": tfds.features.Scalar(dtype=np.int32),
            "id": tfds.features.Text()})

    def local_folders(self, root: Path) -> dict[str, Path]:
        """``{split: ROOT/LibriSpeech/<subset>}``; all missing folders named in one error."""
        folders = {s.split: root / CORPUS_DIR / s.folder for s in self.subsets()}
        missing = [f"{folders[s.split]} (extract {s.url} into {root})"
                   for s in self.subsets() if not folders[s.split].is_dir()]
        if missing:
            raise MissingSourceFileError("missing LibriSpeech subset folder(s): "
                                         + "; ".join(missing))
        return folders

    def downloaded_folders(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Path]:
        """Downloads the archives, checks size and sha256, extracts them; ``{split: folder}``."""
        subsets = {s.split: s for s in self.subsets()}
        paths = dl_manager.download({k: s.url for k, s in subsets.items()})
        for k, s in subsets.items():
            path = Path(paths[k])
            if not path.is_file():
                raise MissingSourceFileError(f"missing download {path} of {s.url}")
            size = path.stat().st_size
            if size != s.size:
                raise SourceChecksumError(f"size mismatch for source file {path} (downloaded "
                                          f"from {s.url}): expected {s.size} bytes, got {size}")
            verify_file(path, s.sha256, origin=s.url)
        folders = {}
        for k, s in subsets.items():
            dest = Path(dl_manager.download_dir) / "extracted" / f"{s.folder}-{s.sha256[:16]}"
            extract_archive(Path(paths[k]), dest, origin=s.url)
            self._extracted.append(dest)
            folders[k] = dest / CORPUS_DIR / s.folder
            if not folders[k].is_dir():
                raise MissingSourceFileError(f"archive {s.url} extracted to {dest} has no "
                                             f"folder {CORPUS_DIR}/{s.folder}")
        return folders

    def _download_and_prepare(self, dl_manager, download_config):
        # The extracted archives (~61 GB for all seven) are removed once the dataset is
        # prepared; the downloaded archives stay in TFDS's download cache (``downloads/`` of
        # the prepared dir, which may be deleted), so a re-preparation does not download again.
        self._extracted = []
        result = super()._download_and_prepare(dl_manager, download_config)
        for dest in self._extracted:
            shutil.rmtree(dest, ignore_errors=True)
        return result

    def _split_generators(self, dl_manager):
        if self._local_root is not None:
            folders = self.local_folders(self._local_root)
        else:
            folders = self.downloaded_folders(dl_manager)
        return {split: self._generate_examples(examples=examples)
                for split, examples in self.split_examples(folders).items()}

    def split_examples(self, paths):
        """``{split: examples}`` given ``{split: subset folder}``: the layout of every subset
        is checked first (:func:`index_subset`, :func:`check_speakers_disjoint`); the audio
        is then read one utterance at a time while TFDS writes."""
        subsets = {s.split: s for s in self.subsets()}
        indices = {split: index_subset(Path(paths[split]), subsets[split]) for split in subsets}
        check_speakers_disjoint(indices, {k: Path(v) for k, v in paths.items()})
        return {split: _examples(utterances) for split, utterances in indices.items()}
