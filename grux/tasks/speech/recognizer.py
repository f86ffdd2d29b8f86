"""Running a trained speech model over a list of recordings: batched, jit-compiled, in
evaluation mode (no dropout, no augmentation). Used by the evaluators during training and by
``grux-transcribe``, so both see the same numbers."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from grux.tasks.speech.acoustic import pad_audio


class Recognizer:
    """Outputs of ``model(audio, lengths)`` per recording, in the input order.

    Recordings are sorted by length and run ``batch_size`` at a time, padded to a multiple
    of ``bucket`` samples (few shapes, few compilations; padding changes no output). A
    model returning ``(logits (B, T, K), frame_mask (B, T))`` (CTC) gives each recording's
    ``(T_valid, K)`` log probabilities; one returning ``logits (B, K)`` gives its ``(K,)``
    log probabilities."""

    def __init__(self, model, *, batch_size: int = 32, bucket: int = 2000):
        self.graphdef, self.state = nnx.split(
            nnx.view(model, deterministic=True, raise_if_not_found=False))
        self.batch_size, self.bucket = batch_size, bucket
        graphdef = self.graphdef

        def run(state, audio, lengths):
            out = nnx.merge(graphdef, state)(audio, lengths)
            if isinstance(out, tuple):
                logits, mask = out
                return jax.nn.log_softmax(logits, -1), mask.sum(1)
            return jax.nn.log_softmax(out, -1), None

        self._run = jax.jit(run)

    def use(self, model) -> None:
        """Run ``model``'s parameters from now on (same architecture, compiled code kept)."""
        self.state = nnx.split(nnx.view(model, deterministic=True,
                                        raise_if_not_found=False))[1]

    def log_probs(self, audio: list[np.ndarray]) -> list[np.ndarray]:
        order = sorted(range(len(audio)), key=lambda i: len(audio[i]))
        out: list[np.ndarray] = [np.zeros(0)] * len(audio)
        for lo in range(0, len(order), self.batch_size):
            rows = order[lo:lo + self.batch_size]
            batch = pad_audio([audio[i] for i in rows], self.batch_size, self.bucket)
            lp, frames = self._run(self.state, jnp.asarray(batch["audio"]),
                                   jnp.asarray(batch["lengths"]))
            lp = np.asarray(lp)
            for j, i in enumerate(rows):
                out[i] = lp[j] if frames is None else lp[j, :int(frames[j])]
        return out
