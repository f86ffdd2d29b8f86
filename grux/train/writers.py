"""Metric sinks: a JSONL file, TensorBoard event files (tensorboardX, no TensorFlow) and a
progress line with step, loss, throughput and ETA. Only process 0 writes."""
from __future__ import annotations

import json
import math
import os
import sys
import time


class MetricWriter:
    """Appends ``{"step", "split", "time", <metrics>}`` records to ``workdir/metrics.jsonl``
    and mirrors scalars to TensorBoard as ``<split>/<name>``.

    :meth:`start` opens both at the step training (re)starts from. A resumed run replays the
    steps after its checkpoint, so ``start(s)`` first drops the records of steps after ``s``
    that the interrupted run wrote (the file then holds each step once, in order), then
    appends a ``{"event": "resume", "step": s}`` record; TensorBoard is told to purge its
    events after ``s`` the same way (``purge_step``)."""

    def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True):
        self.enabled, self.tensorboard = enabled, tensorboard
        self.workdir = workdir
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = None
        self._tb = None

    def start(self, step: int) -> None:
        if not self.enabled:
            return
        os.makedirs(self.workdir, exist_ok=True)
        if step > 0 and os.path.isfile(self.path):
            drop_records_after(self.path, step)
        self._file = open(self.path, "a", buffering=1)
        if self.tensorboard:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(self.workdir, "tensorboard"),
                                     purge_step=step + 1 if step > 0 else None)

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if self._file is None:
            return
        record = {"step": int(step), "split": split, "time": round(time.time(), 3)}
        record.update({k: _json_float(v) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"{split}/{k}", v, step)

    def event(self, step: int, name: str, **info) -> None:
        if self._file is not None:
            self._file.write(json.dumps({"step": int(step), "event": name, **info}) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()


def drop_records_after(path: str, step: int) -> None:
    """Rewrite ``path`` (atomically) without the records of steps after ``step``."""
    with open(path) as f:
        lines = f.readlines()
    keep = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) > step:
                continue
        except json.JSONDecodeError:  # a line cut by a kill: drop it
            continue
        keep.append(line if line.endswith("\n") else line + "\n")
    if len(keep) != len(lines):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, path)


def _json_float(v):
    v = float(v)
    return v if math.isfinite(v) else str(v)  # JSON has no NaN/Inf


def read_metrics(workdir: str) -> list[dict]:
    """All records of ``workdir/metrics.jsonl`` (for tests and analysis)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """``step 1200/3000 [40%] loss 0.0123 | 5.2k seq/s | ETA 1m23s``.

    On a terminal the line is redrawn in place; otherwise (CI logs, files) one line is printed
    per update."""

    def __init__(self, total: int, start: int, unit: str, *, enabled: bool = True,
                 bar: bool = True):
        self.total, self.start, self.unit = total, start, unit
        self.enabled, self.bar = enabled, bar
        self.t0 = time.perf_counter()
        self.tty = sys.stdout.isatty()

    def update(self, step: int, loss: float, items: float, elapsed: float) -> None:
        if not (self.enabled and self.bar):
            return
        done = step - self.start
        rate = items / elapsed if elapsed > 0 else 0.0
        per_step = (time.perf_counter() - self.t0) / max(done, 1)
        eta = format_duration(per_step * (self.total - step))
        pct = 100.0 * step / max(self.total, 1)
        line = (f"step {step}/{self.total} [{pct:3.0f}%] loss {loss:.4f} | "
                f"{_si(rate)} {self.unit}/s | ETA {eta}")
        if self.tty:
            sys.stdout.write("\r\033[K" + line)
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def message(self, text: str) -> None:
        """A line that must not be overwritten (eval results, checkpoints)."""
        if not self.enabled:
            return
        if self.tty:
            sys.stdout.write("\r\033[K")
        print(text, flush=True)


def _si(x: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.1f}{suffix}"
    return f"{x:.1f}"
