"""Host-side evaluators in the trainer: their metrics join the split's, select the best
checkpoint and drive early stopping; ``eval.decode_every`` / ``eval.decode_examples`` bound
their cost; several processes each decode a share and score the gathered whole."""
import numpy as np
import pytest

from cli_runs import multihost_runs
from evaluator_task import DecodedAddingTask  # noqa: F401  (registers the task)
from grux.train import ConfigError, base_config, train_and_evaluate
from grux.train.writers import read_metrics


def config(steps=40, **eval_fields):
    c = base_config("test_decoded_adding")
    c.task.length, c.task.eval_examples, c.model.hidden = 12, 64, 16
    c.batch_size, c.num_train_steps = 16, steps
    c.optimizer.learning_rate = 1e-2
    c.eval.every_steps, c.checkpoint.every_steps, c.log.every_steps = 10, 10, 10
    c.log.tensorboard, c.log.progress = False, False
    for k, v in eval_fields.items():
        c.eval[k] = v
    return c


def evaluated(workdir, split="validation"):
    return {r["step"]: r for r in read_metrics(workdir) if r.get("split") == split}


def run(c, workdir):
    """Train; return the summary and the evaluator's call log."""
    from grux.tasks import get_task_class
    calls = []
    cls = get_task_class(c.task.name)
    original = cls.__init__

    def init(self, config):
        original(self, config)
        calls.append(self.evaluator.calls)

    cls.__init__ = init
    try:
        summary = train_and_evaluate(c, str(workdir))
    finally:
        cls.__init__ = original
    return summary, calls[0]


def test_evaluator_metric_joins_the_splits_and_selects_the_best(tmp_path):
    summary, calls = run(config(metric="validation/rounded_mae"), tmp_path)
    records = evaluated(tmp_path)
    assert sorted(records) == [10, 20, 30, 40]
    values = {s: r["rounded_mae"] for s, r in records.items()}
    best_step = min(values, key=values.get)
    assert summary["best"]["step"] == best_step
    assert summary["best"]["value"] == pytest.approx(values[best_step])
    assert "rounded_mae" in summary["final"]["test"]
    assert (tmp_path / "best" / str(best_step)).is_dir()
    assert calls == [(s, 0, 40) for _ in range(4) for s in ("validation", "test")]


def test_decode_every_and_examples_bound_the_cost_and_the_end_decodes_all(tmp_path):
    c = config(steps=50, metric="validation/loss", decode_every=2, decode_examples=8)
    _, calls = run(c, tmp_path)
    records = evaluated(tmp_path)
    with_metric = sorted(s for s, r in records.items() if "rounded_mae" in r)
    assert with_metric == [20, 40, 50]                  # every 2nd evaluation, and the last
    assert [n for split, _, n in calls if split == "validation"] == [8, 8, 40]


def test_evaluations_without_the_selection_metric_do_not_count_for_patience(tmp_path):
    # maximising the error: the first decoded evaluation stays the best; with decoding at
    # every 2nd evaluation, patience 2 needs two more *decoded* evaluations: step 60
    c = config(steps=200, metric="validation/rounded_mae", mode="max", patience=2,
               decode_every=2)
    summary = train_and_evaluate(c, str(tmp_path))
    assert summary["status"] == "early_stopped" and summary["step"] == 60
    assert summary["best"]["step"] == 20


def test_selecting_on_an_evaluator_metric_that_never_runs_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"decode_every=0 runs only at the end"):
        train_and_evaluate(config(metric="validation/rounded_mae", decode_every=0),
                           str(tmp_path))
    with pytest.raises(ConfigError, match=r"reports no metric 'bleu'.*rounded_mae"):
        train_and_evaluate(config(metric="validation/bleu"), str(tmp_path / "b"))


def test_two_processes_decode_shares_and_score_like_one(tmp_path):
    views, ref = multihost_runs(tmp_path, "decoded")
    assert views[0]["final"] == views[1]["final"]
    # each process decoded its half (20 of 40), the score covers all 40
    assert sorted(v["decoded"] for v in views) == [[["test", 0, 20], ["validation", 0, 20]],
                                                   [["test", 20, 20], ["validation", 20, 20]]]
    assert ref["decoded"] == [["test", 0, 40], ["validation", 0, 40]]
    for split in ("validation", "test"):
        np.testing.assert_allclose(views[0]["final"][split]["rounded_mae"],
                                   ref["final"][split]["rounded_mae"], rtol=1e-6)
