"""Deterministic, shardable, resumable batch streams: the data interface the trainer consumes.

A stream is defined by one pure function ``global_batch(index) -> batch`` (a pytree of NumPy
arrays whose leading axis is the global batch). Because batch ``i`` depends on nothing but
``i`` (and the seed the function closes over), the stream's whole state is one integer, the
position, which goes into every checkpoint: a resumed run sees exactly the batches an
uninterrupted one would. Each process takes its contiguous slice of rows
``[p·B/P, (p+1)·B/P)`` of the global batch, and the trainer spreads that slice over its local
devices, so the same config yields the same global batches on 1 device, 8 devices or several
hosts.

Finite streams (evaluation splits, one epoch of a dataset) give ``num_batches``; infinite
ones (synthetic tasks, multi-epoch training with per-epoch shuffles) give ``None``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

BatchFn = Callable[[int], Any]


class BatchStream:
    """Iterator over process-local batches with a saveable position.

    Args:
      global_batch: ``index -> batch`` pytree (NumPy leaves, leading axis = global batch).
      batch_size: the global batch size every ``global_batch(i)`` returns.
      num_batches: stream length, or ``None`` for an infinite stream.
      process_index, process_count: this process's slice of every global batch.
    """

    def __init__(self, global_batch: BatchFn, batch_size: int, num_batches: int | None = None,
                 *, process_index: int = 0, process_count: int = 1):
        if batch_size % process_count:
            raise ValueError(f"global batch size {batch_size} is not divisible by the "
                             f"{process_count} processes")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        self.global_batch = global_batch
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.process_index = process_index
        self.process_count = process_count
        self.position = 0

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.process_count

    def get_state(self) -> dict:
        """JSON-serialisable state (goes into the checkpoint)."""
        return {"position": int(self.position)}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("position"), int):
            raise ValueError(f"malformed data-stream state {state!r}: expected "
                             "{'position': int}")
        if state["position"] < 0 or (self.num_batches is not None
                                     and state["position"] > self.num_batches):
            raise ValueError(f"data-stream position {state['position']} outside the stream "
                             f"of {self.num_batches} batches")
        self.position = state["position"]

    def __iter__(self) -> Iterator[Any]:
        return self

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("infinite stream has no length")
        return self.num_batches

    def __next__(self) -> Any:
        if self.num_batches is not None and self.position >= self.num_batches:
            raise StopIteration
        batch = self.global_batch(self.position)
        self.position += 1
        return self._local(batch)

    def restart(self) -> "BatchStream":
        """Rewind to the first batch (evaluation passes)."""
        self.position = 0
        return self

    def _local(self, batch: Any) -> Any:
        lo = self.process_index * self.local_batch_size
        hi = lo + self.local_batch_size

        def take(x):
            x = np.asarray(x)
            if x.ndim == 0 or x.shape[0] != self.batch_size:
                raise ValueError(f"batch leaf of shape {x.shape} does not lead with the global "
                                 f"batch size {self.batch_size}")
            return x[lo:hi]

        import jax  # local import keeps this module importable without initialising JAX
        return jax.tree.map(take, batch)


def seeded_rng(seed: int, *index: int) -> np.random.Generator:
    """A NumPy generator that is a pure function of ``(seed, *index)`` (SeedSequence mix)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, index)]))
