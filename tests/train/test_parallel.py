"""The shard_map data-parallel step equals a single-device run (gradients averaged once)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(devices: int, steps: int = 4) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "tests/train/dp_equivalence.py"),
                          str(steps)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_vs_eight_devices_same_training():
    one, eight = _run(1), _run(8)
    assert one["devices"] == 1 and eight["devices"] == 8
    np.testing.assert_allclose(one["losses"], eight["losses"], rtol=1e-5, atol=1e-6)
    for a, b in zip(one["params"], eight["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert one["losses"][-1] != one["losses"][0]


def test_batch_not_divisible_by_devices_is_an_error():
    from types import SimpleNamespace

    from grux.train.parallel import check_batch_divisible
    eight = SimpleNamespace(devices=np.empty(8))
    check_batch_divisible(16, eight)
    with pytest.raises(ValueError, match="batch size 12 is not divisible by the 8 devices"):
        check_batch_divisible(12, eight)
