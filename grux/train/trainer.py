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

import datetime
import fcntl
import json
import math
import os
import socket
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
from grux.train import parallel, stop_signals
from grux.train.checkpoint import Checkpointer
from grux.train.config import ConfigError, validate
from grux.train.errors import (DistributedError, NonFiniteLossError, WorkdirError,
                               WorkdirLockedError)
from grux.train.optim import evaluation_params, make_optimizer
from grux.train.writers import MetricWriter, Progress, format_duration


LOCK_FILE = ".grux.lock"
CONFIG_HISTORY = "config_history.jsonl"


def _make_workdir(workdir: str) -> None:
    """Create ``workdir``; a path that is (or lies inside) a file is a :class:`WorkdirError`."""
    path = workdir
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    if path and not os.path.isdir(path):
        what = "is a file" if path == workdir else f"lies inside {path}, which is a file"
        raise WorkdirError(f"--workdir {workdir} {what}, not a directory")
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"--workdir {workdir}: cannot create it: {e.strerror}") from e


class _WorkdirLock:
    """An exclusive ``flock`` on ``workdir/.grux.lock`` held for the whole run, so a second
    run on the same workdir fails at once naming the first (its pid, host and start time)
    instead of interleaving checkpoints. The kernel releases it when the process dies."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 512, 0).decode(errors="replace").strip()
            os.close(self._fd)
            raise WorkdirLockedError(
                f"workdir {workdir} is in use by another grux-train ({holder or 'unknown'}); "
                "wait for it to finish or use another --workdir") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (f"pid {os.getpid()} on {socket.gethostname()}, started "
                             f"{datetime.datetime.now().isoformat(timespec='seconds')}\n"
                             ).encode(), 0)

    def release(self) -> None:
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor releases the flock


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
      DistributedError: a computation failed in a multi-process run (most often because
        another process died); the checkpoints already written are kept.
    """
    own_signals = not stop_signals.installed() and stop_signals.install()
    lock = None
    try:
        parallel.initialize_distributed(config.distributed)
        mesh = parallel.make_mesh()
        if jax.process_count() > 1:  # every process: a cluster log shows who joined
            print(parallel.describe_process(mesh), flush=True)
        validate(config, device_count=mesh.devices.size)
        config = ml_collections.ConfigDict(config.to_dict())  # private, unlocked copy
        workdir = os.path.abspath(workdir)
        is_main = jax.process_index() == 0
        if is_main:
            _make_workdir(workdir)
            lock = _WorkdirLock(workdir)
        task = get_task_class(config.task.name)(config)
        trainer = _Trainer(config, task, mesh, workdir, is_main)
        try:
            summary = trainer.run()
        except BaseException:
            trainer.close(quiet=True)  # the error in flight is the one to report
            raise
        trainer.close()
        return summary
    except Exception as e:
        if (not jax.distributed.is_initialized() or jax.process_count() == 1
                or not _runtime_failure(e)):
            raise
        text = " ".join(str(e).split())
        text = text if len(text) <= 400 else text[:400] + " ..."
        raise DistributedError(
            f"process {jax.process_index()} of {jax.process_count()}: a computation failed "
            f"(in a multi-process run most often because another process died or lost "
            f"contact: see its log): {text}. The checkpoints in {workdir} are kept: run the "
            "same command on every process again to resume from the newest") from e
    finally:
        if lock is not None:
            lock.release()
        if own_signals:
            stop_signals.uninstall()


# absl status codes that XLA's runtime errors start with when a collective or the
# coordination service fails (e.g. "UNKNOWN: Gloo AllGather failed: ... Connection reset")
_RUNTIME_STATUS = tuple(f"{code}: " for code in (
    "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "ABORTED", "CANCELLED",
    "FAILED_PRECONDITION", "DATA_LOSS"))


def _runtime_failure(error: BaseException) -> bool:
    """``error``, or an error it was raised from, is a failure of the XLA runtime: a
    ``JaxRuntimeError``, or the ``ValueError`` that a failed CPU (gloo) collective raises,
    whose message starts with an absl status code."""
    seen, e = set(), error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, jax.errors.JaxRuntimeError) or str(e).startswith(_RUNTIME_STATUS):
            return True
        e = e.__cause__ or e.__context__
    return False


def _record_config(workdir: str, config: ml_collections.ConfigDict, step: int) -> list[str]:
    """Write ``config.json`` (the config of the latest (re)start, which inference loads) and
    append it with its start step to ``config_history.jsonl``, so what earlier steps used is
    kept; return the fields that changed since the previous (re)start."""
    current = json.loads(config.to_json_best_effort())
    path = os.path.join(workdir, CONFIG_HISTORY)
    previous = None
    if os.path.isfile(path):
        with open(path) as f:
            lines = [line for line in f if line.strip()]
        previous = json.loads(lines[-1])["config"] if lines else None
    elif os.path.isfile(os.path.join(workdir, "config.json")):  # a workdir of older grux
        with open(os.path.join(workdir, "config.json")) as f:
            previous = json.load(f)
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, "time": datetime.datetime.now().isoformat(
            timespec="seconds"), "config": current}) + "\n")
    tmp = os.path.join(workdir, "config.json.tmp")
    with open(tmp, "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    os.replace(tmp, os.path.join(workdir, "config.json"))
    return [] if previous is None else _changed_fields(previous, current)


def _changed_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_fields(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {a!r} → {b!r}")
    return out


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

        self.evaluators = task.evaluators()
        self.train_step = parallel.make_train_step(train_loss, self.tx, mesh, schedule,
                                                   weight_noise=config.weight_noise)
        self.eval_step = parallel.make_eval_step(eval_loss, mesh)
        self.ckpt = Checkpointer(workdir, keep=config.checkpoint.keep,
                                 keep_best=config.checkpoint.keep_best,
                                 async_save=config.checkpoint.async_save)
        self.writer = MetricWriter(workdir, enabled=is_main,
                                   tensorboard=config.log.tensorboard)
        self.meta = {"data": self.train_data.get_state(), "best": None,
                     "evals_without_improvement": 0, "last_eval": None, "early_stopped": None,
                     "evaluations": 0}
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
        decoded = {m for ev in self.evaluators if split in ev.splits() for m in ev.metrics}
        if name in decoded - names and not self.config.eval.decode_every:
            raise ConfigError(f"config.eval.metric={self.config.eval.metric!r} comes from a "
                              "host-side evaluator, which config.eval.decode_every=0 runs only "
                              "at the end: set config.eval.decode_every >= 1")
        names |= decoded
        if name not in names:
            raise ConfigError(f"config.eval.metric={self.config.eval.metric!r}: the task "
                              f"reports no metric {name!r}; metrics: {sorted(names)}")

    # ----------------------------------------------------------------- state I/O
    def _restore(self) -> None:
        """Restore the newest good checkpoint; then record this (re)start's config and the
        task's artifacts (only now: a rejected resume must leave the workdir as it was)."""
        restored = self.ckpt.restore_latest(self.state)
        if restored is not None:
            self.state, meta = restored
            self.meta.update(meta)
            self.train_data.set_state(meta["data"])
        step = self.step
        if self.is_main:
            changed = _record_config(self.workdir, self.config, step)
            self.task.save_artifacts(self.workdir)
        self.writer.start(step)
        if restored is not None:
            self.say(f"resumed from checkpoint {self.ckpt.restored_from} (step {step})")
            self.writer.event(step, "resume")
            if self.is_main and changed:
                self.say(f"config changed since the previous start: {'; '.join(changed)} "
                         f"(every start's config is in {CONFIG_HISTORY})")

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

    def close(self, quiet: bool = False) -> None:
        try:
            self.ckpt.close(quiet=quiet)
        finally:
            self.writer.close()

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, params, decode: bool = False, examples: int = 0
                 ) -> dict[str, dict[str, float]]:
        """Metrics of every evaluation split: the jit-compiled pass, then, with ``decode``,
        the task's host-side evaluators on the first ``examples`` examples (0: all)."""
        results = {}
        for split, stream in self.eval_data.items():
            stream.restart()
            carry, total = self.eval_carry, None
            for local in stream:
                pairs, carry = self.eval_step(params, parallel.global_batch(local, self.mesh),
                                              carry)
                total = pairs if total is None else jax.tree.map(jnp.add, total, pairs)
            results[split] = self.task.summarize(_reduce([parallel.to_host(total)]))
        if decode and self.evaluators:
            model = nnx.view(nnx.merge(self.graphdef, parallel.local_copy(params), self.rest),
                             deterministic=True, raise_if_not_found=False)
            for ev in self.evaluators:
                for split in ev.splits():
                    n = ev.num_examples(split)
                    n = min(n, examples) if examples else n
                    mine = ev.predict(model, split, parallel.process_share(n))
                    results[split].update(ev.score(split, parallel.gather_sequences(mine)))
        self.meta["evaluations"] += 1
        return results

    def _decode_now(self, last: bool) -> tuple[bool, int]:
        """``(run the evaluators, on how many examples)`` for the coming evaluation."""
        e = self.config.eval
        if last:
            return bool(self.evaluators), 0
        due = bool(e.decode_every) and (self.meta["evaluations"] + 1) % e.decode_every == 0
        return bool(self.evaluators) and due, e.decode_examples

    def _after_eval(self, step: int, results: dict, track: bool = True) -> bool:
        """Log, track the best, save it; return True when early stopping triggers.

        An evaluation without the selection metric (a host-side one not run this time), or
        with ``track=False`` (a final full decode where training decoded a subset, so not
        comparable), is logged but neither updates the best nor counts towards patience."""
        for split, metrics in results.items():
            self.writer.write(step, split, metrics)
        self.meta["last_eval"] = {"step": step, "results": results}
        split, _, name = self.config.eval.metric.partition("/")
        text = "  ".join(f"{s}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items())
                         for s, m in results.items())
        if not track or name not in results[split]:
            self.say(f"[eval step {step}] {text}")
            return False
        value = results[split][name]
        best = self.meta["best"]
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
        signal_name = None
        if self.meta.get("early_stopped") is not None:
            status = "early_stopped"
            self.say(f"this run stopped early at step {start}; nothing to train")
        elif jax.process_count() == 1 and stop_signals.requested():
            status, signal_name = "preempted", stop_signals.requested()
            self.say(f"{signal_name} before the first training step: nothing new to save "
                     f"(the workdir holds step {start}); exiting")
        while step < total and status == "completed":
            batch = parallel.global_batch(next(self.train_data), self.mesh)
            self.state, pairs = self.train_step(self.state, batch)
            step += 1
            window.append(pairs)
            last = step == total
            do_eval = step % cfg.eval.every_steps == 0 or last
            stop_now = self._stop_requested(step)
            do_ckpt = step % cfg.checkpoint.every_steps == 0 or last or stop_now
            if step % cfg.log.every_steps == 0 or do_eval or do_ckpt:
                train_metrics = self._flush(window, step, t_window)
                window, t_window = [], time.perf_counter()
            early = do_eval and self._after_eval(step, self.evaluate(
                evaluation_params(self.state), *self._decode_now(last)))
            if early:
                self.meta["early_stopped"] = step  # a rerun must not train on
            if do_ckpt or early:
                self._save(step)
            if stop_now:
                status, signal_name = "preempted", stop_signals.requested() or "SIGTERM"
                self.ckpt.wait()
                self.say(f"{signal_name}: saved checkpoint at step {step}; exiting "
                         "(the same command resumes)")
                break
            if early:
                status = "early_stopped"
                self.say(f"early stopping at step {step}: {cfg.eval.metric} has not "
                         f"improved for {cfg.eval.patience} evaluations")
                break
        self.ckpt.wait()
        if self.meta["last_eval"] is None or self.meta["last_eval"]["step"] != step:
            if status == "completed":  # e.g. restarted after the last step: evaluate again
                self._after_eval(step, self.evaluate(evaluation_params(self.state),
                                                     *self._decode_now(True)))
        elif status == "early_stopped" and self.evaluators and cfg.eval.decode_examples:
            # the whole splits at the end, as a last evaluation would have decoded them
            self._after_eval(step, self.evaluate(evaluation_params(self.state), True, 0),
                             track=False)
        return self._summary(status, step, train_metrics, time.perf_counter() - t_start,
                             signal_name)

    def _stop_requested(self, step: int) -> bool:
        """A SIGTERM/SIGINT arrived (in any process: they agree at log points)."""
        requested = stop_signals.requested() is not None
        if jax.process_count() == 1:
            return requested
        if step % self.config.log.every_steps:
            return False  # agree across processes only at log points (one allgather)
        flags = multihost_utils.process_allgather(np.int32(requested))
        return bool(np.max(flags))

    def _summary(self, status, step, train_metrics, seconds, signal_name=None) -> dict:
        best, last = self.meta["best"], self.meta["last_eval"]
        summary = {"status": status, "signal": signal_name, "step": step,
                   "task": self.config.task.name,
                   "train": train_metrics, "final": last and last["results"],
                   "best": best, "seconds": seconds, "workdir": self.workdir,
                   "devices": int(self.mesh.devices.size),
                   # what the run ran on ("cpu", "NVIDIA H200", "TPU v5 lite"), so tables
                   # can say which machine a training time was measured on
                   "device_kind": self.mesh.devices.flat[0].device_kind,
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
