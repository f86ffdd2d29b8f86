"""Faults and bad inputs: corrupt checkpoints of every kind, a rejected resume, two runs on one
workdir, a full disk, signals, replayed metrics, read-only inference and one-line errors.

Each test reproduces a defect found by a fault-injection pass over the trainer (issue 11)."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cli_runs
from cli_runs import (ROOT, TINY_ECHO, assert_bitwise_equal, checkpoint_state, env, run,
                      saved_steps, start, wait_for_step)
from grux.train import train_and_evaluate
from grux.train import checkpoint as checkpoint_module
from grux.train.errors import (CheckpointMismatchError, CheckpointRestoreError,
                               CheckpointSaveError)
from grux.infer.loader import load_trained
from grux.train.writers import read_metrics


def tiny_echo(steps=40, **fields):
    return cli_runs.tiny_echo(steps, **{"checkpoint__every_steps": 5, "checkpoint__keep": 3,
                                        **fields})


def data_files(checkpoint_dir: Path) -> list[Path]:
    return sorted((checkpoint_dir / "state" / "ocdbt.process_0" / "d").glob("*"))


def truncate_half(checkpoint_dir: Path) -> None:
    for f in data_files(checkpoint_dir):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def tree_listing(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1,
                                       p.stat().st_mtime)
            for p in root.rglob("*")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 50-step run, and a 40-step one to damage (copied per test)."""
    ref = tmp_path_factory.mktemp("ref")
    train_and_evaluate(tiny_echo(50), str(ref))
    base = tmp_path_factory.mktemp("forty")
    train_and_evaluate(tiny_echo(40), str(base))
    assert saved_steps(base) == [30, 35, 40]
    assert sorted(p.name for p in (base / "best").iterdir()) == ["40"]
    return ref, base


def copy_of(base: Path, tmp_path: Path) -> Path:
    wd = tmp_path / "run"
    shutil.copytree(base, wd)
    return wd


def test_all_periodic_checkpoints_corrupt_falls_back_to_best(tmp_path, reference):
    ref, base = reference
    wd = copy_of(base, tmp_path)
    for step in (30, 35, 40):
        truncate_half(wd / "checkpoints" / str(step))
    with pytest.warns(RuntimeWarning) as caught:
        summary = train_and_evaluate(tiny_echo(50), str(wd))
    messages = [str(w.message) for w in caught if "could not be restored" in str(w.message)]
    assert len(messages) == 1 and "trying " + str(wd / "best" / "40") in messages[0]
    assert summary["step"] == 50
    assert sorted(p.name.rsplit("-", 2)[0] for p in (wd / "quarantine").iterdir()) == [
        "checkpoints-40"]
    assert_bitwise_equal(checkpoint_state(wd), checkpoint_state(ref))
    # the full cause is kept (it used to be cut at 300 characters)
    assert len(messages[0]) > 400 and "TensorStore" in messages[0]


def test_nothing_restorable_refuses_and_keeps_every_file(tmp_path, reference):
    wd = copy_of(base := reference[1], tmp_path)
    for d in [*(wd / "checkpoints").iterdir(), *(wd / "best").iterdir()]:
        if d.name.isdigit():
            truncate_half(d)
    metrics, summary = (wd / "metrics.jsonl").read_text(), (wd / "summary.json").read_text()
    with pytest.warns(RuntimeWarning, match="no other checkpoint is left to try"):
        with pytest.raises(CheckpointRestoreError, match="refusing to start over"):
            train_and_evaluate(tiny_echo(50), str(wd))
    kept = sorted(p.name.rsplit("-", 2)[0] for p in (wd / "quarantine").iterdir())
    assert kept == ["best-40", "checkpoints-30", "checkpoints-35", "checkpoints-40"]
    for q in (wd / "quarantine").iterdir():  # moved whole, never deleted
        name = q.name.rsplit("-", 2)[0].split("-")
        original = base / name[0] / name[1]
        assert sorted(p.name for p in q.rglob("*")) == sorted(
            p.name for p in original.rglob("*"))
    assert (wd / "metrics.jsonl").read_text() == metrics
    assert (wd / "summary.json").read_text() == summary
    # a second attempt still refuses: the quarantine remembers there was a run
    with pytest.raises(CheckpointRestoreError, match="refusing to start over"):
        train_and_evaluate(tiny_echo(50), str(wd))


def test_flipped_byte_in_checkpoint_data_is_detected(tmp_path, reference):
    """A flipped bit in the array data of the newest checkpoint either changes nothing that
    is restored or is caught (the checkpoint is set aside): the resumed run always ends
    bitwise equal to the uninterrupted one. Without checksums orbax restored changed values
    silently."""
    import warnings
    ref, base = reference
    detected = []
    for trial, where in enumerate((0.05, 0.2, 0.4, 0.6)):
        wd = copy_of(base, tmp_path / str(trial))
        biggest = max(data_files(wd / "checkpoints" / "40"), key=lambda f: f.stat().st_size)
        data = bytearray(biggest.read_bytes())
        data[int(len(data) * where)] ^= 1 << trial
        biggest.write_bytes(bytes(data))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_and_evaluate(tiny_echo(50), str(wd))
        detected += [str(w.message) for w in caught
                     if "checkpoints/40 could not be restored" in str(w.message)]
        assert_bitwise_equal(checkpoint_state(wd), checkpoint_state(ref))
    assert any("checksum mismatch" in m for m in detected), detected


def test_checksums_cover_every_array_and_detect_a_changed_value():
    import jax.numpy as jnp
    state = {"params": {"w": jnp.arange(6.0).reshape(2, 3)}, "step": jnp.int32(3)}
    sums = checkpoint_module.state_checksums(state)
    assert set(sums) == {"params.w", "step"}
    checkpoint_module.Checkpointer._verify(state, sums, "here")
    changed = {"params": {"w": state["params"]["w"].at[1, 2].set(5.0000005)},
               "step": jnp.int32(3)}
    with pytest.raises(ValueError, match=r"checksum mismatch in 1 array\(s\) of here: params\.w"):
        checkpoint_module.Checkpointer._verify(changed, sums, "here")


def test_rejected_resume_keeps_config_json_and_every_start_is_recorded(tmp_path):
    wd = tmp_path / "run"
    train_and_evaluate(tiny_echo(10), str(wd))
    config_json = (wd / "config.json").read_text()
    with pytest.raises(CheckpointMismatchError):
        train_and_evaluate(tiny_echo(20, model__hidden=24), str(wd))
    assert (wd / "config.json").read_text() == config_json
    history = [json.loads(line) for line in (wd / "config_history.jsonl").read_text().split(
        "\n") if line]
    assert [h["step"] for h in history] == [0]
    train_and_evaluate(tiny_echo(20, optimizer__learning_rate=3e-3), str(wd))
    history = [json.loads(line) for line in (wd / "config_history.jsonl").read_text().split(
        "\n") if line]
    assert [h["step"] for h in history] == [0, 10]
    assert [h["config"]["optimizer"]["learning_rate"] for h in history] == [1e-3, 3e-3]
    assert json.loads((wd / "config.json").read_text())["optimizer"]["learning_rate"] == 3e-3


def test_resume_drops_the_metric_records_it_replays(tmp_path):
    wd = tmp_path / "run"
    proc = start(wd, *TINY_ECHO, "--config.num_train_steps=60", "--config.checkpoint.every_steps=10",
                 "--config.log.every_steps=1")
    wait_for_step(wd, 20, proc)
    time.sleep(0.3)  # let it log a few steps past the checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run(wd, *TINY_ECHO, "--config.num_train_steps=60", "--config.checkpoint.every_steps=10",
        "--config.log.every_steps=1")
    records = read_metrics(wd)
    keys = [(r["step"], r["split"]) for r in records if "split" in r]
    assert len(keys) == len(set(keys)), "a step's metrics appear twice"
    train_steps = [s for s, split in keys if split == "train"]
    assert train_steps == list(range(1, 61))
    resumes = [r["step"] for r in records if r.get("event") == "resume"]
    assert len(resumes) == 1 and resumes[0] % 10 == 0


def test_second_run_on_the_same_workdir_fails_at_once_naming_the_first(tmp_path):
    wd = tmp_path / "run"
    first = start(wd, *TINY_ECHO, "--config.num_train_steps=100000")
    try:
        wait_for_step(wd, 5, first)
        t0 = time.time()
        out = run(wd, *TINY_ECHO, "--config.num_train_steps=100000", check=False)
        assert out.returncode == 1 and time.time() - t0 < 60
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert f"is in use by another grux-train (pid {first.pid} on " in lines[0]
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()
    # the lock dies with its process: the same command resumes
    out = run(wd, *TINY_ECHO, "--config.num_train_steps=40")
    assert "resumed from checkpoint" in out.stdout


def test_full_disk_before_a_save_stops_naming_the_last_good_step(tmp_path, monkeypatch):
    real = shutil.disk_usage
    calls = {"n": 0}

    def disk_usage(path):
        calls["n"] += 1
        usage = real(path)
        return usage._replace(free=0) if calls["n"] > 4 else usage

    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", disk_usage)
    with pytest.raises(CheckpointSaveError) as e:
        train_and_evaluate(tiny_echo(40, eval__every_steps=100), str(tmp_path))
    message = str(e.value)
    assert message.startswith("no space left on device while saving ")
    assert "checkpoints/25" in message and "the last good checkpoint is step 20" in message
    assert saved_steps(tmp_path) == [10, 15, 20]


def test_failed_background_save_is_reported_at_the_next_save(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp
    real_save = ocp.CheckpointManager.save

    def save(self, step, *args, **kwargs):
        if step == 15 and "checkpoints" in str(self.directory):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    with pytest.raises(CheckpointSaveError, match=r"no space left on device while saving "
                       r".*checkpoints/15; the last good checkpoint is step 10"):
        train_and_evaluate(tiny_echo(40, eval__every_steps=100), str(tmp_path))


def test_real_full_disk_is_one_line(tmp_path):
    """On a 1.5 MiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mnt)],
            capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        out = run(mnt / "wd", *TINY_ECHO, "--config.num_train_steps=2000",
                  "--config.checkpoint.every_steps=20", check=False)
        assert out.returncode == 1
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr[-3000:]
        assert lines[0].startswith("grux-train: error: no space left on device while saving")
        assert "the last good checkpoint is step" in lines[0]
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_and_exits_with_its_code(tmp_path, sig, code):
    wd = tmp_path / "run"
    proc = start(wd, *TINY_ECHO, "--config.num_train_steps=100000",
                 "--config.checkpoint.every_steps=100000", log=subprocess.PIPE)
    t0 = time.time()
    while not (wd / "metrics.jsonl").exists() or '"train"' not in (
            wd / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.time() - t0 < 300
        time.sleep(0.05)
    proc.send_signal(sig)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == code, out[-2000:]
    assert f"{sig.name}: saved checkpoint at step" in out
    assert len(saved_steps(wd)) == 1


def test_sigterm_during_start_up_exits_with_a_distinct_message(tmp_path):
    wd = tmp_path / "run"
    proc = start(wd, *TINY_ECHO, log=subprocess.PIPE)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 143, out
    assert ("SIGTERM during start-up, before training: nothing to save" in out
            or "SIGTERM before the first training step: nothing new to save" in out), out
    assert saved_steps(wd) == []


def test_inference_is_read_only(tmp_path, reference):
    wd = copy_of(reference[1], tmp_path)
    truncate_half(wd / "best" / "40")
    before = tree_listing(wd)
    with pytest.warns(RuntimeWarning, match=r"best/40 could not be restored .*skipping it"):
        _, _, step = load_trained(str(wd), "best")
    assert step == 40  # from checkpoints/40
    assert tree_listing(wd) == before
    for d in [*(wd / "checkpoints").iterdir()]:
        truncate_half(d)
    with pytest.warns(RuntimeWarning):
        with pytest.raises(CheckpointRestoreError):
            load_trained(str(wd), "latest")
    empty = tmp_path / "empty"
    shutil.copytree(wd, empty, ignore=shutil.ignore_patterns("checkpoints", "best"))
    listing = tree_listing(empty)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_trained(str(empty), "best")
    assert tree_listing(empty) == listing  # no empty checkpoints/ or best/ created


# ------------------------------------------------------------------ one-line CLI errors
def cli(*args, cwd=ROOT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grux.train", *args], env=env(), cwd=cwd,
                          capture_output=True, text=True, timeout=600, **kw)


def test_help_shows_the_usage_and_exits_0():
    out = cli("--help")
    assert out.returncode == 0
    for word in ("--config", "--workdir", "--config.FIELD=VALUE", str(ROOT / "configs")):
        assert word in out.stdout


@pytest.mark.parametrize("args,needle", [
    (["--config.model.hiden=3"], "--config.model.hiden: unknown field; did you mean "
                                 "config.model.hidden?"),
    (["--config=configs/nope.py"], "--config configs/nope.py: no such file"),
    (["--config=configs/ett.py:bogus"], "--config configs/ett.py:bogus: ValueError: config "
                                        "argument must be"),
    (["--config.model.hidden=abc"], "--config.model.hidden=abc"),
    (["--workdir=/dev/null"], "--workdir /dev/null is a file, not a directory"),
    (["--workdir=/dev/null/run"], "--workdir /dev/null/run lies inside /dev/null"),
    (["--config=configs/ett.py", "--config.task.name=lm"], "is a field of task 'forecast', "
                                                           "not of task 'lm'"),
    (["--confg=x"], "Unknown command line flag 'confg'"),
])
def test_usage_and_config_mistakes_are_one_line_with_exit_2(args, needle):
    out = cli(*args, "--config.num_train_steps=0")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("grux-train: error: "), out.stderr[-3000:]
    assert needle in lines[0]


def test_corrupt_source_data_is_one_line_naming_the_file(tmp_path, data_dir):
    raw = tmp_path / "raw" / "airline_passengers"
    shutil.copytree(data_dir / "airline_passengers", raw)
    csv = raw / "airline-passengers.csv"
    data = bytearray(csv.read_bytes())
    data[100] ^= 4
    csv.write_bytes(bytes(data))
    out = run(tmp_path / "wd", f"--config.data_dir={tmp_path / 'raw'}",
              f"--config.tfds_dir={tmp_path / 'tfds'}", config="configs/airline.py",
              check=False)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr[-3000:]
    assert f"checksum mismatch for source file {csv}" in lines[0]


def test_inference_loads_a_workdir_saved_before_fields_were_added(tmp_path, reference):
    wd = copy_of(reference[1], tmp_path)
    config = json.loads((wd / "config.json").read_text())
    for field in ("dtype", "unroll", "remat", "backward"):
        del config["model"][field]
    del config["eval"]["decode_every"]
    (wd / "config.json").write_text(json.dumps(config))
    task, _, step = load_trained(str(wd), "latest")
    assert step == 40 and task.config.model.dtype == "float32"
    assert task.config.eval.decode_every == 1
