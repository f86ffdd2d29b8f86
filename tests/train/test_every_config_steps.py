"""Every command a config docstring documents takes one jit-compiled, shard_map training step
with a finite loss and gradient, and one evaluation batch.

This is the guard for "works on one jax, fails on another inside shard_map" (jax 0.12's
varying-axes check rejected the Gaussian head's erf on Python 3.12 while jax 0.10 accepted
it): CI runs the suite on both, and this test puts every model, loss and metric of every
documented experiment through the sharded step. Models keep their documented sizes; the
batch is cut to 4 to keep it quick.
"""
import math
import re
from pathlib import Path

import jax
import pytest

from grux.tasks import get_task_class
from grux.train import parallel, validate
from grux.train.main import parse_command_line
from grux.train.trainer import _Trainer

ROOT = Path(__file__).resolve().parents[2]


def documented_commands() -> list[list[str]]:
    """The argument lists of every ``python -m grux.train --config configs/...`` line in the
    config docstrings (continuation lines joined), without ``--workdir``."""
    out = []
    for path in sorted((ROOT / "configs").glob("*.py")):
        text = path.read_text().replace("\\\n", " ")
        for line in re.findall(r"python -m grux\.train (--config configs/\S+.*)", text):
            words = line.split("#")[0].split()
            out.append([a for i, a in enumerate(words) if not a.startswith("--workdir")
                        and (i == 0 or words[i - 1] != "--workdir")])
    return out


COMMANDS = documented_commands()


def test_every_config_file_documents_a_command():
    documented = {a[1].split(":")[0] for a in COMMANDS}
    assert documented == {f"configs/{p.name}" for p in (ROOT / "configs").glob("*.py")}


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[1:]) for a in COMMANDS])
def test_documented_command_takes_a_sharded_step(args, tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(ROOT)
    config, _, _ = parse_command_line([f"--config={args[1]}", *args[2:]])
    config.batch_size = config.eval.batch_size = 4
    config.data_dir = str(data_dir)
    mesh = parallel.make_mesh()
    validate(config, device_count=mesh.devices.size)
    task = get_task_class(config.task.name)(config)
    trainer = _Trainer(config, task, mesh, str(tmp_path), True)
    try:
        batch = parallel.global_batch(next(trainer.train_data), mesh)
        state, pairs = trainer.train_step(trainer.state, batch)  # donates trainer.state
        pairs = parallel.to_host(pairs)
        loss = float(pairs["loss"][0]) / float(pairs["loss"][1])
        assert math.isfinite(loss) and math.isfinite(float(pairs["grad_norm"][0]))
        stream = next(iter(trainer.eval_data.values()))
        metrics, _ = trainer.eval_step(state["params"],
                                       parallel.global_batch(stream.global_batch(0), mesh),
                                       trainer.eval_carry)
        assert all(math.isfinite(float(w)) for _, w in jax.device_get(metrics).values())
    finally:
        trainer.close()
