"""The trainer in-process: learning on the default task, truncated BPTT, best/early stopping,
corrupt-checkpoint fallback, config/checkpoint mismatch, and the NaN stop."""
import json
import re

import numpy as np
import pytest

from cli_runs import assert_bitwise_equal, checkpoint_state, saved_steps, tiny_echo
from grux.tasks.adding import AddingTask
from grux.tasks.base import register
from grux.train import NonFiniteLossError, base_config, train_and_evaluate
from grux.train.errors import CheckpointMismatchError
from grux.train.writers import read_metrics


def test_default_task_loss_decreases_and_gru_learns(tmp_path):
    c = base_config("adding")
    c.task.length, c.task.eval_examples = 30, 512
    c.model.hidden, c.num_train_steps, c.optimizer.learning_rate = 32, 300, 3e-3
    c.eval.every_steps, c.checkpoint.every_steps, c.log.every_steps = 300, 300, 50
    c.log.tensorboard, c.log.progress = False, False
    summary = train_and_evaluate(c, str(tmp_path))
    train = [r["loss"] for r in read_metrics(tmp_path) if r.get("split") == "train"]
    assert train[-1] < 0.5 * train[0], train
    assert summary["final"]["test"]["loss"] < 0.05  # always-1 baseline: 0.167
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_truncated_bptt_carried_state_beats_reset_state(tmp_path):
    acc = {}
    for stateful in (True, False):
        c = tiny_echo(steps=300, task__stateful=stateful, optimizer__learning_rate=1e-2,
                      eval__every_steps=300, eval__metric="validation/accuracy", eval__mode="max")
        c.task.delay, c.task.eval_windows = 4, 8
        acc[stateful] = train_and_evaluate(c, str(tmp_path / str(stateful))
                                           )["final"]["validation"]["accuracy"]
    # without state the first 4 of 10 targets per window are coin flips: accuracy ≤ ~0.8
    assert acc[False] < 0.85 < 0.95 < acc[True], acc


def test_early_stopping_and_best_checkpoint(tmp_path):
    # maximising the loss: the first evaluation stays the best, so patience 2 stops at 30
    c = tiny_echo(steps=100, eval__mode="max", eval__patience=2)
    summary = train_and_evaluate(c, str(tmp_path))
    assert summary["status"] == "early_stopped" and summary["step"] == 30
    assert summary["best"]["step"] == 10
    assert sorted(p.name for p in (tmp_path / "best").iterdir() if p.name.isdigit()) == ["10"]
    assert saved_steps(tmp_path)[-1] == 30
    again = train_and_evaluate(c, str(tmp_path))  # rerun: nothing more to train
    assert again["status"] == "early_stopped" and again["step"] == 30
    assert saved_steps(tmp_path)[-1] == 30


def test_corrupt_latest_checkpoint_falls_back_and_keeps_files(tmp_path):
    ref = tmp_path / "ref"
    train_and_evaluate(tiny_echo(steps=40), str(ref))
    wd = tmp_path / "run"
    train_and_evaluate(tiny_echo(steps=30), str(wd))
    assert saved_steps(wd) == [10, 20, 30]
    # corrupt step 30: truncate every data file of its state
    for f in (wd / "checkpoints" / "30" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.warns(RuntimeWarning, match=r"checkpoints/30 could not be restored"):
        summary = train_and_evaluate(tiny_echo(steps=40), str(wd))
    assert summary["step"] == 40
    quarantined = list((wd / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith("checkpoints-30-")
    assert {10, 20, 40} <= set(saved_steps(wd))
    assert_bitwise_equal(checkpoint_state(wd), checkpoint_state(ref))


def test_restore_into_different_shapes_names_the_parameter(tmp_path):
    train_and_evaluate(tiny_echo(steps=10), str(tmp_path))
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    with pytest.raises(CheckpointMismatchError) as e:
        train_and_evaluate(tiny_echo(steps=20, model__hidden=24), str(tmp_path))
    assert "params.head.kernel.value is (16, 1) float32 in the checkpoint but (24, 1)" \
        in str(e.value)
    assert "params.rnn.layers.0.w_hh.value is (16, 48) float32 in the checkpoint but (24, 72)" \
        in str(e.value)
    with pytest.raises(CheckpointMismatchError,
                       match=r"params\.rnn\.layers\.1\.w_hh\.value \(16, 48\) is in the model "
                             "but not in the checkpoint"):
        train_and_evaluate(tiny_echo(steps=20, model__num_layers=2), str(tmp_path))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


@register
class _NanAddingTask(AddingTask):
    """The adding task with a NaN planted in training batch index 7 (step 8)."""
    name = "test_nan_adding"

    @staticmethod
    def default_config():
        c = AddingTask.default_config()
        c.task.name = "test_nan_adding"
        return c

    def train_stream(self, batch_size, process_index, process_count):
        stream = super().train_stream(batch_size, process_index, process_count)
        fn = stream.global_batch

        def poisoned(i):
            b = fn(i)
            if i == 7:
                b["x"][0, 0, 0] = np.nan
            return b

        stream.global_batch = poisoned
        return stream


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    c = base_config("test_nan_adding")
    c.task.length, c.task.eval_examples, c.model.hidden = 10, 64, 8
    c.num_train_steps, c.checkpoint.every_steps, c.log.every_steps = 20, 5, 10
    c.eval.every_steps, c.log.tensorboard, c.log.progress = 100, False, False
    with pytest.raises(NonFiniteLossError, match=r"at step 8;.*checkpoint \(step 5\) is kept"):
        train_and_evaluate(c, str(tmp_path))
    assert saved_steps(tmp_path) == [5]
    state = checkpoint_state(tmp_path)
    assert all(np.isfinite(v).all() for k, v in state.items() if v.dtype.kind == "f")
    events = [r for r in read_metrics(tmp_path) if r.get("event") == "non_finite"]
    assert events and events[0]["step"] == 8


def test_parameter_average_is_evaluated_loaded_and_resumed_exactly(tmp_path):
    """``optimizer.ema_decay``: training is bitwise the run without it, evaluation and the
    inference loader use the average (so the metrics differ), and a run resumed from a
    checkpoint carries the average on bitwise."""
    import jax
    from flax import nnx

    from grux.infer.loader import load_trained
    plain = train_and_evaluate(tiny_echo(steps=30), str(tmp_path / "plain"))
    averaged = train_and_evaluate(tiny_echo(steps=30, optimizer__ema_decay=0.9),
                                  str(tmp_path / "ema"))
    a, b = checkpoint_state(tmp_path / "plain"), checkpoint_state(tmp_path / "ema")
    params = {k: v for k, v in a.items() if k.startswith("['params']")}
    assert_bitwise_equal(params, {k: b[k] for k in params})
    prefix = "['opt_state'][2]['ema']"
    ema = {"['params']" + k[len(prefix):]: v for k, v in b.items() if k.startswith(prefix)}
    assert ema.keys() == params.keys()
    assert plain["final"]["validation"]["loss"] != averaged["final"]["validation"]["loss"]
    _, model, step = load_trained(str(tmp_path / "ema"), "latest")
    flat = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]
    def name(key):  # "['rnn']['layers'][0].value" and "['rnn']['layers']['0']['value']"
        return "/".join(re.findall(r"\w+", key))
    loaded = {name("['params']" + jax.tree_util.keystr(p)): np.asarray(v) for p, v in flat}
    ema, params = ({name(k): v for k, v in d.items()} for d in (ema, params))
    assert step == 30
    assert_bitwise_equal(loaded, ema)  # the loaded weights are the average...
    assert not any(np.array_equal(loaded[k], params[k]) for k in params)  # ...not the iterate
    resumed = tmp_path / "resumed"
    train_and_evaluate(tiny_echo(steps=20, optimizer__ema_decay=0.9), str(resumed))
    train_and_evaluate(tiny_echo(steps=30, optimizer__ema_decay=0.9), str(resumed))
    assert_bitwise_equal(checkpoint_state(resumed), b)
