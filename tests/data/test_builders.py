"""TFDS builders and the grux.data.datasets API on the real files of shared/data.

Every dataset is prepared at most once per test process, into a module-wide temporary
prepared_dir (readers prepare lazily and reuse it). Expected numbers come from
shared/data/README.md.
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from grux.data import cli, datasets
from grux.data.builders import BUILDERS, MissingSourceFileError, SourceChecksumError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def kw(data_dir, prepared_dir):
    return {"data_dir": str(data_dir), "prepared_dir": prepared_dir}


def _copy_dataset(data_dir, tmp_path, sub):
    """A writable copy of ``data_dir/sub`` under a fresh root; returns the root."""
    root = tmp_path / "raw"
    shutil.copytree(data_dir / sub, root / sub)
    for p in (root / sub).iterdir():
        p.chmod(0o644)
    return root


def test_list_datasets():
    assert datasets.list_datasets() == [
        "airline_passengers", "ett/etth1", "ett/etth2", "ett/ettm1", "ett/ettm2", "fsdd",
        "librispeech", "m4_hourly", "multi30k", "polyphonic_music/jsb_chorales",
        "polyphonic_music/musedata", "polyphonic_music/nottingham", "polyphonic_music/piano_midi",
        "ptb", "ptb_char", "tiny_shakespeare", "weather"]


@pytest.mark.parametrize("split,lines,tokens", [
    ("train", 42068, 929589), ("validation", 3370, 73760), ("test", 3761, 82430)])
def test_ptb_word_lines_and_token_counts(kw, split, lines, tokens):
    text = datasets.text_lines("ptb", split, **kw)
    assert len(text) == lines
    assert sum(len(line.split()) + 1 for line in text) == tokens  # + <eos> per line
    assert all(line == line.strip() for line in text)


def test_ptb_vocabulary_and_first_line(kw):
    train = datasets.text_lines("ptb", "train", **kw)
    assert train[0].startswith("aer banknote berlitz calloway")
    vocab = {w for line in train for w in line.split()} | {"<eos>"}
    assert len(vocab) == 10000 and "<unk>" in vocab


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_ptb_char_lines_are_the_word_lines_spelled_out(kw, split):
    chars = datasets.text_lines("ptb_char", split, **kw)
    words = datasets.text_lines("ptb", split, **kw)
    assert len(chars) == len(words)
    assert all(c.split() == list("_".join(w.split())) for c, w in zip(chars, words))
    if split == "train":
        assert len({s for line in chars for s in line.split()}) == 49


def test_tiny_shakespeare_90_5_5_character_split(kw, data_dir):
    parts = {s: datasets.text_lines("tiny_shakespeare", s, **kw)
             for s in ("train", "validation", "test")}
    assert all(len(p) == 1 for p in parts.values())
    assert [len(p[0]) for p in parts.values()] == [1003854, 55770, 55770]
    raw = (data_dir / "tinyshakespeare/input.txt").read_text()
    assert "".join(p[0] for p in parts.values()) == raw
    assert len(set(raw)) == 65


@pytest.mark.parametrize("name,sizes,midi_range", [
    ("jsb_chorales", (229, 76, 77), (43, 96)),
    ("nottingham", (694, 173, 170), (31, 93)),
    ("musedata", (524, 135, 124), (21, 105)),
    ("piano_midi", (87, 12, 25), (21, 108)),
])
def test_piano_rolls_split_sizes_shapes_and_ranges(kw, name, sizes, midi_range):
    rolls = [datasets.piano_rolls(name, s, **kw) for s in ("train", "validation", "test")]
    assert tuple(map(len, rolls)) == sizes
    every = [r for split in rolls for r in split]
    assert all(r.dtype == np.uint8 and r.ndim == 2 and r.shape[1] == 88 for r in every)
    stacked = np.concatenate(every)
    assert set(np.unique(stacked)) == {0, 1}
    notes = np.nonzero(stacked.any(0))[0] + 21
    assert (notes.min(), notes.max()) == midi_range


def test_jsb_piano_rolls_equal_the_independent_czhuang_json(kw, data_dir):
    """JSB_Chorales.mat and czhuang's quarter-note JSON hold the same pieces (README)."""
    ref = json.loads((data_dir / "jsb_chorales_czhuang/jsb-chorales-quarter.json").read_text())
    for split, key in (("train", "train"), ("validation", "valid"), ("test", "test")):
        rolls = datasets.piano_rolls("polyphonic_music/jsb_chorales", split, **kw)
        got = [[sorted(np.nonzero(row)[0] + 21) for row in r] for r in rolls]
        want = [[sorted(step) for step in piece] for piece in ref[key]]
        assert got == want


@pytest.mark.parametrize("name,rows,last_date,borders", [
    ("etth1", 17420, "2018-06-26 19:00:00", (8640, 11520, 14400)),
    ("etth2", 17420, "2018-06-26 19:00:00", (8640, 11520, 14400)),
    ("ettm1", 69680, "2018-06-26 19:45:00", (34560, 46080, 57600)),
    ("ettm2", 69680, "2018-06-26 19:45:00", (34560, 46080, 57600)),
])
def test_ett_full_series_and_informer_splits(kw, name, rows, last_date, borders):
    full = datasets.series_full(name, **kw)
    assert full["values"].shape == (rows, 7) and full["values"].dtype == np.float32
    assert full["columns"] == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert (full["dates"][0], full["dates"][-1], len(full["dates"])) == (
        "2016-07-01 00:00:00", last_date, rows)
    a, b, c = borders
    assert full["borders"] == {"train": (0, a), "validation": (a, b), "test": (b, c)}
    for split, (start, stop) in full["borders"].items():
        part = datasets.series(name, split, **kw)
        np.testing.assert_array_equal(part["values"], full["values"][start:stop])
        assert part["dates"] == full["dates"][start:stop]


def test_ett_values_are_the_csv_numbers(kw, data_dir):
    first = (data_dir / "ett/ETTh1.csv").read_text().splitlines()[1].split(",")
    values = datasets.series_full("etth1", **kw)["values"]
    np.testing.assert_array_equal(values[0], np.array(first[1:], np.float64).astype(np.float32))


def test_weather_series_and_autoformer_split(kw):
    full = datasets.series_full("weather", **kw)
    assert full["values"].shape == (52696, 21)
    assert full["columns"][0] == "p (mbar)" and full["columns"][-1] == "OT"
    assert (full["dates"][0], full["dates"][-1]) == ("2020-01-01 00:10:00", "2021-01-01 00:00:00")
    assert full["borders"] == {"train": (0, 36887), "validation": (36887, 42157),
                               "test": (42157, 52696)}
    assert datasets.series("weather", "test", **kw)["values"].shape == (10539, 21)


def test_airline_passengers_full_monthly_series(kw):
    full = datasets.series_full("airline_passengers", **kw)
    assert full["values"].shape == (144, 1) and full["columns"] == ["Passengers"]
    assert (full["dates"][0], full["dates"][-1]) == ("1949-01", "1960-12")
    assert (full["values"][0, 0], full["values"][-1, 0]) == (112, 432)
    assert full["borders"] == {}
    with pytest.raises(ValueError, match="no split 'train'"):
        datasets.series("airline_passengers", "train", **kw)


def test_m4_hourly_histories_and_horizons(kw):
    test = datasets.m4_series("test", **kw)
    assert [s["id"] for s in test] == [f"H{i}" for i in range(1, 415)]
    assert all(s["test"].shape == (48,) and s["test"].dtype == np.float32 for s in test)
    lengths = [len(s["train"]) for s in test]
    assert (min(lengths), max(lengths)) == (700, 960)
    assert test[0]["train"][:3].tolist() == [605, 586, 586]
    val = datasets.m4_series("validation", **kw)
    for v, t in zip(val, test):
        np.testing.assert_array_equal(np.concatenate([v["train"], v["test"]]), t["train"])
        assert v["test"].shape == (48,)


@pytest.mark.parametrize("split,n", [
    ("train", 29000), ("validation", 1014), ("test", 1000), ("test_2016_flickr", 1000),
    ("test_2017_flickr", 1000), ("test_2017_mscoco", 461), ("test_2018_flickr", 1071)])
def test_multi30k_split_sizes(kw, split, n):
    pairs = datasets.parallel_text("multi30k", split, **kw)
    assert len(pairs) == n and set(pairs[0]) == {"en", "de", "fr"}


def test_multi30k_lines_are_exactly_the_file_lines(kw, data_dir):
    pairs = datasets.parallel_text("multi30k", "test_2018_flickr", **kw)
    assert pairs == datasets.parallel_text(split="test_2018_flickr", **kw)
    for lang in ("en", "de", "fr"):
        with gzip.open(data_dir / f"multi30k/test_2018_flickr.{lang}.gz", "rt",
                       encoding="utf-8") as f:
            assert [p[lang] for p in pairs] == f.read().split("\n")[:-1]
    assert (datasets.parallel_text(split="test", **kw)
            == datasets.parallel_text(split="test_2016_flickr", **kw))


def test_prepared_data_is_array_record_and_second_prepare_reuses_it(kw, prepared_dir):
    builder = datasets.prepare("ett/etth2", **kw)
    assert builder.is_prepared()
    files = sorted(os.listdir(builder.data_dir))
    assert any(".array_record-" in f for f in files), files
    info = Path(builder.data_dir) / "dataset_info.json"
    stamp = info.stat().st_mtime_ns
    # A prepared dataset needs no raw files: a nonexistent data_dir must not matter.
    again = datasets.prepare("ett", config="etth2", data_dir="/nonexistent/raw",
                             prepared_dir=prepared_dir)
    assert again.is_prepared() and info.stat().st_mtime_ns == stamp
    assert datasets.is_prepared("etth2", prepared_dir=prepared_dir)


@pytest.mark.parametrize("name,relpath", [
    ("airline_passengers", "airline_passengers/airline-passengers.csv"),
    ("jsb_chorales", "polyphonic_music/JSB_Chorales.mat"),
])
def test_corrupt_source_is_rejected_naming_file_and_checksums(data_dir, tmp_path, name, relpath):
    root = _copy_dataset(data_dir, tmp_path, relpath.split("/")[0])
    path = root / relpath
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    expected = hashlib.sha256((data_dir / relpath).read_bytes()).hexdigest()
    actual = hashlib.sha256(bytes(data)).hexdigest()
    prepared = str(tmp_path / "prepared")
    with pytest.raises(SourceChecksumError) as err:
        datasets.prepare(name, data_dir=str(root), prepared_dir=prepared)
    assert str(path) in str(err.value)
    assert expected in str(err.value) and actual in str(err.value)
    assert not datasets.is_prepared(name, prepared_dir=prepared)


def test_missing_source_is_rejected_naming_file_and_checksum(data_dir, tmp_path):
    root = _copy_dataset(data_dir, tmp_path, "ptb")
    (root / "ptb/ptb.test.txt").unlink()
    prepared = str(tmp_path / "prepared")
    with pytest.raises(MissingSourceFileError) as err:
        datasets.prepare("ptb", data_dir=str(root), prepared_dir=prepared)
    msg = str(err.value)
    assert str(root / "ptb/ptb.test.txt") in msg
    assert "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0" in msg
    assert "ptb.valid.txt" not in msg
    assert not datasets.is_prepared("ptb", prepared_dir=prepared)


def _fake_download(mapping):
    """A DownloadManager.download stand-in serving each URL from a local file."""
    def download(self, url_or_urls):
        return {k: mapping[u] for k, u in url_or_urls.items()}
    return download


def test_download_path_fetches_canonical_urls_and_checks_them(data_dir, tmp_path, monkeypatch):
    """Without a manual_dir the builder downloads (here: a stand-in serving local copies)."""
    src = BUILDERS["tiny_shakespeare"].SOURCES["text"]
    served = tmp_path / "served.txt"
    shutil.copyfile(data_dir / src.path, served)
    monkeypatch.setattr(tfds.download.DownloadManager, "download",
                        _fake_download({src.url: served}))
    builder = datasets.get_builder("tiny_shakespeare", prepared_dir=str(tmp_path / "ok"))
    builder.download_and_prepare()
    assert len(builder.as_data_source("validation")[0]["text"]) == 55770
    served.write_bytes(served.read_bytes()[:-1])  # truncated download
    builder = datasets.get_builder("tiny_shakespeare", prepared_dir=str(tmp_path / "bad"))
    with pytest.raises(SourceChecksumError, match=re.escape(src.url)):
        builder.download_and_prepare()


def test_source_urls_are_pinned_raw_github_files(data_dir, tmp_path):
    """Every source is a file of shared/data with a pinned raw GitHub URL, except LibriSpeech's
    seven OpenSLR archives (a data root holds them extracted; see test_librispeech.py)."""
    pinned = re.compile(r"^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/")
    openslr = re.compile(r"^https://www\.openslr\.org/resources/12/[a-z0-9-]+\.tar\.gz$")
    n = 0
    for name in datasets.list_datasets():
        for s in datasets.get_builder(name, prepared_dir=str(tmp_path)).source_files().values():
            n += 1
            if name == "librispeech":
                assert openslr.match(s.url) and re.fullmatch(r"[0-9a-f]{64}", s.sha256), s
                continue
            assert pinned.match(s.url), s.url
            local_name = Path(s.path).name
            assert Path(s.url).name == (local_name.removesuffix(".gz") if s.url_sha256
                                        else local_name)
            assert (data_dir / s.path).is_file()
            if s.url_sha256:  # the URL serves the gunzipped local file
                raw = gzip.decompress((data_dir / s.path).read_bytes())
                assert hashlib.sha256(raw).hexdigest() == s.url_sha256
    assert n == 1 + 4 + 2 + 18 + 4 + 3 + 3 + 1 + 1 + 3000 + 7  # + FSDD, LibriSpeech


def test_unknown_names_and_wrong_readers_are_clear_errors(kw):
    with pytest.raises(datasets.UnknownDatasetError, match="unknown dataset 'nope'.*ptb_char"):
        datasets.prepare("nope", **kw)
    with pytest.raises(datasets.UnknownDatasetError, match="needs a config"):
        datasets.resolve("ett")
    with pytest.raises(datasets.UnknownDatasetError, match="has no configs"):
        datasets.resolve("ptb", config="x")
    assert datasets.resolve("etth1") == ("ett", "etth1")
    assert datasets.resolve("polyphonic_music", "musedata") == ("polyphonic_music", "musedata")
    with pytest.raises(datasets.UnknownDatasetError, match="piano_rolls"):
        datasets.piano_rolls("ptb", "train", **kw)
    with pytest.raises(ValueError, match="no split 'dev'"):
        datasets.text_lines("ptb", "dev", **kw)


def test_cli_list_reports_prepared_state(kw, prepared_dir, capsys):
    datasets.prepare("airline_passengers", **kw)
    capsys.readouterr()  # drop TFDS's preparation messages
    assert cli.main(["list", "--prepared_dir", prepared_dir]) == 0
    rows = dict(line.split() for line in capsys.readouterr().out.splitlines()[3:])
    assert list(rows) == datasets.list_datasets()
    assert rows["airline_passengers"] == "yes"
    assert all(v == ("yes" if datasets.is_prepared(k, prepared_dir=prepared_dir) else "no")
               for k, v in rows.items())


def test_cli_module_entry_point_and_errors(data_dir, tmp_path):
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "grux.data", *a], capture_output=True, text=True, cwd=ROOT)
    prepared = str(tmp_path / "prepared")
    ok = run("prepare", "airline_passengers", "--data_dir", str(data_dir),
             "--prepared_dir", prepared)
    assert ok.returncode == 0, ok.stderr
    listed = run("list", "--prepared_dir", prepared)
    assert re.search(r"^airline_passengers\s+yes$", listed.stdout, re.M), listed.stdout
    assert re.search(r"^ptb\s+no$", listed.stdout, re.M)
    bad = run("prepare", "nope", "--prepared_dir", prepared)
    assert bad.returncode == 2 and "unknown dataset 'nope'" in bad.stderr


def test_prepare_waits_for_another_process_preparing(data_dir, tmp_path):
    """Concurrent preparation is serialised by a file lock: a process that finds the lock
    held waits, then reuses what the holder prepared instead of writing over it."""
    prepared = str(tmp_path / "tfds")
    code = ("import sys; from grux.data import datasets; print('start', flush=True); "
            "datasets.prepare('airline_passengers', data_dir=sys.argv[1], "
            "prepared_dir=sys.argv[2]); "
            "print('prepared')")
    with datasets._prepare_lock("airline_passengers", None, prepared):
        proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir), prepared],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "start"
        try:
            proc.wait(timeout=3)
            pytest.fail(f"prepare did not wait for the lock: {proc.communicate()}")
        except subprocess.TimeoutExpired:
            pass
        assert not datasets.is_prepared("airline_passengers", prepared_dir=prepared)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "prepared" in out
    assert datasets.is_prepared("airline_passengers", prepared_dir=prepared)
