"""The Free Spoken Digit Dataset builder (grux.data.builders.fsdd) and its reader
grux.data.datasets.spoken_digits: on the shared files (prepared once per module into a
temporary prepared_dir) and on small fixture data roots written under tmp_path."""
import collections
import hashlib
import re
import wave
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow_datasets as tfds

from grux.data import cli, datasets
from grux.data.builders import BUILDERS, Fsdd, MissingSourceFileError, SourceChecksumError
from grux.data.builders import fsdd

SPEAKERS = {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
# A few recordings checked sample by sample against an independent WAV reader.
SAMPLE_FILES = ["0_george_0.wav", "3_lucas_17.wav", "5_nicolas_4.wav", "7_theo_5.wav",
                "9_yweweler_49.wav"]


@pytest.fixture(scope="module")
def kw(data_dir, tmp_path_factory):
    return {"data_dir": str(data_dir), "prepared_dir": str(tmp_path_factory.mktemp("tfds"))}


@pytest.fixture(scope="module")
def full(kw):
    return datasets.spoken_digits("full", **kw)


def _recordings(data_dir) -> Path:
    return Path(data_dir) / fsdd.RECORDINGS_DIR


def test_registered_for_grux_data():
    assert BUILDERS["fsdd"] is Fsdd
    assert "fsdd" in datasets.list_datasets()


def test_shipped_checksum_list_is_the_shared_sha256sums(data_dir):
    shipped = fsdd.SHA256_LIST.read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == fsdd.SHA256_LIST_SHA256
    assert shipped == (Path(data_dir) / "fsdd" / "SHA256SUMS").read_bytes()
    readme = (Path(data_dir) / "README.md").read_text()
    assert f"whose own sha256 is `{fsdd.SHA256_LIST_SHA256}`" in readme
    sources = fsdd.default_sources()
    assert len(sources) == 3000
    assert {s.path.rsplit("/", 1)[1] for s in sources.values()} == {
        p.name for p in _recordings(data_dir).iterdir()}
    s = sources["4_theo_12.wav"]
    assert s.path == "fsdd/recordings/4_theo_12.wav"
    assert s.url == ("https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/"
                     "26eb9aaf76e81b692f806f9140c2d2777410d7a1/recordings/4_theo_12.wav")


@pytest.mark.parametrize("split,size", [("train", 2700), ("test", 300), ("full", 3000),
                                        ("all", 3000)])
def test_split_sizes(kw, split, size):
    assert len(datasets.spoken_digits(split, **kw)) == size


def test_official_split_by_recording_index(kw, full):
    train, test = (datasets.spoken_digits(s, **kw) for s in ("train", "test"))
    assert all(5 <= e["index"] <= 49 for e in train)
    assert all(0 <= e["index"] <= 4 for e in test)
    assert sorted(e["file"] for e in train + test) == sorted(e["file"] for e in full)
    # Each split keeps the source order of ``full``.
    order = {e["file"]: i for i, e in enumerate(full)}
    for split in (train, test):
        positions = [order[e["file"]] for e in split]
        assert positions == sorted(positions)


def test_speakers_labels_and_fields_match_the_file_names(full, data_dir):
    assert {e["speaker"] for e in full} == SPEAKERS
    assert collections.Counter(e["label"] for e in full) == {d: 300 for d in range(10)}
    assert collections.Counter((e["speaker"], e["label"]) for e in full) == {
        (s, d): 50 for s in SPEAKERS for d in range(10)}
    for e in full:
        digit, speaker, index = re.fullmatch(r"(\d)_([a-z]+)_(\d+)\.wav", e["file"]).groups()
        assert (e["label"], e["speaker"], e["index"]) == (int(digit), speaker, int(index))
    assert {e["file"] for e in full} == {p.name for p in _recordings(data_dir).iterdir()}
    keys = [(e["label"], e["speaker"], e["index"]) for e in full]
    assert keys == sorted(keys)  # source order: digit, speaker, index (numeric)


def test_audio_equals_the_wav_samples(full, data_dir):
    by_file = {e["file"]: e for e in full}
    for name in SAMPLE_FILES:
        rate, samples = scipy.io.wavfile.read(_recordings(data_dir) / name)
        audio = by_file[name]["audio"]
        assert rate == fsdd.SAMPLE_RATE and samples.dtype == np.int16
        assert audio.dtype == np.int16 and audio.ndim == 1
        np.testing.assert_array_equal(audio, samples)
    lengths = [len(e["audio"]) for e in full]
    assert min(lengths) == 1148 and max(lengths) == 18262


def test_grux_data_prepare_and_list(kw, full, capsys):
    assert cli.main(["prepare", "fsdd", *_cli_dirs(kw)]) == 0  # prepared already: verified
    assert cli.main(["list", "--prepared_dir", kw["prepared_dir"]]) == 0
    assert re.search(r"^fsdd\s+yes$", capsys.readouterr().out, re.M)


def _cli_dirs(kw):
    return ["--data_dir", kw["data_dir"], "--prepared_dir", kw["prepared_dir"]]


# ------------------------------------------------------------------------ fixture roots
def _write_wav(path: Path, samples, rate=fsdd.SAMPLE_RATE, channels=1, width=2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype=f"<i{width}").tobytes())


def _fixture_builder(root: Path, names, prepared: Path):
    """An Fsdd builder whose sources are ``names`` under ``root`` with their sums now."""
    sums = {n: hashlib.sha256((root / fsdd.RECORDINGS_DIR / n).read_bytes()).hexdigest()
            for n in names}

    class FixtureFsdd(Fsdd, skip_registration=True):
        def source_files(self):
            return fsdd.sources_from(sums)

    return FixtureFsdd(data_dir=str(prepared))


def _prepare(builder, root):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(root)))


def test_fixture_root_prepares_and_a_corrupt_file_is_named(tmp_path, rng):
    root = tmp_path / "raw"
    names = ["1_theo_3.wav", "1_theo_12.wav", "2_george_0.wav", "0_lucas_7.wav"]
    audio = {n: rng.integers(-3000, 3000, size=100 + 10 * i) for i, n in enumerate(names)}
    for n, a in audio.items():
        _write_wav(root / fsdd.RECORDINGS_DIR / n, a)
    builder = _fixture_builder(root, names, tmp_path / "ok")
    _prepare(builder, root)
    full = builder.as_data_source("full")
    files = [e["file"].decode() for e in full]
    assert files == ["0_lucas_7.wav", "1_theo_3.wav", "1_theo_12.wav", "2_george_0.wav"]
    for e in full:
        np.testing.assert_array_equal(e["audio"], audio[e["file"].decode()])
    assert len(builder.as_data_source("train")) == 2  # index 7 and 12
    assert len(builder.as_data_source("test")) == 2

    builder = _fixture_builder(root, names, tmp_path / "bad")
    bad = root / fsdd.RECORDINGS_DIR / "1_theo_12.wav"
    data = bytearray(bad.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(SourceChecksumError, match=re.escape(str(bad))) as err:
        _prepare(builder, root)
    assert "\n" not in str(err.value)

    bad.unlink()
    with pytest.raises(MissingSourceFileError, match=re.escape(str(bad))):
        _prepare(builder, root)


def test_wrong_sample_rate_is_rejected_naming_the_file(tmp_path):
    root = tmp_path / "raw"
    good, bad = "3_jackson_1.wav", "3_jackson_2.wav"
    _write_wav(root / fsdd.RECORDINGS_DIR / good, np.arange(50))
    _write_wav(root / fsdd.RECORDINGS_DIR / bad, np.arange(50), rate=16000)
    builder = _fixture_builder(root, [good, bad], tmp_path / "tfds")
    with pytest.raises(fsdd.WavFormatError, match=re.escape(str(root / fsdd.RECORDINGS_DIR / bad))
                       + r".*16000 Hz"):
        _prepare(builder, root)


@pytest.mark.parametrize("kind", ["rate", "stereo", "8bit", "not_wav"])
def test_read_wav_accepts_only_8khz_16bit_mono(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    if kind == "rate":
        _write_wav(path, np.zeros(10), rate=22050)
    elif kind == "stereo":
        _write_wav(path, np.zeros(20), channels=2)
    elif kind == "8bit":
        _write_wav(path, np.zeros(10), width=1)
    else:
        path.write_bytes(b"not a wav file at all")
    with pytest.raises(fsdd.WavFormatError, match=re.escape(str(path))):
        fsdd.read_wav(path)
    ok = tmp_path / "ok.wav"
    _write_wav(ok, [-32768, 0, 32767])
    np.testing.assert_array_equal(fsdd.read_wav(ok), np.array([-32768, 0, 32767], np.int16))


def test_grux_data_prepare_names_the_corrupt_or_missing_recording(data_dir, tmp_path, capsys):
    """The real builder over a root of links to the shared recordings, one of them replaced by
    a damaged copy: ``grux-data prepare fsdd`` exits 1 with one line naming it."""
    root = tmp_path / "raw"
    rec = root / fsdd.RECORDINGS_DIR
    rec.mkdir(parents=True)
    for p in _recordings(data_dir).iterdir():
        (rec / p.name).symlink_to(p)
    bad = rec / "6_nicolas_30.wav"
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.unlink()
    bad.write_bytes(bytes(data))
    args = ["prepare", "fsdd", "--data_dir", str(root), "--prepared_dir", str(tmp_path / "p")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "checksum mismatch" in err

    bad.unlink()
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "missing" in err

    for p in list(rec.iterdir())[:100]:
        p.unlink()
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing 101 of 3000 source files" in err
    assert len(err) < 1000


def test_download_path_fetches_pinned_urls_and_names_a_bad_download(data_dir, tmp_path,
                                                                    monkeypatch):
    """Without a manual_dir each recording is fetched from its pinned URL (here a stand-in
    serving copies of the shared files) and checked; a damaged download names its URL."""
    names = ["8_george_2.wav", "8_george_20.wav"]
    served = {}
    for n in names:
        served[n] = tmp_path / "served" / n
        served[n].parent.mkdir(exist_ok=True)
        served[n].write_bytes((_recordings(data_dir) / n).read_bytes())
    sources = {n: fsdd.default_sources()[n] for n in names}
    by_url = {s.url: served[n] for n, s in sources.items()}

    def download(self, url_or_urls):
        return {k: by_url[u] for k, u in url_or_urls.items()}

    class TwoFiles(Fsdd, skip_registration=True):
        def source_files(self):
            return sources

    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    builder = TwoFiles(data_dir=str(tmp_path / "ok"))
    builder.download_and_prepare()
    assert [e["file"].decode() for e in builder.as_data_source("full")] == names
    assert [e["file"].decode() for e in builder.as_data_source("train")] == [names[1]]
    served[names[1]].write_bytes(served[names[1]].read_bytes()[:-2])  # truncated download
    with pytest.raises(SourceChecksumError, match=re.escape(sources[names[1]].url)):
        TwoFiles(data_dir=str(tmp_path / "bad")).download_and_prepare()
