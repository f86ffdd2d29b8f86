"""Data parallelism: the same config on 1 and 8 devices, and on 2 processes × 2 devices
(jax.distributed on localhost) vs 1 process × 4 devices, trains the same model."""
import json

import numpy as np
import pytest

from cli_runs import TINY_ECHO, checkpoint_state, multihost_runs, run
from grux.train.writers import read_metrics

DP = [o for o in TINY_ECHO if "dropout" not in o] + [
    "--config.num_train_steps=12", "--config.log.every_steps=1",
    "--config.eval.every_steps=6", "--config.optimizer.learning_rate=1e-2"]


def _curve(workdir, split="train"):
    return [r["loss"] for r in read_metrics(workdir) if r.get("split") == split]


def test_one_vs_eight_devices_same_training(tmp_path):
    run(tmp_path / "one", *DP, devices=1)
    run(tmp_path / "eight", *DP, devices=8)
    summary = json.loads((tmp_path / "eight" / "summary.json").read_text())
    assert summary["devices"] == 8 and summary["device_kind"] == "cpu"
    one, eight = _curve(tmp_path / "one"), _curve(tmp_path / "eight")
    assert len(one) == 12 and one[-1] < one[0]
    np.testing.assert_allclose(eight, one, rtol=1e-5)
    np.testing.assert_allclose(_curve(tmp_path / "eight", "validation"),
                               _curve(tmp_path / "one", "validation"), rtol=1e-5)
    a, b = checkpoint_state(tmp_path / "one"), checkpoint_state(tmp_path / "eight")
    for k in a:  # params, optimizer state and the carried (sharded) recurrent state
        # the psum over 8 shards adds in another order than one device: entries near zero
        # differ by a few float32 ulps of the array's scale (4e-6 of 0.35 seen on an AMD EPYC)
        scale = float(np.max(np.abs(a[k]))) if a[k].size else 0.0
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=max(1e-6, 1e-4 * scale),
                                   err_msg=k)
    # a checkpoint written on 8 devices resumes on 1
    out = run(tmp_path / "eight", *DP, "--config.num_train_steps=14", devices=1)
    assert "(step 12)" in out.stdout and json.loads(
        (tmp_path / "eight" / "summary.json").read_text())["step"] == 14


def test_batch_not_divisible_by_devices_is_a_config_error(tmp_path):
    out = run(tmp_path, *DP, "--config.batch_size=12", devices=8, check=False)
    assert out.returncode == 2
    assert "config.batch_size=12 is not divisible by the 8 devices" in out.stderr


def test_two_processes_on_localhost_agree_with_one(tmp_path):
    views, ref = multihost_runs(tmp_path, devices_per_process=2)
    assert views[0]["processes"] == 2 and views[0]["devices"] == 4
    assert views[0] == views[1]  # both processes hold the same replicated results
    np.testing.assert_allclose(_curve(tmp_path / "multi"), _curve(tmp_path / "single"),
                               rtol=1e-5)
    for split in ref["final"]:
        for k, v in ref["final"][split].items():
            assert views[0]["final"][split][k] == pytest.approx(v, rel=1e-5), (split, k)
    a, b = checkpoint_state(tmp_path / "single"), checkpoint_state(tmp_path / "multi")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6, err_msg=k)
