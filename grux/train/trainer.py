"""The one trainer: ``train_and_evaluate(config, workdir)``.

Every task trains with this loop (flax ``lm1b``/``wmt`` and big_vision shape):

1. validate the config against its schema and the device count;
2. build the task's model, split it into ``(graphdef, params, rest)`` (``nnx.split``), and the
   optimizer from ``config.optimizer``;
3. restore the newest good checkpoint in ``workdir`` (params, optimizer state, step, RNG key,
   carried state, data position, best-metric tracking) or start fresh;
4. loop: next global batch → jit-compiled, shard_map data-parallel ``train_step`` (one shard
   per device, gradients averaged once) → metrics every ``log.every_steps`` (JSONL,
   TensorBoard, progress line; non-finite loss or gradient stops the run naming the step,
   before anything is saved) → evaluation every ``eval.every_steps`` (best tracking, early
   stopping) → checkpoint every ``checkpoint.every_steps`` (async), at the end, and on SIGTERM;
5. write ``summary.json`` and print a summary.

The result is a pure function of the config: batches are functions of their index, the RNG of
the step, so a run killed at any step and restarted with the same command reaches bitwise the
same parameters as one never interrupted (tested).
"""
from __future__ import annotations

import json
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from grux.tasks import get_task_class
from grux.train import parallel
from grux.train.checkpoint import Checkpointer
from grux.train.config import ConfigError, validate
from grux.train.optim import make_optimizer
from grux.train.writers import MetricWriter, Progress, format_duration


class NonFiniteLossError(FloatingPointError):
    """The training loss or gradient became NaN/Inf."""


class _Preemption:
    """SIGTERM → finish the current step, save a checkpoint, return."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _reduce(pairs_list: list[dict]) -> dict[str, float]:
    """Sum ``(sum, weight)`` pairs over steps/batches; return ``sum / weight`` per metric."""
    totals: dict[str, list[float]] = {}
    for pairs in pairs_list:
        for k, (s, w) in pairs.items():
            t = totals.setdefault(k, [0.0, 0.0])
            t[0] += float(s)
            t[1] += float(w)
    return {k: (s / w if w else float("nan")) for k, (s, w) in totals.items()}


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return math.isfinite(value)
    return value < best if mode == "min" else value > best


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train ``config`` in ``workdir`` (resuming from its checkpoints) and return the summary.

    Raises:
      ConfigError: a config field is unknown, mistyped or impossible (named).
      CheckpointMismatchError: the workdir's checkpoint does not fit this config's model.
      NonFiniteLossError: loss or gradient norm became NaN/Inf (the step is named).
    """
    parallel.initialize_distributed(config.distributed)
    mesh = parallel.make_mesh()
    validate(config, device_count=mesh.devices.size)
    config = ml_collections.ConfigDict(config.to_dict())  # private, unlocked copy
    workdir = os.path.abspath(workdir)
    is_main = jax.process_index() == 0
    if is_main:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))

    task = get_task_class(config.task.name)(config)
    if is_main:
        task.save_artifacts(workdir)
    trainer = _Trainer(config, task, mesh, workdir, is_main)
    try:
        return trainer.run()
    finally:
        trainer.close()


def initial_state(config: ml_collections.ConfigDict, task):
    """Fresh ``(model, graphdef, rest, state, tx, schedule)`` for ``config``; ``state`` is the
    train-state pytree a checkpoint holds: params, optimizer state, step, RNG key, carry."""
    model = task.build_model(nnx.Rngs(config.seed))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, schedule = make_optimizer(config.optimizer, config.num_train_steps)
    state = {"params": params, "opt_state": tx.init(params),
             "step": jnp.zeros((), jnp.int32), "rng": jax.random.PRNGKey(config.seed),
             "carry": task.initial_carry(model, config.batch_size)}
    return model, graphdef, rest, state, tx, schedule


class _Trainer:
    def __init__(self, config, task, mesh, workdir, is_main):
        self.config, self.task, self.mesh, self.workdir = config, task, mesh, workdir
        self.is_main = is_main
        pi, pc = jax.process_index(), jax.process_count()
        self.batch_size = config.batch_size
        self.eval_batch_size = config.eval.batch_size or config.batch_size

        model, self.graphdef, self.rest, state, self.tx, schedule = initial_state(config, task)
        self.train_data = task.train_stream(self.batch_size, pi, pc)
        self.eval_data = task.eval_streams(self.eval_batch_size, pi, pc)
        self.eval_carry = self._zeros_carry(model, self.eval_batch_size)
        self.state = self._place(state)

        graphdef, rest = self.graphdef, self.rest

        def train_loss(p, batch, rng, carry):
            return task.loss(nnx.merge(graphdef, p, rest), batch, rng=rng, carry=carry,
                             train=True)

        def eval_loss(p, batch, rng, carry):
            m = nnx.view(nnx.merge(graphdef, p, rest), deterministic=True,
                         raise_if_not_found=False)
            return task.loss(m, batch, rng=rng, carry=carry, train=False)

        self.train_step = parallel.make_train_step(train_loss, self.tx, mesh, schedule,
                                                   weight_noise=config.weight_noise)
        self.eval_step = parallel.make_eval_step(eval_loss, mesh)
        self.ckpt = Checkpointer(workdir, keep=config.checkpoint.keep,
                                 keep_best=config.checkpoint.keep_best,
                                 async_save=config.checkpoint.async_save)
        self.writer = MetricWriter(workdir, enabled=is_main,
                                   tensorboard=config.log.tensorboard)
        self.meta = {"data": self.train_data.get_state(), "best": None,
                     "evals_without_improvement": 0, "last_eval": None, "early_stopped": None}
        self._check_eval_metric()

    # ----------------------------------------------------------------- placement
    def _place(self, state: dict) -> dict:
        rep = NamedSharding(self.mesh, P())
        split = NamedSharding(self.mesh, P(parallel.DATA_AXIS))
        placed = {k: jax.device_put(v, rep) for k, v in state.items() if k != "carry"}
        placed["carry"] = jax.device_put(state["carry"], split)
        return placed

    def _zeros_carry(self, model, batch_size):
        shapes = jax.eval_shape(lambda: self.task.initial_carry(model, batch_size))
        split = NamedSharding(self.mesh, P(parallel.DATA_AXIS))
        return jax.jit(lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
                       out_shardings=split)()

    def _check_eval_metric(self):
        split, _, name = self.config.eval.metric.partition("/")
        if split not in self.eval_data:
            raise ConfigError(f"config.eval.metric={self.config.eval.metric!r}: the task has "
                              f"no split {split!r}; splits: {sorted(self.eval_data)}")
        stream = self.eval_data[split]
        local = stream.global_batch(0)
        shapes = jax.eval_shape(
            self.eval_step, self.state["params"],
            jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
                         local), self.eval_carry)[0]
        names = set(self.task.summarize({k: 1.0 for k in shapes}))
        if name not in names:
            raise ConfigError(f"config.eval.metric={self.config.eval.metric!r}: the task "
                              f"reports no metric {name!r}; metrics: {sorted(names)}")

    # ----------------------------------------------------------------- state I/O
    def _restore(self) -> None:
        restored = self.ckpt.restore_latest(self.state)
        if restored is None:
            return
        self.state, meta = restored
        self.meta.update(meta)
        self.train_data.set_state(meta["data"])
        step = self.step
        self.say(f"resumed from checkpoint {self.ckpt.manager.directory}/{step} (step {step})")
        self.writer.event(step, "resume")

    @property
    def step(self) -> int:
        return int(parallel.to_host(self.state["step"]))

    def _save(self, step: int) -> None:
        self.meta["data"] = self.train_data.get_state()
        if self.ckpt.save(step, self.state, dict(self.meta)):
            self.writer.event(step, "checkpoint")

    # ----------------------------------------------------------------- output
    def say(self, text: str) -> None:
        self.progress.message(text) if hasattr(self, "progress") else (
            print(text, flush=True) if self.is_main else None)

    def close(self) -> None:
        self.ckpt.close()
        self.writer.close()

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, params) -> dict[str, dict[str, float]]:
        results = {}
        for split, stream in self.eval_data.items():
            stream.restart()
            carry, total = self.eval_carry, None
            for local in stream:
                pairs, carry = self.eval_step(params, parallel.global_batch(local, self.mesh),
                                              carry)
                total = pairs if total is None else jax.tree.map(jnp.add, total, pairs)
            results[split] = self.task.summarize(_reduce([parallel.to_host(total)]))
        return results

    def _after_eval(self, step: int, results: dict) -> bool:
        """Log, track the best, save it; return True when early stopping triggers."""
        for split, metrics in results.items():
            self.writer.write(step, split, metrics)
        self.meta["last_eval"] = {"step": step, "results": results}
        split, _, name = self.config.eval.metric.partition("/")
        value = results[split][name]
        best = self.meta["best"]
        text = "  ".join(f"{s}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items())
                         for s, m in results.items())
        if _improved(value, None if best is None else best["value"], self.config.eval.mode):
            self.meta["best"] = {"step": step, "value": value, "results": results}
            self.meta["evals_without_improvement"] = 0
            self.meta["data"] = self.train_data.get_state()
            self.ckpt.save_best(step, self.state, dict(self.meta))
            text += f"  (best {self.config.eval.metric})"
        else:
            self.meta["evals_without_improvement"] += 1
        self.say(f"[eval step {step}] {text}")
        patience = self.config.eval.patience
        return bool(patience) and self.meta["evals_without_improvement"] >= patience

    # ----------------------------------------------------------------- the loop
    def _flush(self, window: list, step: int, t_window: float) -> dict[str, float]:
        """Fetch the window's metrics, stop on non-finite values, log their means."""
        pairs = parallel.to_host(window)
        first = step - len(pairs) + 1
        for i, p in enumerate(pairs):
            loss = float(p["loss"][0]) / float(p["loss"][1])
            gnorm = float(p["grad_norm"][0])
            if not (math.isfinite(loss) and math.isfinite(gnorm)):
                self.ckpt.wait()
                last = self.ckpt.latest_step()
                kept = (f"the last good checkpoint (step {last}) is kept in "
                        f"{self.ckpt.manager.directory}" if last is not None
                        else "no checkpoint had been saved yet")
                self.writer.event(first + i, "non_finite", loss=str(loss), grad_norm=str(gnorm))
                raise NonFiniteLossError(
                    f"non-finite training loss {loss} (gradient norm {gnorm}) at step "
                    f"{first + i}; stopping without saving. {kept}. Lower "
                    "optimizer.learning_rate or set optimizer.clip_norm.")
        metrics = self.task.summarize(_reduce(pairs))
        elapsed = time.perf_counter() - t_window
        items = sum(float(p["loss"][1]) for p in pairs)
        metrics["items_per_second"] = items / elapsed if elapsed > 0 else 0.0
        self.writer.write(step, "train", metrics)
        self.progress.update(step, metrics["loss"], items, elapsed)
        return metrics

    def run(self) -> dict:
        cfg = self.config
        total = cfg.num_train_steps
        self._restore()
        start = self.step
        self.progress = Progress(total, start, getattr(self.task, "unit", "seq"),
                                 enabled=self.is_main, bar=cfg.log.progress)
        if start == 0:
            n_params = sum(x.size for x in jax.tree.leaves(self.state["params"]))
            self.say(f"grux: task {cfg.task.name}, {n_params:,} parameters, "
                     f"{self.mesh.devices.size} device(s) ({jax.devices()[0].platform}) "
                     f"in {jax.process_count()} process(es), global batch {self.batch_size}, "
                     f"{total} steps → {self.workdir}")
        status, train_metrics, t_start = "completed", {}, time.perf_counter()
        window, t_window = [], time.perf_counter()
        step = start
        if self.meta.get("early_stopped") is not None:
            status = "early_stopped"
            self.say(f"this run stopped early at step {start}; nothing to train")
        with _Preemption() as preempt:
            while step < total and status == "completed":
                batch = parallel.global_batch(next(self.train_data), self.mesh)
                self.state, pairs = self.train_step(self.state, batch)
                step += 1
                window.append(pairs)
                last = step == total
                do_eval = step % cfg.eval.every_steps == 0 or last
                stop_now = self._preempted(preempt, step)
                do_ckpt = step % cfg.checkpoint.every_steps == 0 or last or stop_now
                if step % cfg.log.every_steps == 0 or do_eval or do_ckpt:
                    train_metrics = self._flush(window, step, t_window)
                    window, t_window = [], time.perf_counter()
                early = do_eval and self._after_eval(step, self.evaluate(self.state["params"]))
                if early:
                    self.meta["early_stopped"] = step  # a rerun must not train on
                if do_ckpt or early:
                    self._save(step)
                if stop_now:
                    status = "preempted"
                    self.say(f"SIGTERM: saved checkpoint at step {step}; exiting")
                    break
                if early:
                    status = "early_stopped"
                    self.say(f"early stopping at step {step}: {cfg.eval.metric} has not "
                             f"improved for {cfg.eval.patience} evaluations")
                    break
        self.ckpt.wait()
        if self.meta["last_eval"] is None or self.meta["last_eval"]["step"] != step:
            if status == "completed":  # e.g. restarted after the last step: evaluate again
                self._after_eval(step, self.evaluate(self.state["params"]))
        return self._summary(status, step, train_metrics, time.perf_counter() - t_start)

    def _preempted(self, preempt: _Preemption, step: int) -> bool:
        if jax.process_count() == 1:
            return preempt.requested
        if step % self.config.log.every_steps:
            return False  # agree across processes only at log points (one allgather)
        flags = multihost_utils.process_allgather(np.int32(preempt.requested))
        return bool(np.max(flags))

    def _summary(self, status, step, train_metrics, seconds) -> dict:
        best, last = self.meta["best"], self.meta["last_eval"]
        summary = {"status": status, "step": step, "task": self.config.task.name,
                   "train": train_metrics, "final": last and last["results"],
                   "best": best, "seconds": seconds, "workdir": self.workdir,
                   "devices": int(self.mesh.devices.size),
                   "processes": jax.process_count()}
        if self.is_main and status != "preempted":
            with open(os.path.join(self.workdir, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
        lines = [f"grux {self.config.task.name}: {status} at step {step}/"
                 f"{self.config.num_train_steps} in {format_duration(seconds)} "
                 f"on {summary['devices']} device(s)"]
        if best is not None:
            lines.append(f"best {self.config.eval.metric} = {best['value']:.4f} at step "
                         f"{best['step']}")
            for split, m in best["results"].items():
                lines.append(f"  {split:>6}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
            lines += ["  " + line for line in self.task.report(best["results"])]
        lines.append(f"workdir {self.workdir} (metrics.jsonl, tensorboard/, checkpoints/, "
                     "best/, summary.json)")
        self.say("\n".join(lines))
        return summary
