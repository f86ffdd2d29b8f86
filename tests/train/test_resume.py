"""Exact resume: a run killed (SIGKILL) or preempted (SIGTERM) mid-way and restarted with the
same command ends with bitwise the parameters, optimizer state, RNG and carried state of a
run never interrupted. The task is the truncated-BPTT echo with 2 layers and dropout, so the
carried recurrent state, the data position and the per-step RNG all have to be restored."""
import signal
import time

import pytest

from cli_runs import (TINY_ECHO, assert_bitwise_equal, checkpoint_state, run, saved_steps,
                      start, wait_for_step)

STEPS = ["--config.num_train_steps=60"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    wd = tmp_path_factory.mktemp("straight")
    run(wd, *TINY_ECHO, *STEPS)
    assert saved_steps(wd)[-1] == 60
    return checkpoint_state(wd)


def test_sigkill_then_restart_is_bitwise_identical(tmp_path, uninterrupted):
    wd = tmp_path / "killed"
    proc = start(wd, *TINY_ECHO, *STEPS)
    killed_after = wait_for_step(wd, 25, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert killed_after < 60, "run finished before it could be killed; lengthen it"
    out = run(wd, *TINY_ECHO, *STEPS)
    assert "resumed from checkpoint" in out.stdout
    assert_bitwise_equal(checkpoint_state(wd), uninterrupted)


def test_sigterm_saves_then_restart_is_bitwise_identical(tmp_path, uninterrupted):
    wd = tmp_path / "preempted"
    proc = start(wd, *TINY_ECHO, *STEPS, "--config.checkpoint.every_steps=1000")
    # checkpoints only at the end or on SIGTERM: wait for the first metrics, then preempt
    t0 = time.time()
    while not (wd / "metrics.jsonl").exists() or "train" not in (wd / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.time() - t0 < 300
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    assert proc.returncode == 143, proc.returncode
    steps = saved_steps(wd)
    assert len(steps) == 1 and 0 < steps[0] < 60, steps
    out = run(wd, *TINY_ECHO, *STEPS, "--config.checkpoint.every_steps=1000")
    assert f"(step {steps[0]})" in out.stdout
    assert_bitwise_equal(checkpoint_state(wd), uninterrupted)
