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
import numpy as np
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
# Configs whose data is not among the shared datasets: their own test takes the same sharded
# step at the documented size on a fixture corpus the test writes.
ON_FIXTURES = {"configs/librispeech.py": "tests/tasks/test_librispeech_task.py"}


def skip_if_on_fixtures(config_path: str) -> None:
    if config_path in ON_FIXTURES:
        pytest.skip(f"{config_path}: LibriSpeech is not in ../shared/data; "
                    f"{ON_FIXTURES[config_path]} covers it on a fixture corpus")


def test_every_config_file_documents_a_command():
    documented = {a[1].split(":")[0] for a in COMMANDS}
    assert documented == {f"configs/{p.name}" for p in (ROOT / "configs").glob("*.py")}


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[1:]) for a in COMMANDS])
def test_documented_command_takes_a_sharded_step(args, tmp_path, monkeypatch, data_dir):
    skip_if_on_fixtures(args[1])
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


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[1:]) for a in COMMANDS])
def test_layer_options_from_the_config_reach_every_recurrent_layer(args, monkeypatch,
                                                                   data_dir):
    """Every task builds its recurrent layers from ``config.model`` through the one helper:
    overriding the options changes every layer of every documented model."""
    import jax.numpy as jnp
    from flax import nnx

    from grux.nn.recurrent import Bidirectional, GRULayer, RecurrentLayer
    skip_if_on_fixtures(args[1])
    monkeypatch.chdir(ROOT)
    config, _, _ = parse_command_line([f"--config={args[1]}", *args[2:],
                                       "--config.model.dtype=bfloat16",
                                       "--config.model.unroll=2", "--config.model.remat=True",
                                       "--config.model.backward=autodiff",
                                       "--config.model.fuse_directions=True"])
    config.data_dir = str(data_dir)
    model = get_task_class(config.task.name)(config).build_model(nnx.Rngs(0))
    layers = [m for _, m in nnx.iter_graph(model) if isinstance(m, RecurrentLayer)]
    assert layers
    for layer in layers:
        assert layer.dtype == jnp.bfloat16 and layer.param_dtype == jnp.float32
        assert layer.unroll == 2
        if isinstance(layer, GRULayer):
            assert layer.remat and layer.backward == "autodiff"
            assert layer.formulation == config.model.formulation
    for pair in (m for _, m in nnx.iter_graph(model) if isinstance(m, Bidirectional)):
        assert pair.fuse == pair.forward.has_recurrent_weights   # minGRU has none to fuse


def test_bfloat16_compute_trains_with_float32_parameters(tmp_path):
    from grux.train import train_and_evaluate
    config, _, _ = parse_command_line(["--config=configs/adding.py:gru",
                                       "--config.model.dtype=bfloat16",
                                       "--config.task.length=20", "--config.num_train_steps=30",
                                       "--config.eval.every_steps=30",
                                       "--config.checkpoint.every_steps=30",
                                       "--config.log.progress=False",
                                       "--config.log.tensorboard=False"])
    config.optimizer.learning_rate, config.task.eval_examples = 1e-2, 256
    summary = train_and_evaluate(config, str(tmp_path))
    assert summary["final"]["test"]["loss"] < 0.1667     # below always predicting 1
    from cli_runs import checkpoint_state
    state = checkpoint_state(tmp_path)
    floats = {k: v.dtype for k, v in state.items() if v.dtype.kind == "f"}
    assert floats and all(d == np.float32 for d in floats.values()), floats
