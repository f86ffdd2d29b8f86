"""Preparing datasets: where tests write, what is printed, what is left behind, and how a
damaged prepared copy is detected, reported and repaired (issue 11)."""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from tensorflow_datasets.core.utils import tqdm_utils

from grux.data import cli, datasets
from grux.data.builders import (DataError, PreparedDataCorruptError, SourceChecksumError,
                                SourceFileError)
from grux.data.paths import resolve_tfds_dir

ROOT = Path(__file__).resolve().parents[2]
NAME = "airline_passengers"  # the smallest dataset: one split, one tiny array_record file
RECORD = f"{NAME}-full.array_record-00000-of-00001"


def _real_home() -> Path:
    return Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()


def _under(path: str | Path, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root)


def test_default_prepared_dir_during_tests_is_a_temporary_dir_not_the_home():
    """tests/conftest.py points $GRUX_TFDS_DIR (and TFDS's and matplotlib's caches) at a
    per-process scratch dir, so readers called without prepared_dir (as the task tests and
    the trainer subprocesses do) never write into ~/.cache/grux/tfds."""
    home = _real_home()
    for path in (resolve_tfds_dir(), datasets.default_prepared_dir()):
        assert not _under(path, home), path
        assert _under(path, Path(tempfile.gettempdir()).resolve()), path
    for var in ("TFDS_DATA_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        assert not _under(os.environ[var], home), (var, os.environ[var])
    # Subprocesses (trainer runs) inherit it.
    out = subprocess.run(
        [sys.executable, "-c", "from grux.data.paths import resolve_tfds_dir as r; print(r())"],
        capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert out == resolve_tfds_dir() and not _under(out, home)


def test_preparation_prints_one_clean_line_and_reuse_prints_nothing(data_dir, tmp_path, capfd):
    prepared = tmp_path / "prepared"
    bars_before = tqdm_utils._active
    capfd.readouterr()
    builder = datasets.prepare(NAME, data_dir=str(data_dir), prepared_dir=str(prepared))
    out, err = capfd.readouterr()
    both = out + err
    assert "Downloading and preparing" not in both and "downloaded and prepared" not in both
    assert "\x1b[" not in both and "\r" not in both, repr(both[:300])
    assert "Generating" not in both and "Shuffling" not in both
    assert err == "", err
    assert re.fullmatch(rf"preparing {NAME} from {re.escape(str(data_dir))} -> "
                        rf"{re.escape(builder.data_dir)} \.\.\. done \(\d+\.\d s\)\n", out), out
    assert tqdm_utils._active == bars_before  # progress bars are only off during preparation
    datasets.prepare(NAME, data_dir=str(data_dir), prepared_dir=str(prepared))
    assert capfd.readouterr() == ("", "")
    # No empty TFDS download folders are left in the prepared dir either.
    assert sorted(p.name for p in prepared.iterdir()) == [f".{NAME}.lock", NAME]


def test_failed_preparation_ends_its_line(data_dir, tmp_path, capfd):
    root = tmp_path / "raw"
    shutil.copytree(data_dir / NAME, root / NAME)
    (root / NAME / "airline-passengers.csv").chmod(0o644)
    (root / NAME / "airline-passengers.csv").write_text("Month,Passengers\n")
    with pytest.raises(SourceChecksumError):
        datasets.prepare(NAME, data_dir=str(root), prepared_dir=str(tmp_path / "p"))
    out, _ = capfd.readouterr()
    assert re.fullmatch(rf"preparing {NAME} from .* \.\.\. failed\n", out), out


def test_builders_and_preparation_leave_nothing_in_the_temp_dir(data_dir, tmp_path,
                                                               monkeypatch):
    """TFDS's DatasetInfo.initialize_from_bucket made an empty tmp*tfds dir each time a
    builder of an unprepared dataset was created (listing, preparing)."""
    tmp = tmp_path / "systmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its answer
    assert tempfile.gettempdir() == str(tmp)
    prepared = str(tmp_path / "prepared")
    assert cli.main(["list", "--prepared_dir", prepared]) == 0
    datasets.prepare(NAME, data_dir=str(data_dir), prepared_dir=prepared)
    datasets.prepare("etth1", data_dir=str(data_dir), prepared_dir=prepared)
    assert datasets.series(NAME, "full", prepared_dir=prepared)["values"].shape == (144, 1)
    assert os.listdir(tmp) == []


def test_error_classes_share_the_data_error_base():
    assert issubclass(SourceFileError, DataError)
    assert issubclass(PreparedDataCorruptError, DataError)
    assert not issubclass(PreparedDataCorruptError, SourceFileError)


@pytest.fixture
def prepared(data_dir, tmp_path):
    """A freshly prepared airline_passengers: (prepared_dir, dataset folder, its values)."""
    prepared_dir = str(tmp_path / "prepared")
    builder = datasets.prepare(NAME, data_dir=str(data_dir), prepared_dir=prepared_dir)
    values = datasets.series(NAME, "full", prepared_dir=prepared_dir)["values"]
    return prepared_dir, Path(builder.data_dir), values


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_preparation_records_checksums_of_every_prepared_file(prepared):
    _, folder, _ = prepared
    manifest = json.loads((folder / datasets.MANIFEST).read_text())
    files = sorted(p.name for p in folder.iterdir() if p.name != datasets.MANIFEST)
    assert sorted(manifest["files"]) == files and RECORD in files
    assert datasets.prepared_state(NAME, prepared_dir=str(folder.parents[1])) == "yes"


@pytest.mark.parametrize("victim,offset", [(RECORD, 100), (RECORD, 70000),
                                           ("dataset_info.json", 10), ("features.json", 5)])
def test_corrupt_prepared_file_is_named_and_grux_data_prepare_repairs_it(
        prepared, data_dir, capsys, victim, offset):
    prepared_dir, folder, values = prepared
    _flip(folder / victim, offset)
    with pytest.raises(PreparedDataCorruptError) as err:
        datasets.series(NAME, "full", prepared_dir=prepared_dir)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(folder / victim) in msg and err.value.path == folder / victim
    assert f"grux-data prepare {NAME} --prepared_dir {prepared_dir}" in msg
    assert isinstance(err.value, DataError)
    assert datasets.prepared_state(NAME, prepared_dir=prepared_dir) == "corrupt"

    capsys.readouterr()
    assert cli.main(["list", "--prepared_dir", prepared_dir]) == 0
    rows = dict(line.split() for line in capsys.readouterr().out.splitlines()[3:])
    assert rows[NAME] == "corrupt" and rows["ptb"] == "no"

    assert cli.main(["verify", NAME, "--prepared_dir", prepared_dir]) == 1
    out, errout = capsys.readouterr()
    assert out == "" and errout.count("\n") == 1 and str(folder / victim) in errout

    assert cli.main(["prepare", NAME, "--data_dir", str(data_dir),
                     "--prepared_dir", prepared_dir]) == 0
    out = capsys.readouterr().out
    assert f"{NAME}: the prepared copy is damaged (" in out and str(folder / victim) in out
    assert f"removing {folder} and preparing it again" in out
    assert f"preparing {NAME} from {data_dir}" in out
    assert datasets.prepared_state(NAME, prepared_dir=prepared_dir) == "yes"
    np.testing.assert_array_equal(datasets.series(NAME, "full", prepared_dir=prepared_dir)
                                  ["values"], values)
    assert cli.main(["verify", NAME, "--prepared_dir", prepared_dir]) == 0


def test_missing_prepared_file_is_named(prepared):
    prepared_dir, folder, _ = prepared
    (folder / RECORD).unlink()
    with pytest.raises(PreparedDataCorruptError, match=re.escape(f"{folder / RECORD} is missing")):
        datasets.prepare(NAME, prepared_dir=prepared_dir)


def test_cli_corrupt_prepared_data_error_is_one_line_exit_1(prepared):
    prepared_dir, folder, _ = prepared
    _flip(folder / RECORD, 100)
    out = subprocess.run([sys.executable, "-m", "grux.data", "verify", "all",
                          "--prepared_dir", prepared_dir],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 1
    assert out.stderr.startswith("grux-data: error: prepared dataset airline_passengers: file ")
    assert out.stderr.count("\n") == 1 and str(folder / RECORD) in out.stderr


def test_dataset_prepared_without_manifest_is_read_in_full_once_then_verified(prepared):
    """A dataset prepared by an older grux has no manifest: listed as unverified; the next
    reader reads it in full and writes the manifest."""
    prepared_dir, folder, values = prepared
    (folder / datasets.MANIFEST).unlink()
    assert datasets.prepared_state(NAME, prepared_dir=prepared_dir) == "unverified"
    np.testing.assert_array_equal(datasets.series(NAME, "full", prepared_dir=prepared_dir)
                                  ["values"], values)
    assert (folder / datasets.MANIFEST).is_file()
    assert datasets.prepared_state(NAME, prepared_dir=prepared_dir) == "yes"


def test_damaged_dataset_prepared_without_manifest_is_named_not_adopted(prepared, data_dir):
    prepared_dir, folder, _ = prepared
    (folder / datasets.MANIFEST).unlink()
    _flip(folder / RECORD, 100)  # inside the records (array_record's chunk hashes see it)
    with pytest.raises(PreparedDataCorruptError) as err:
        datasets.series(NAME, "full", prepared_dir=prepared_dir)
    assert str(folder / RECORD) in str(err.value) and "\n" not in str(err.value)
    assert not (folder / datasets.MANIFEST).exists()
    datasets.prepare(NAME, data_dir=str(data_dir), prepared_dir=prepared_dir, repair=True)
    assert datasets.prepared_state(NAME, prepared_dir=prepared_dir) == "yes"
