"""The task interface: what an experiment type plugs into the one trainer.

A task owns its model, data streams, loss and metrics; it never writes a training loop.

Metrics are pairs ``(sum, weight)`` of scalars computed on one device's shard, e.g. the summed
squared error and the number of sequences, or the summed token NLL and the number of real
tokens. The trainer adds pairs across devices (``psum``) and across steps or evaluation batches
before dividing, so every reported number is an exact weighted mean over the examples it
covers, whatever the device count or padding. The pair named ``"loss"`` is the training
objective: the trainer differentiates ``psum(sum) / psum(weight)``, the global mean.
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from grux.data.stream import BatchStream, seeded_rng

Metrics = dict[str, tuple[jax.Array, jax.Array]]


def weighted(values: jax.Array, weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(Σ wᵢ·vᵢ, Σ wᵢ)`` over all elements (``w = 1`` when ``weights`` is None)."""
    values = jnp.asarray(values, jnp.float32)
    if weights is None:
        return jnp.sum(values), jnp.asarray(values.size, jnp.float32)
    weights = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), values.shape)
    return jnp.sum(values * weights), jnp.sum(weights)


def swap_batch_axis(state: Any) -> Any:
    """``(L·D, B, H) ↔ (B, L·D, H)`` for every state array (an LSTM state has two): recurrent
    stacks keep states layer-major, carries between batches are batch-leading so they can be
    split over devices like the batch."""
    return jax.tree.map(lambda s: jnp.swapaxes(s, 0, 1), state)


def reset_rows(state: Any, reset: jax.Array) -> Any:
    """Zero the batch-leading state rows where ``reset (B,)`` is 1 (a stream restarts)."""
    keep = 1.0 - jnp.asarray(reset, jnp.float32)
    return jax.tree.map(lambda s: s * keep.reshape((-1,) + (1,) * (s.ndim - 1)).astype(s.dtype),
                        state)


class Evaluator(abc.ABC):
    """A metric that needs a host-side pass after the jit-compiled evaluation of a split:
    decode (beam search, CTC decoding, ...) then score (BLEU, error rates, ...).

    The trainer runs it on the split's first ``n`` examples (all of them, or
    ``eval.decode_examples``): each process calls :meth:`predict` on its contiguous share
    of ``range(n)``, the predictions are gathered in index order on every process, and
    :meth:`score` turns them into metrics that join the split's (``validation/bleu``), so
    ``eval.metric`` can select the best checkpoint and stop early on them. Predictions are
    integer sequences (token ids), the form that gathers across processes.
    """

    #: the metric names :meth:`score` returns
    metrics: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The evaluation splits (names of ``Task.eval_streams``) this evaluator scores."""

    @abc.abstractmethod
    def num_examples(self, split: str) -> int:
        """How many examples ``split`` has."""

    @abc.abstractmethod
    def predict(self, model: nnx.Module, split: str, indices: range) -> list[list[int]]:
        """Predictions for examples ``indices`` of ``split`` with ``model`` (in evaluation
        mode, parameters local to this process)."""

    @abc.abstractmethod
    def score(self, split: str, predictions: list[list[int]]) -> dict[str, float]:
        """Metrics of the predictions for examples ``0 .. len(predictions) - 1``."""


class Task(abc.ABC):
    """Base class of every task.

    Subclasses set ``name`` and implement the abstract methods. ``config`` is the full,
    validated experiment config; a task reads ``config.task`` and ``config.model``.
    """

    name: ClassVar[str]

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

    @staticmethod
    @abc.abstractmethod
    def default_config() -> ml_collections.ConfigDict:
        """Fields and defaults of ``{"task": ..., "model": ...}``: the schema the config
        validator checks experiment files and overrides against."""

    @staticmethod
    def validate(config: ml_collections.ConfigDict) -> None:
        """Raise ``ValueError`` naming the field for impossible task/model values."""

    @abc.abstractmethod
    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """The model, with freshly initialised parameters."""

    @abc.abstractmethod
    def train_stream(self, batch_size: int, process_index: int, process_count: int
                     ) -> BatchStream:
        """The (usually infinite) training stream of global batches of ``batch_size``."""

    @abc.abstractmethod
    def eval_streams(self, batch_size: int, process_index: int, process_count: int
                     ) -> dict[str, BatchStream]:
        """Finite evaluation streams by split name (e.g. ``validation``, ``test``)."""

    def initial_carry(self, model: nnx.Module, batch_size: int) -> Any:
        """State carried from one batch to the next (truncated BPTT); leaves lead with the
        batch axis. Stateless tasks return ``{}``."""
        return {}

    @abc.abstractmethod
    def loss(self, model: nnx.Module, batch: Any, *, rng: jax.Array, carry: Any,
             train: bool) -> tuple[Metrics, Any]:
        """Per-device loss: ``(metrics, new_carry)``, ``metrics["loss"]`` the objective."""

    def evaluators(self) -> list[Evaluator]:
        """Host-side evaluators (see :class:`Evaluator`); none by default."""
        return []

    def save_artifacts(self, workdir: str) -> None:
        """Write what inference needs besides the parameters (e.g. a vocabulary) into the
        workdir; called once by process 0 before training."""

    def load_artifacts(self, workdir: str) -> None:
        """Read back what :meth:`save_artifacts` wrote (inference from a workdir)."""

    def summarize(self, metrics: dict[str, float]) -> dict[str, float]:
        """Derived metrics from reduced ones (e.g. perplexity = exp(loss)); host side."""
        return dict(metrics)

    def report(self, summary: dict) -> list[str]:
        """Lines for the end-of-run summary that put the numbers in context."""
        return []


_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get_task_class(name: str) -> type[Task]:
    if name not in _REGISTRY:
        raise ValueError(f"config.task.name: unknown task {name!r}; known tasks: "
                         f"{sorted(_REGISTRY)}")
    return _REGISTRY[name]


def task_names() -> list[str]:
    return sorted(_REGISTRY)


SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


def length_sorted_stream(examples: list, length, batch_size: int, pad,
                         process_index: int, process_count: int) -> BatchStream:
    """A finite evaluation stream of ``examples`` sorted by ``length(example)`` (so similar
    lengths share a batch and little is padded), batch ``i`` = ``pad(examples of batch i,
    batch_size)`` (a short last batch is padded to full size by ``pad``)."""
    ordered = sorted(examples, key=length)

    def global_batch(i):
        return pad(ordered[i * batch_size:(i + 1) * batch_size], batch_size)

    return BatchStream(global_batch, batch_size, -(-len(ordered) // batch_size),
                       process_index=process_index, process_count=process_count)


def length_bucketed_stream(examples, length, batch_size: int, pad, seed: int,
                           process_index: int, process_count: int, *,
                           chunk_batches: int = 20, lengths=None) -> BatchStream:
    """An endless training stream of shuffled epochs whose batches hold similar lengths.

    Epoch ``e`` shuffles ``examples`` with ``seeded_rng(seed, 0, e)``, cuts the order into
    chunks of ``chunk_batches`` batches, sorts each chunk by ``length(example)`` and splits it
    into batches, and plays the epoch's batches in a shuffled order (a partial last batch is
    dropped). Every example is seen once per epoch, as with plain shuffling, but a batch is
    padded to its own longest member rather than to one of the longest in the set, which for
    recordings of 0.1-2.3 s is several times less padded work. Batch ``i`` depends only on
    ``(seed, i)``, so the stream resumes from its position. ``examples`` needs ``len`` and
    indexing only (a list, or a lazy reader with the ``lengths`` given instead of
    ``length``)."""
    per_epoch = len(examples) // batch_size
    if per_epoch < 1:
        raise ValueError(f"{len(examples)} training examples make no batch of {batch_size}")
    if lengths is None:
        lengths = [length(e) for e in examples]
    lengths = np.asarray(lengths)
    chunk = chunk_batches * batch_size

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        rng = seeded_rng(seed, 0, epoch)
        order = rng.permutation(len(examples))[:per_epoch * batch_size]
        batches = []
        for lo in range(0, len(order), chunk):
            part = order[lo:lo + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
        return [batches[k] for k in rng.permutation(len(batches))]

    cache: dict[int, list[np.ndarray]] = {}

    def global_batch(i: int):
        epoch, j = divmod(i, per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = epoch_batches(epoch)
        return pad([examples[k] for k in cache[epoch][j]], batch_size)

    return BatchStream(global_batch, batch_size, None, process_index=process_index,
                       process_count=process_count)


class GeneratedTask(Task):
    """A task whose batches are generated, needing no files: global batch ``i`` of ``split``
    is ``make_batch(seeded_rng(seed, SPLIT_IDS[split], i), batch_size)``, so every split is
    an endless (train) or ``ceil(task.eval_examples / batch)``-batch (evaluation) stream that
    is the same on any number of processes and resumes from one integer."""

    @abc.abstractmethod
    def make_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """One global batch drawn from ``rng``."""

    def _stream(self, split: str, batch_size: int, num_batches: int | None,
                process_index: int, process_count: int) -> BatchStream:
        seed = self.config.seed

        def global_batch(i: int) -> dict[str, np.ndarray]:
            return self.make_batch(seeded_rng(seed, SPLIT_IDS[split], i), batch_size)

        return BatchStream(global_batch, batch_size, num_batches,
                           process_index=process_index, process_count=process_count)

    def train_stream(self, batch_size, process_index, process_count):
        return self._stream("train", batch_size, None, process_index, process_count)

    def eval_streams(self, batch_size, process_index, process_count):
        n = -(-self.config.task.eval_examples // batch_size)
        return {s: self._stream(s, batch_size, n, process_index, process_count)
                for s in ("validation", "test")}
