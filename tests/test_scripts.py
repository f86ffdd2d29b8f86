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


def test_music_split_nll_rescores_the_trainers_best_checkpoint(data_dir, tmp_path):
    """The script's validation and test NLL equal the trainer's own evaluation of the same
    checkpoint (two code paths), and it also scores the training split. Two layers with
    dropout between them: the loaded model must be in inference mode, as the trainer's
    evaluation (the stack's dropout holds its own random stream)."""
    import json
    workdir = tmp_path / "jsb"
    env = {"GRUX_TFDS_DIR": str(tmp_path / "tfds"), "GRUX_DATA_DIR": str(data_dir)}
    run_script("-m", "grux.train", "--config", "configs/chung2014_music.py:jsb_chorales,gru",
               f"--workdir={workdir}", "--config.num_train_steps=6",
               "--config.eval.every_steps=3", "--config.checkpoint.every_steps=3",
               "--config.model.num_layers=2", "--config.model.dropout=0.5",
               "--config.log.tensorboard=False", env=env)
    out = run_script("scripts/music_split_nll.py", "--workdir", str(workdir), env=env)
    lines = [line for line in out.splitlines() if "nats per time step" in line]
    nll = {line.split(":")[0].strip(): float(line.split("NLL")[1].split()[0]) for line in lines}
    later = {line.split(":")[0].strip(): float(line.split(";")[1].split()[0]) for line in lines}
    best = json.loads((workdir / "summary.json").read_text())["best"]["results"]
    assert set(nll) == {"train", "validation", "test"}
    for split in ("validation", "test"):
        assert abs(nll[split] - best[split]["loss"]) < 1e-3, (split, nll, best)
        assert abs(later[split] - best[split]["nll_after_first_frame"]) < 1e-3, (split, later)
        assert later[split] != nll[split]
    # six steps in, the model barely knows the data: every split scores alike, below the
    # 88·ln 2 nats of a coin per key
    assert abs(nll["train"] - nll["validation"]) < 2.0 and nll["train"] < 88 * 0.6931
