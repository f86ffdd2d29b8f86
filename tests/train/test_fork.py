"""``python -m grux.train.fork``: a workdir started from one checkpoint of another run.

Continued with the same config, a fork ends bitwise where the source's own continuation
ended; with a changed config the trainer records the change; the source is never written;
bad arguments are one-line errors that leave the file system as it was."""
import json
import subprocess
import sys

import pytest

from cli_runs import ROOT, TINY_ECHO, assert_bitwise_equal, checkpoint_state, env, run
from grux.train.errors import WorkdirError
from grux.train.fork import fork_workdir, main

STEPS = ["--config.num_train_steps=60"]


def tree_bytes(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != ".grux.lock"}


def records(workdir, name="metrics.jsonl"):
    return [json.loads(line) for line in (workdir / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    wd = tmp_path_factory.mktemp("source")
    run(wd, *TINY_ECHO, *STEPS)
    return wd


def test_fork_continued_with_the_same_config_is_the_source_continuation(tmp_path, source):
    before = tree_bytes(source)
    out = subprocess.run([sys.executable, "-m", "grux.train.fork", str(source),
                          str(tmp_path / "fork"), "--step", "30"], env=env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    fork = tmp_path / "fork"
    assert sorted(p.name for p in (fork / "checkpoints").iterdir()) == ["30"]
    assert not (fork / "summary.json").exists()
    assert all(int(p.name) <= 30 for p in (fork / "best").glob("*"))
    metrics = records(fork)
    assert max(r["step"] for r in metrics) == 30
    assert metrics[-1] == {"step": 30, "event": "fork", "source": str(source)}
    assert [r for r in records(source) if r["step"] <= 30 and "event" not in r] == [
        r for r in metrics if "event" not in r]

    out = run(fork, *TINY_ECHO, *STEPS)
    assert "resumed from checkpoint" in out.stdout and "(step 30)" in out.stdout
    assert "config changed" not in out.stdout
    assert_bitwise_equal(checkpoint_state(fork, 60), checkpoint_state(source, 60))
    assert tree_bytes(source) == before  # the source is only read


def test_fork_with_a_changed_config_records_the_change(tmp_path, source):
    fork = tmp_path / "lower-rate"
    assert fork_workdir(str(source), str(fork), 30) == 30
    out = run(fork, *TINY_ECHO, *STEPS, "--config.optimizer.learning_rate=1e-4")
    assert "config changed since the previous start: optimizer.learning_rate" in out.stdout
    history = records(fork, "config_history.jsonl")
    assert [h["step"] for h in history] == [0, 30]
    assert [h["config"]["optimizer"]["learning_rate"] for h in history] == [
        records(source, "config_history.jsonl")[0]["config"]["optimizer"]["learning_rate"],
        1e-4]
    a, b = checkpoint_state(fork, 60), checkpoint_state(source, 60)
    assert any((a[k] != b[k]).any() for k in a if "params" in k)


def fake_workdir(path, periodic, best, metrics_steps):
    """A workdir's layout with placeholder checkpoint folders (the fork only copies)."""
    for sub, steps in (("checkpoints", periodic), ("best", best)):
        for s in steps:
            (path / sub / str(s) / "state").mkdir(parents=True)
            (path / sub / str(s) / "state" / "data").write_text(f"{sub} {s}")
    (path / "checkpoints" / "40.orbax-checkpoint-tmp-123").mkdir(parents=True)
    (path / "quarantine" / "5-1").mkdir(parents=True)
    (path / "summary.json").write_text("{}")
    (path / "vocab.json").write_text("[]")
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "split": "train", "loss": 1.0 / s}) + "\n" for s in metrics_steps))
    (path / "config_history.jsonl").write_text("".join(
        json.dumps({"step": s, "config": {"seed": s}}) + "\n" for s in (0, 20, 35)))
    return path


def test_fork_copies_the_step_and_the_history_up_to_it(tmp_path):
    src = fake_workdir(tmp_path / "src", periodic=[10, 20, 30], best=[20], metrics_steps=[10, 20, 30])
    fork_workdir(str(src), str(tmp_path / "a"), 20)
    a = tmp_path / "a"
    assert sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()) == [
        "best/20/state/data", "checkpoints/20/state/data", "config_history.jsonl",
        "metrics.jsonl", "vocab.json"]
    assert [r["step"] for r in records(a)] == [10, 20, 20] and records(a)[-1]["event"] == "fork"
    assert [h["step"] for h in records(a, "config_history.jsonl")] == [0, 20]

    # default: the newest periodic checkpoint; a best checkpoint after the step stays behind
    src2 = fake_workdir(tmp_path / "src2", periodic=[10, 20], best=[30], metrics_steps=[10, 30])
    assert fork_workdir(str(src2), str(tmp_path / "b")) == 20
    assert not (tmp_path / "b" / "best").exists()
    # a best checkpoint can be forked from too
    assert fork_workdir(str(src2), str(tmp_path / "c"), 30) == 30
    assert (tmp_path / "c" / "best" / "30" / "state" / "data").read_text() == "best 30"
    assert not (tmp_path / "c" / "checkpoints").exists()
    # an empty destination directory is fine
    (tmp_path / "d").mkdir()
    fork_workdir(str(src2), str(tmp_path / "d"), 10)
    assert (tmp_path / "d" / "checkpoints" / "10").is_dir()


@pytest.mark.parametrize("case, message", [
    ("missing step", "--step 25: "),
    ("not a workdir", "no checkpoints/ or best/ checkpoints there"),
    ("destination in use", "exists and is not an empty directory"),
    ("destination inside source", "must not lie inside each other"),
])
def test_bad_fork_arguments_are_one_line_errors_that_write_nothing(tmp_path, capsys, case,
                                                                   message):
    src = fake_workdir(tmp_path / "src", periodic=[10, 20], best=[], metrics_steps=[10, 20])
    dst, step = tmp_path / "dst", 25 if case == "missing step" else 10
    if case == "not a workdir":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "destination in use":
        dst.mkdir()
        (dst / "metrics.jsonl").write_text("mine\n")
    elif case == "destination inside source":
        dst = src / "fork"
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    with pytest.raises(WorkdirError, match=message):
        fork_workdir(str(src), str(dst), step)
    assert main([str(src), str(dst), "--step", str(step)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grux-fork: error: ") and err.count("\n") == 1 and message in err
    assert {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")} == before
    if case == "missing step":
        assert "saved: [10, 20]" in err


def echo_config(**optimizer):
    """The echo task's default config as the trainer records it, with optimizer fields."""
    from grux.train import base_config
    c = json.loads(base_config("echo").to_json_best_effort())
    c["num_train_steps"] = 100
    c["optimizer"].update({"schedule": "exponential", "decay_every": 5, "decay_rate": 0.5,
                           **optimizer})
    return c


def history(*records):
    return [{"step": s, "config": c} for s, c in records]


def test_shared_steps_follow_the_learning_rates_and_the_training_fields():
    from grux.train.fork import shared_steps
    early, late = echo_config(decay_start=10), echo_config(decay_start=20)
    assert shared_steps(history((0, early)), early) == 100           # the same run
    # optax's staircase decay halves first decay_every steps after decay_start: 10 + 5
    assert shared_steps(history((0, early)), late) == 15
    assert shared_steps(history((0, late)), early) == 15
    # a record rules from its step: the early schedule only for steps 0..11 here
    assert shared_steps(history((0, early), (12, late)), late) == 100
    assert shared_steps(history((0, early), (16, late)), late) == 15
    # a resume from an earlier step replaces what followed it
    assert shared_steps(history((0, late), (30, early), (12, late)), late) == 100
    # logging, saving and evaluation do not count; the model and the data do
    quiet = json.loads(json.dumps(late))
    quiet["log"]["every_steps"], quiet["eval"]["every_steps"] = 7, 13
    quiet["checkpoint"]["every_steps"], quiet["num_train_steps"] = 9, 60
    assert shared_steps(history((0, late)), quiet) == 60
    wider = json.loads(json.dumps(late))
    wider["model"]["hidden"] += 1
    assert shared_steps(history((0, late), (40, wider)), late) == 40
    assert shared_steps(history((0, wider)), late) == 0
    # a record of an older grux without a field: the field's default (an option that was off)
    old = json.loads(json.dumps(late))
    del old["optimizer"]["ema_decay"]
    assert shared_steps(history((0, old)), late) == 100
    averaged = echo_config(decay_start=20, ema_decay=0.9)
    assert shared_steps(history((0, old)), averaged) == 0
    # a cosine of another length differs from its first decayed step
    cos = echo_config(schedule="cosine")
    short = dict(cos, num_train_steps=50)
    assert shared_steps(history((0, short)), cos) == 1


def test_closest_fork_takes_the_latest_shared_checkpoint(tmp_path):
    from grux.train.fork import closest_fork
    early, late, later = (echo_config(decay_start=d) for d in (10, 20, 40))
    for name, config, steps in (("a", early, [10, 15, 20]), ("b", late, [10, 20, 30]),
                                ("c", later, [5]), ("d", echo_config(decay_start=90), [])):
        (tmp_path / name).mkdir()
        for s in steps:
            (tmp_path / name / "checkpoints" / str(s)).mkdir(parents=True)
        (tmp_path / name / "config_history.jsonl").write_text(
            json.dumps({"step": 0, "config": config}) + "\n")
    dirs = [str(tmp_path / n) for n in "abcd"]
    # decay from 30: shares 15 updates with a, 25 with b (20 saved), 35 with c (5 saved)
    assert closest_fork(dirs, echo_config(decay_start=30)) == (str(tmp_path / "b"), 20)
    # decay from 10: all of a (its own schedule), 15 updates of b (10 saved)
    assert closest_fork(dirs, echo_config(decay_start=10)) == (str(tmp_path / "a"), 20)
    assert closest_fork(dirs[3:], echo_config(decay_start=30)) is None  # no checkpoint
    other = echo_config(decay_start=30, learning_rate=0.5)
    assert closest_fork(dirs, other) is None
