"""RNNsearch (Bahdanau, Cho & Bengio 2014): a bidirectional GRU encoder and a GRU decoder
with additive attention, here with input feeding (Luong et al. 2015).

Encoder: source embeddings ``E x_j`` → bidirectional GRU stack → annotations
``h_j = [h→_j ; h←_j] ∈ R^{2H}`` (padding excluded: each direction reads only the sentence).

Decoder, for target step ``i = 1..T`` with ``y_0 = bos``, ``o_0 = 0``,
``s_0 = tanh(W_init h←_1 + b_init)`` (the backward state after reading the whole sentence):

    e_ij = vᵀ tanh(W_a s_{i−1} + U_a h_j + b_a)           (additive attention scores)
    α_ij = softmax_j(e_ij) over the source's real tokens  (padding gets weight 0)
    c_i  = Σ_j α_ij h_j                                    (context)
    s_i  = GRU(s_{i−1}, [E y_{i−1} ; c_i ; o_{i−1}])      (input feeding: o_{i−1})
    o_i  = tanh(W_o [s_i ; c_i ; E y_{i−1}] + b_o)        (Bahdanau's deep output, tanh for maxout)
    p(y_i | y_<i, x) = softmax(W_y o_i + b_y)

Dropout (``model.dropout``) applies to the embeddings, between encoder layers, and to ``o_i``
before the softmax layer (not to the ``o_i`` fed back).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax import lax

from grux.nn import GRULayer
from grux.tasks.common import build_recurrent, layer_options
from grux.ops.scan import match_vma


def additive_attention(query: jax.Array, keys: jax.Array, values: jax.Array,
                       mask: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Bahdanau attention from projected query and keys.

    ``e_j = vᵀ tanh(query + keys_j)``; ``α = softmax(e)`` over positions with ``mask_j = 1``
    (exactly 0 elsewhere; a row with no valid position gets ``α = 0``); ``c = Σ_j α_j values_j``.

    Args:
      query: ``(B, A)`` = ``W_a s``; keys: ``(B, S, A)`` = ``U_a h_j + b_a``;
      values: ``(B, S, D)``; mask: ``(B, S)`` (bool or 0/1); v: ``(A,)``.

    Returns:
      ``(context (B, D), weights (B, S))``.
    """
    mask = mask.astype(bool)
    scores = jnp.tanh(query[:, None, :] + keys) @ v
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1) * mask
    return jnp.einsum("bs,bsd->bd", weights, values), weights


class RNNSearch(nnx.Module):
    """Encoder-decoder with attention; see the module docstring for the equations."""

    def __init__(self, vocab_size: int, m: ml_collections.ConfigDict, rngs: nnx.Rngs):
        e, h, hd, a, o = m.embed, m.hidden, m.decoder_hidden, m.attention, m.deep_output
        self.sizes = (e, h, hd, a, o)
        self.formulation = m.formulation
        self.src_embed = nnx.Embed(vocab_size, e, rngs=rngs)
        self.tgt_embed = nnx.Embed(vocab_size, e, rngs=rngs)
        self.encoder = build_recurrent(m, e, rngs, cell="gru", bidirectional=True)
        self.init = nnx.Linear(h, hd, rngs=rngs)
        self.att_query = nnx.Linear(hd, a, use_bias=False, rngs=rngs)
        self.att_keys = nnx.Linear(2 * h, a, rngs=rngs)
        self.att_v = nnx.Param(jax.random.normal(rngs.params(), (a,)) / jnp.sqrt(a))
        self.cell = GRULayer(e + 2 * h + o, hd, rngs=rngs, **layer_options(m, "gru"))
        self.deep_out = nnx.Linear(hd + 2 * h + e, o, rngs=rngs)
        self.head = nnx.Linear(o, vocab_size, rngs=rngs)
        self.drop = nnx.Dropout(m.dropout, rngs=rngs)

    # -------------------------------------------------------------------- encoder
    def encode(self, src: jax.Array, src_mask: jax.Array, rngs=None) -> dict:
        """``src (B, S)`` ids, ``src_mask (B, S)`` → annotations ``(B, S, 2H)``, attention
        keys ``(B, S, A)``, the mask, and the decoder's initial state ``(s_0, o_0)``."""
        keys = [None, None] if rngs is None else list(jax.random.split(rngs, 2))
        x = self.drop(self.src_embed(src), rngs=keys[0])
        mask = src_mask.astype(bool)
        ann, finals = self.encoder(x, mask=mask, rngs=keys[1])
        s0 = jnp.tanh(self.init(finals[-1]))          # last layer, backward direction
        o0 = match_vma(jnp.zeros((src.shape[0], self.sizes[4]), ann.dtype), s0)
        return {"ann": ann, "keys": self.att_keys(ann), "mask": mask, "state": (s0, o0)}

    # -------------------------------------------------------------------- decoder
    def _input_proj(self, emb: jax.Array) -> jax.Array:
        """The embedding's share of the GRU input projection, ``E y W_ih[:E] + b_ih``."""
        return self.cell.project(emb, features=slice(0, self.sizes[0]))

    def _step(self, enc: dict, state, emb, emb_proj):
        """One decoder step from ``(s_{i−1}, o_{i−1})`` and ``E y_{i−1}`` (+ its projection):
        returns ``((s_i, o_i), α_i)``."""
        s, o = state
        e = self.sizes[0]
        c, alpha = additive_attention(self.att_query(s), enc["keys"], enc["ann"], enc["mask"],
                                      self.att_v[...])
        xp = emb_proj + self.cell.project(jnp.concatenate([c, o], axis=-1),
                                          features=slice(e, None), bias=False)
        s, _ = self.cell.step_projected(xp, s)
        o = jnp.tanh(self.deep_out(jnp.concatenate([s, c, emb], axis=-1)))
        return (s, o), alpha

    def decode_step(self, enc: dict, state, prev: jax.Array):
        """Inference step: ``prev (N,)`` ids → ``(log_probs (N, V), state, α (N, S))``."""
        emb = self.tgt_embed(prev)
        state, alpha = self._step(enc, state, emb, self._input_proj(emb))
        return jax.nn.log_softmax(self.head(state[1]).astype(jnp.float32)), state, alpha

    def __call__(self, src, src_mask, tgt_in, rngs=None):
        """Teacher forcing: ``(logits (B, T, V), attention (B, T, S))`` for ``tgt_in (B, T)``."""
        keys = [None] * 3 if rngs is None else list(jax.random.split(rngs, 3))
        enc = self.encode(src, src_mask, rngs=keys[0])
        emb = self.drop(self.tgt_embed(tgt_in), rngs=keys[1])
        emb_tm = jnp.swapaxes(emb, 0, 1)
        proj_tm = self._input_proj(emb_tm)

        def body(state, inp):
            state, alpha = self._step(enc, state, *inp)
            return state, (state[1], alpha)

        _, (outs, alphas) = lax.scan(body, enc["state"], (emb_tm, proj_tm))
        outs = self.drop(jnp.swapaxes(outs, 0, 1), rngs=keys[2])
        return self.head(outs), jnp.swapaxes(alphas, 0, 1)
