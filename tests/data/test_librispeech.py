"""The LibriSpeech builder (grux.data.builders.librispeech) and its reader
grux.data.datasets.librispeech, on tiny fixture corpora written under tmp_path in the
extracted LibriSpeech layout (synthetic FLAC files written with soundfile): no real data,
no network."""
import dataclasses
import hashlib
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from grux.data import cli, datasets
from grux.data.builders import (BUILDERS, MissingSourceFileError, SourceChecksumError,
                                SourceFileError)
from grux.data.builders import librispeech as ls

sf = pytest.importorskip("soundfile")

from librispeech_fixture import FIXTURE, WORDS, fixture_subsets as _fixture_subsets  # noqa: E402,F401
from librispeech_fixture import write_corpus as _write_corpus, write_flac as _write_flac  # noqa: E402,F401


def _builder_class(subsets):
    class FixtureLibrispeech(ls.Librispeech, skip_registration=True):
        def subsets(self):
            return subsets
    return FixtureLibrispeech


def _prepare(root: Path, prepared: Path, subsets=None):
    builder = _builder_class(subsets or _fixture_subsets())(data_dir=str(prepared))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    return builder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return root, _write_corpus(root)


@pytest.fixture(scope="module")
def read(corpus, tmp_path_factory):
    """``read(split)``: datasets.librispeech on the fixture corpus (the registered builder
    restricted to the fixture's three subsets), prepared once for the module."""
    root, _ = corpus
    prepared = str(tmp_path_factory.mktemp("tfds"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ls.Librispeech, "subsets", lambda self: _fixture_subsets())
        cache = {s: datasets.librispeech(s, data_dir=str(root), prepared_dir=prepared)
                 for s in ("train_clean100", "dev_clean", "test_clean")}
    return lambda split: cache[ls.SPLIT_OF_FOLDER.get(split, split)]


# ------------------------------------------------------------------------------ the table
def test_registered_for_grux_data():
    assert BUILDERS["librispeech"] is ls.Librispeech
    assert "librispeech" in datasets.list_datasets()


def test_url_and_checksum_table_has_the_seven_subsets():
    assert ls.SPLITS == ("train_clean100", "train_clean360", "train_other500", "dev_clean",
                         "dev_other", "test_clean", "test_other")
    folders = {s.split: s.folder for s in ls.SUBSETS}
    assert folders == {"train_clean100": "train-clean-100", "train_clean360": "train-clean-360",
                       "train_other500": "train-other-500", "dev_clean": "dev-clean",
                       "dev_other": "dev-other", "test_clean": "test-clean",
                       "test_other": "test-other"}
    sources = ls.Librispeech(data_dir="/nonexistent/unused").source_files()
    assert list(sources) == list(ls.SPLITS)
    for s in ls.SUBSETS:
        assert s.url == f"https://www.openslr.org/resources/12/{s.folder}.tar.gz"
        assert re.fullmatch(r"[0-9a-f]{64}", s.sha256), s
        assert s.size > 300_000_000
        assert sources[s.split] == ls.SourceFile(f"{s.folder}.tar.gz", s.sha256, s.url)
    assert len({s.sha256 for s in ls.SUBSETS}) == 7
    assert [s.utterances for s in ls.SUBSETS] == [28539, 104014, 148688, 2703, 2864, 2620,
                                                  2939]
    assert sum(s.hours for s in ls.SUBSETS) == pytest.approx(982.1)


def test_table_equals_the_checksums_tsv_of_tfds():
    """The sizes and sha256s are those of TFDS's own librispeech builder (its URLs say http)."""
    tsv = Path(tfds.__file__).parent / "datasets" / "librispeech" / "checksums.tsv"
    if not tsv.is_file():
        pytest.skip(f"{tsv} not in this tensorflow-datasets")
    rows = {}
    for line in tsv.read_text().splitlines():
        url, size, sha256, _ = line.split("\t")
        rows[url.replace("http://", "https://", 1)] = (int(size), sha256)
    assert rows == {s.url: (s.size, s.sha256) for s in ls.SUBSETS}


# ------------------------------------------------------------------------- fixture corpus
def test_split_sizes_and_folder_names(read):
    assert [len(read(s)) for s in ("train_clean100", "dev_clean", "test_clean")] == [7, 5, 5]
    assert read("dev-clean") == read("dev_clean")


@pytest.mark.parametrize("folder", list(FIXTURE))
def test_audio_text_and_ids_equal_what_was_written(read, corpus, folder):
    _, written = corpus
    examples = read(folder)
    assert {e["id"] for e in examples} == set(written[folder])
    for e in examples:
        samples, text = written[folder][e["id"]]
        assert e["audio"].dtype == np.int16 and e["audio"].shape == samples.shape
        assert e["audio"].tobytes() == samples.tobytes()  # bitwise
        assert e["text"] == text and e["text"] == e["text"].upper()
        speaker, chapter, _ = e["id"].split("-")
        assert (e["speaker"], e["chapter"]) == (int(speaker), int(chapter))
        assert isinstance(e["speaker"], int) and isinstance(e["chapter"], int)


def test_source_order_is_numeric_speaker_chapter_utterance(read):
    ids = [e["id"] for e in read("test_clean")]
    assert ids == ["61-70968-0000", "61-70968-0009", "121-9-0000", "121-10-0000",
                   "121-10-0009"]
    for split in ("train_clean100", "dev_clean", "test_clean"):
        keys = [tuple(map(int, e["id"].split("-"))) for e in read(split)]
        assert keys == sorted(keys)


def test_splits_are_speaker_disjoint(read):
    speakers = [{e["speaker"] for e in read(s)} for s in FIXTURE]
    assert speakers == [{19, 103}, {84, 174}, {61, 121}]


def test_a_split_that_was_not_prepared_is_a_clear_error(read, corpus, tmp_path):
    with (pytest.raises(ValueError, match="no split 'dev_other'"),
          pytest.MonkeyPatch.context() as mp):
        mp.setattr(ls.Librispeech, "subsets", lambda self: _fixture_subsets())
        datasets.librispeech("dev_other", data_dir=str(corpus[0]), prepared_dir=str(tmp_path))


# ------------------------------------------------------------------------------- errors
def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def test_missing_subset_folders_are_named_in_one_line(corpus, tmp_path, capsys):
    """The registered builder needs all seven subsets; the fixture has three."""
    root, _ = corpus
    with pytest.raises(MissingSourceFileError) as err:
        datasets.prepare("librispeech", data_dir=str(root), prepared_dir=str(tmp_path / "p"))
    msg = _one_line(err)
    for folder in ("train-clean-360", "train-other-500", "dev-other", "test-other"):
        assert str(root / "LibriSpeech" / folder) in msg
        assert f"https://www.openslr.org/resources/12/{folder}.tar.gz" in msg
    assert "dev-clean" not in msg
    assert not datasets.is_prepared("librispeech", prepared_dir=str(tmp_path / "p"))
    args = ["prepare", "librispeech", "--data_dir", str(root), "--prepared_dir",
            str(tmp_path / "p")]
    assert cli.main(args) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and str(root / "LibriSpeech" / "dev-other") in stderr


def test_missing_flac_is_named(tmp_path):
    root = tmp_path / "raw"
    _write_corpus(root)
    flac = root / "LibriSpeech/dev-clean/174/84280/174-84280-0009.flac"
    flac.unlink()
    with pytest.raises(MissingSourceFileError, match=re.escape(str(flac))) as err:
        _prepare(root, tmp_path / "p")
    assert "174-84280.trans.txt" in _one_line(err)


def test_flac_without_transcript_line_is_named(tmp_path):
    root = tmp_path / "raw"
    _write_corpus(root)
    trans = root / "LibriSpeech/train-clean-100/19/198/19-198.trans.txt"
    lines = trans.read_text().splitlines()
    trans.write_text("\n".join(lines[:-1]) + "\n")  # drops 19-198-0010
    flac = trans.with_name("19-198-0010.flac")
    with pytest.raises(ls.TranscriptError, match=re.escape(str(flac))) as err:
        _prepare(root, tmp_path / "p")
    assert "no transcript line" in _one_line(err)


def test_missing_transcript_file_and_malformed_lines_are_named(tmp_path):
    root = tmp_path / "raw"
    _write_corpus(root)
    trans = root / "LibriSpeech/test-clean/121/10/121-10.trans.txt"
    good = trans.read_text()
    trans.unlink()
    with pytest.raises(MissingSourceFileError, match=re.escape(str(trans))):
        _prepare(root, tmp_path / "p1")
    trans.write_text(good.replace("121-10-0009", "121-11-0009"))
    with pytest.raises(ls.TranscriptError, match=re.escape(str(trans)) + " line 2"):
        _prepare(root, tmp_path / "p2")
    trans.write_text(good + "121-10-0077\n")
    with pytest.raises(ls.TranscriptError, match=re.escape(str(trans)) + " line 3.*no transc"):
        _prepare(root, tmp_path / "p3")


def test_wrong_utterance_count_and_shared_speaker_are_errors(tmp_path):
    root = tmp_path / "raw"
    _write_corpus(root)
    counts = {"train-clean-100": 7, "dev-clean": 6, "test-clean": 5}
    with pytest.raises(ls.TranscriptError,
                       match=re.escape(str(root / "LibriSpeech/dev-clean")) + " holds 5 "
                       "utterances, expected 6"):
        _prepare(root, tmp_path / "p1", _fixture_subsets(counts))
    _write_corpus(root, {"test-clean": {19: {5: 1}}}, seed=1)  # speaker 19 also in train
    counts["dev-clean"], counts["test-clean"] = 5, 6
    with pytest.raises(ls.TranscriptError, match="speaker 19 is in both") as err:
        _prepare(root, tmp_path / "p2", _fixture_subsets(counts))
    assert str(root / "LibriSpeech/test-clean/19") in _one_line(err)


@pytest.mark.parametrize("kind", ["stereo", "8khz", "24bit"])
def test_wrong_audio_format_is_named(tmp_path, kind):
    root = tmp_path / "raw"
    _write_corpus(root)
    flac = root / "LibriSpeech/dev-clean/84/121123/84-121123-0009.flac"
    samples = np.zeros(200, np.int16)
    if kind == "stereo":
        _write_flac(flac, np.zeros((200, 2), np.int16))
    elif kind == "8khz":
        _write_flac(flac, samples, rate=8000)
    else:
        _write_flac(flac, samples.astype(np.int32), subtype="PCM_24")
    with pytest.raises(ls.FlacFormatError, match=re.escape(str(flac))) as err:
        _prepare(root, tmp_path / "p")
    msg = _one_line(err)
    assert {"stereo": "2 channel", "8khz": "8000 Hz", "24bit": "PCM_24"}[kind] in msg


def test_read_flac_rejects_a_non_flac_file_naming_it(tmp_path):
    bad = tmp_path / "1-2-0003.flac"
    bad.write_bytes(b"not a flac file")
    with pytest.raises(ls.FlacFormatError, match=re.escape(str(bad))):
        ls.read_flac(bad)
    wav = tmp_path / "x.flac"
    sf.write(str(wav), np.zeros(10, np.int16), ls.SAMPLE_RATE, subtype="PCM_16", format="WAV")
    with pytest.raises(ls.FlacFormatError, match=re.escape(str(wav)) + ".*WAV"):
        ls.read_flac(wav)
    ok = tmp_path / "ok.flac"
    _write_flac(ok, np.array([-32768, -1, 0, 1, 32767], np.int16))
    np.testing.assert_array_equal(ls.read_flac(ok), [-32768, -1, 0, 1, 32767])


# ---------------------------------------------------------------------------- download
def _tar_gz(root: Path, folder: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root / ls.CORPUS_DIR / folder, arcname=f"{ls.CORPUS_DIR}/{folder}")
    return buf.getvalue()


def test_download_path_checks_and_extracts_the_archives(corpus, tmp_path, monkeypatch):
    """Without a data root the archives are downloaded (here: a stand-in serving tar.gz files
    of the fixture), checked (size, sha256) and extracted by TFDS's download manager."""
    root, written = corpus
    served, subsets = {}, []
    for s in _fixture_subsets():
        data = _tar_gz(root, s.folder)
        served[s.url] = tmp_path / "served" / s.archive
        served[s.url].parent.mkdir(exist_ok=True)
        served[s.url].write_bytes(data)
        subsets.append(dataclasses.replace(s, size=len(data),
                                           sha256=hashlib.sha256(data).hexdigest()))
    requested = []

    def download(self, url_or_urls):
        requested.append(dict(url_or_urls))
        return {k: served[u] for k, u in url_or_urls.items()}

    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    cls = _builder_class(tuple(subsets))
    builder = cls(data_dir=str(tmp_path / "ok"))
    builder.download_and_prepare()
    assert requested == [{s.split: s.url for s in subsets}]
    dev = builder.as_data_source("dev_clean")
    assert len(dev) == 5
    for e in dev:
        samples, text = written["dev-clean"][e["id"].decode()]
        assert e["audio"].tobytes() == samples.tobytes() and e["text"].decode() == text

    extracted = tmp_path / "ok" / "downloads" / "extracted"
    assert not list(extracted.iterdir())  # removed once prepared

    bad = served[subsets[1].url]
    original = bad.read_bytes()
    bad.write_bytes(original[:-1])  # truncated download: the size differs
    with pytest.raises(SourceChecksumError, match=re.escape(subsets[1].url)) as err:
        cls(data_dir=str(tmp_path / "bad")).download_and_prepare()
    assert "size mismatch" in _one_line(err)
    data = bytearray(original)
    data[-5] ^= 1  # same size, other bytes
    bad.write_bytes(bytes(data))
    with pytest.raises(SourceChecksumError, match=re.escape(subsets[1].url)) as err:
        cls(data_dir=str(tmp_path / "bad2")).download_and_prepare()
    assert "checksum mismatch" in _one_line(err)


def test_an_archive_that_cannot_be_extracted_is_named(tmp_path, monkeypatch):
    served = tmp_path / "dev-clean.tar.gz"
    served.write_bytes(b"\x1f\x8b not really a gzip")
    data = served.read_bytes()
    subset = dataclasses.replace(_fixture_subsets()[1], size=len(data),
                                 sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(tfds.download.DownloadManager, "download",
                        lambda self, urls: {k: served for k in urls})
    with pytest.raises(SourceFileError, match=re.escape(str(served)) + ".*"
                       + re.escape(subset.url)) as err:
        _builder_class((subset,))(data_dir=str(tmp_path / "p")).download_and_prepare()
    assert "cannot extract archive" in _one_line(err)
    assert not list((tmp_path / "p" / "downloads" / "extracted").iterdir())


def test_prepare_all_leaves_librispeech_out(capsys):
    """'grux-data prepare all' must not start a 61 GB download or fail for want of it."""
    import argparse

    from grux.data import cli
    names = cli._names(argparse.Namespace(name="all", config=None, command="prepare"))
    assert "librispeech" not in names and "fsdd" in names
    assert "librispeech" in capsys.readouterr().out
    assert "librispeech" in cli._names(argparse.Namespace(name="all", config=None,
                                                          command="verify"))
