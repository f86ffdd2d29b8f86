"""The benchmark scripts run end to end (smoke sizes, no torch needed) and print their
tables: they are how the README's speed numbers are made, so they must keep working."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(*args, env=None):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=900, env=dict(os.environ, JAX_PLATFORMS="cpu", **(env or {})))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_benchmark_train_quick_prints_the_grux_row(data_dir):
    out = run_script("scripts/benchmark_train.py", "--quick", "--no-torch", "--data-dir",
                     str(data_dir))
    assert "| grux (trainer step) |" in out and "tokens / s" in out


def test_benchmark_train_compares_two_variants_of_a_config(data_dir, tmp_path):
    out = run_script("scripts/benchmark_train.py", "--config", "configs/echo.py",
                     "--set", "num_train_steps=10", "--compare", "model.unroll=2",
                     "--steps", "2", "--rounds", "2", env={"GRUX_TFDS_DIR": str(tmp_path)})
    rows = [line for line in out.splitlines() if line.startswith(("| A |", "| B |"))]
    assert len(rows) == 2 and rows[0].split("|")[4].strip() == "1.00"


def test_benchmark_memory_measures_each_variant_in_its_own_process():
    out = run_script("scripts/benchmark_memory.py", "--b", "2", "--t", "64", "--h", "16",
                     "--variants", "grux,grux-remat")
    rows = [line for line in out.splitlines() if line.startswith("| grux")]
    assert len(rows) == 2
    peaks = [float(r.split("|")[2]) for r in rows]
    assert all(p >= 0 for p in peaks)


@pytest.mark.slow
def test_benchmark_rnn_quick_prints_both_tables():
    out = run_script("scripts/benchmark_rnn.py", "--quick")
    assert "| grux GRU (custom VJP) |" in out and "minGRU chunked" in out
