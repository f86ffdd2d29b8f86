"""Free Spoken Digit Dataset (Jackson et al., Zenodo 10.5281/zenodo.1342401): spoken digits 0-9.

3,000 real recordings: 6 speakers (george, jackson, lucas, nicolas, theo, yweweler) x 10
digits x 50 recordings (index 0-49), WAV, 16-bit PCM mono 8 kHz, trimmed of leading and
trailing silence; 1,148..18,262 samples each (0.14..2.28 s). The files are
``fsdd/recordings/{digit}_{speaker}_{index}.wav`` of the data root, taken from the dataset's
repository at commit 26eb9aaf (the tag TFDS ``spoken_digit`` 1.0.9 uses lacks speaker lucas).

Each example is one recording: ``audio`` int16 ``(T,)`` (the WAV's samples, 8 kHz),
``label`` the digit 0-9 (from the file name), ``speaker`` str, ``index`` int (0-49), ``file``
str (the file name). Splits, all in the same source order (digit, speaker, index):

* ``train``: index 5-49 of every speaker and digit (2,700), the dataset's official split;
* ``test``: index 0-4 (300);
* ``full``: every recording (3,000), from which speaker-independent splits are made with the
  ``speaker`` field (TFDS reserves the split name ``all``; this is the name the series
  builders use for "everything").

The sha256 of every recording is in ``fsdd_sha256.txt`` beside this module: a byte-for-byte
copy of the shared data's ``fsdd/SHA256SUMS`` (so its own sha256 is the one the shared README
states, :data:`SHA256_LIST_SHA256`, checked before the list is used). It ships with the
package rather than being read from the data root so that a download, which has no data root,
is checked against the same sums. A file that is not 16-bit PCM mono 8 kHz raises
:class:`WavFormatError` naming it.
"""
from __future__ import annotations

import functools
import re
import wave
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from grux.data.builders.common import (GruxBuilder, MissingSourceFileError, SourceFile,
                                      SourceFileError, github_raw, sha256_file)

SAMPLE_RATE = 8000
NUM_CLASSES = 10
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
RECORDINGS_PER_SPEAKER_AND_DIGIT = 50
TEST_INDICES = range(0, 5)  # official split: index 0-4 test, 5-49 train
FULL_SPLIT = "full"
RECORDINGS_DIR = "fsdd/recordings"
SHA256_LIST = Path(__file__).with_name("fsdd_sha256.txt")
# sha256 of fsdd/SHA256SUMS given in shared/data/README.md (= of SHA256_LIST, its copy).
SHA256_LIST_SHA256 = "1801eae019c063377d98f831d3f93574f259475df7332bb0e3d1b080fb5e6959"
_REPO = ("Jakobovski/free-spoken-digit-dataset", "26eb9aaf76e81b692f806f9140c2d2777410d7a1")
_FILE_NAME = re.compile(r"([0-9])_([a-z]+)_([0-9]+)\.wav")
# More missing files than this are summarised (count + first few) instead of listed in full.
_MAX_MISSING_LISTED = 10


class WavFormatError(SourceFileError, ValueError):
    """A WAV source is unreadable or not 16-bit PCM mono at :data:`SAMPLE_RATE`."""


def parse_file_name(name: str) -> tuple[int, str, int]:
    """``(digit, speaker, index)`` of a recording's file name ``{digit}_{speaker}_{index}.wav``."""
    m = _FILE_NAME.fullmatch(name)
    if not m:
        raise ValueError(f"not an FSDD recording name: {name!r}")
    return int(m[1]), m[2], int(m[3])


def read_sha256_list(path: str | Path) -> dict[str, str]:
    """``{file name: sha256}`` from a ``sha256sum``-style list (``<hex>  <name>`` per line)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest
    return out


def sources_from(sha256s: dict[str, str]) -> dict[str, SourceFile]:
    """``{file name: SourceFile}`` of recordings, in source order (digit, speaker, index)."""
    names = sorted(sha256s, key=parse_file_name)
    return {n: SourceFile(f"{RECORDINGS_DIR}/{n}", sha256s[n],
                          github_raw(*_REPO, f"recordings/{n}")) for n in names}


@functools.cache
def default_sources() -> dict[str, SourceFile]:
    """The 3,000 recordings with their sums from :data:`SHA256_LIST`, checked first against
    :data:`SHA256_LIST_SHA256` (a damaged package copy is an error naming it)."""
    actual = sha256_file(SHA256_LIST)
    if actual != SHA256_LIST_SHA256:
        raise SourceFileError(f"checksum list {SHA256_LIST} is damaged: sha256 {actual}, "
                              f"expected {SHA256_LIST_SHA256}; reinstall grux")
    return sources_from(read_sha256_list(SHA256_LIST))


def read_wav(path: str | Path) -> np.ndarray:
    """The int16 samples of a 16-bit PCM mono :data:`SAMPLE_RATE` WAV.

    Raises:
      WavFormatError: unreadable, or another sample rate, width or channel count (named).
    """
    try:
        with wave.open(str(path), "rb") as w:
            fmt = (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getcomptype())
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise WavFormatError(f"cannot read WAV file {path}: {e}") from e
    channels, width, rate, comp = fmt
    if (channels, width, rate, comp) != (1, 2, SAMPLE_RATE, "NONE"):
        raise WavFormatError(
            f"WAV file {path} is {channels} channel(s), {8 * width}-bit, {rate} Hz "
            f"({comp}); expected mono 16-bit PCM at {SAMPLE_RATE} Hz")
    if len(frames) % 2:
        raise WavFormatError(f"WAV file {path} has an odd number of data bytes")
    return np.frombuffer(frames, dtype="<i2").astype(np.int16)


class Fsdd(GruxBuilder, skip_registration=True):
    """Free Spoken Digit Dataset recordings; see the module docstring."""

    name = "fsdd"
    DESCRIPTION = __doc__
    HOMEPAGE = "https://github.com/Jakobovski/free-spoken-digit-dataset"
    CITATION = ("Zohar Jackson, Cesar Souza, Jason Flaks, Yuxin Pan, Hereman Nicolas, Adhish "
                "Thite 2018, Jakobovski/free-spoken-digit-dataset, Zenodo, "
                "doi:10.5281/zenodo.1342401")

    def source_files(self):
        return default_sources()

    def features(self):
        return tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
            "speaker": tfds.features.Text(),
            "index": tfds.features.Scalar(dtype=np.int32),
            "file": tfds.features.Text()})

    def _split_generators(self, dl_manager):
        # With thousands of sources, a data root without the recordings would make the
        # shared one-line error list every file; say how many are missing and name a few.
        if self._local_root is not None:
            sources = self.source_files()
            missing = [s.path for s in sources.values()
                       if not (self._local_root / s.path).is_file()]
            if len(missing) > _MAX_MISSING_LISTED:
                raise MissingSourceFileError(
                    f"missing {len(missing)} of {len(sources)} source files under "
                    f"{self._local_root / RECORDINGS_DIR}, e.g. "
                    f"{', '.join(str(self._local_root / p) for p in missing[:3])}")
        return super()._split_generators(dl_manager)

    def split_examples(self, paths):
        examples = []
        for name in sorted(paths, key=parse_file_name):  # source order, however paths came
            path = paths[name]
            digit, speaker, index = parse_file_name(name)
            examples.append({"audio": read_wav(path), "label": digit, "speaker": speaker,
                             "index": index, "file": name})
        return {
            "train": [e for e in examples if e["index"] not in TEST_INDICES],
            "test": [e for e in examples if e["index"] in TEST_INDICES],
            FULL_SPLIT: examples,
        }
