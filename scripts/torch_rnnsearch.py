"""A plain-PyTorch twin of grux's translation training step (RNNsearch), for throughput
benchmarks beside ``scripts/benchmark_train.py``'s grux step. ``torch`` is passed in by the
caller (never imported here): grux does not depend on it.

    loop = TorchTranslateLoop(torch, config.task.vocab_size, config.model, config.optimizer)
    loop.run(batches)          # one optimizer step per batch of task.train_stream(...)
    loop.mean_loss(10)

Mirrored from ``grux/tasks/translate/model.py`` (RNNSearch), with the sizes of
``config.model`` (embed, hidden, decoder_hidden, attention, deep_output, num_layers,
dropout):

* separate source and target embeddings (one shared vocabulary, two tables, as grux);
* encoder: ``nn.GRU`` bidirectional stack of ``num_layers`` over the source embeddings,
  packed by the lengths of ``src_mask`` (each direction reads only the sentence; padded
  annotations are 0), dropout between layers as ``nn.GRU``'s ``dropout``;
* ``s_0 = tanh(W_init h←_1 + b_init)`` from the last layer's backward final state, ``o_0 = 0``;
* additive attention ``e_ij = vᵀ tanh(W_a s_{i−1} + U_a h_j + b_a)`` (``W_a`` without bias),
  softmax over the real source tokens only, context ``c_i = Σ_j α_ij h_j``;
* ``nn.GRUCell`` decoder on ``[E y_{i−1}; c_i; o_{i−1}]`` (input feeding), deep output
  ``o_i = tanh(W_o [s_i; c_i; E y_{i−1}] + b_o)``, softmax layer ``W_y o_i + b_y``;
* dropout (``model.dropout``) on both embeddings, between encoder layers and on ``o_i``
  before the softmax layer (not on the ``o_i`` fed back);
* loss: token-mean cross entropy over ``tgt_mask`` (no label smoothing: grux has none);
* optimizer: ``clip_grad_norm_(clip_norm)`` then Adam/AdamW (lr, b1, b2, eps,
  weight_decay of ``config.optimizer``); constant learning rate (the multi30k configs'
  schedule; others raise);
* initialisation as grux draws it (distributions, not values): truncated-normal LeCun
  kernels, orthogonal recurrent blocks per gate, zero biases, embeddings std 1/sqrt(embed),
  ``v ~ N(0, 1/attention)``.

Checked on ``en-de,small`` with ``--config.model.formulation=cudnn``: 8,451,392 parameters on
both sides; with grux's weights copied in and dropout off, loss and gradient norm equal grux's
to float rounding (e.g. 8.983493 vs 8.983492, 0.290771 both).

Known differences:

* the GRU is the cuDNN/PyTorch formulation (reset after the recurrent matmul, two bias
  vectors). ``configs/multi30k.py`` sets ``model.formulation="cho"`` for every size, which
  torch cannot compute; compare against grux with ``--config.model.formulation=cudnn``
  (then the parameter count is equal). Against "cho" grux has 3·H fewer parameters per
  GRU direction (no ``b_hh``: 2304 for ``en-de,small``) and a different cell function.
* grux projects the decoder's embeddings for all steps in one matmul before its scan; here
  ``GRUCell`` projects the whole ``[E y; c; o]`` at each step (same function, same FLOPs
  up to batching).
* ``clip_grad_norm_`` divides by ``norm + 1e-6`` where optax divides by ``norm``;
  ``config.weight_noise`` (a trainer field, 0 in these configs) is not mirrored.
* grux's ``model.dtype``, ``unroll``, ``remat``, ``backward`` and ``fuse_directions`` are
  ways of computing the same function and have no counterpart here (float32 only).
"""
from __future__ import annotations

import math

import numpy as np


class TorchTranslateLoop:
    """grux's RNNsearch training step in plain PyTorch (same interface as ``TorchLoop``)."""

    def __init__(self, torch, vocab_size: int, model_config, optimizer_config, seed: int = 0):
        self.torch = torch
        torch.manual_seed(seed)
        nn = torch.nn
        m, o = model_config, optimizer_config
        if m.cell != "gru":
            raise ValueError(f"model.cell must be 'gru', got {m.cell!r}")
        e, h, hd, a, do = m.embed, m.hidden, m.decoder_hidden, m.attention, m.deep_output
        self.dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.mods = nn.ModuleDict({
            "src_embed": nn.Embedding(vocab_size, e),
            "tgt_embed": nn.Embedding(vocab_size, e),
            "encoder": nn.GRU(e, h, num_layers=m.num_layers, bidirectional=True,
                              batch_first=True, dropout=m.dropout if m.num_layers > 1 else 0.0),
            "init": nn.Linear(h, hd),
            "att_query": nn.Linear(hd, a, bias=False),
            "att_keys": nn.Linear(2 * h, a),
            "cell": nn.GRUCell(e + 2 * h + do, hd),
            "deep_out": nn.Linear(hd + 2 * h + e, do),
            "head": nn.Linear(do, vocab_size),
            "drop": nn.Dropout(m.dropout),
        })
        self._init_like_grux()
        self.mods["att"] = nn.ParameterDict({"v": nn.Parameter(torch.randn(a) / math.sqrt(a))})
        self.mods.to(self.dev).train()
        self.params = list(self.mods.parameters())

        if o.schedule != "constant" or o.warmup_steps:
            raise NotImplementedError(f"optimizer schedule {o.schedule!r} with "
                                      f"{o.warmup_steps} warm-up steps (constant only)")
        kw = {"lr": o.learning_rate, "betas": (o.b1, o.b2), "eps": o.eps,
              "weight_decay": o.weight_decay}
        if o.name == "adam":      # optax: clip → add_decayed_weights (L2) → adam = torch Adam
            self.opt = torch.optim.Adam(self.params, **kw)
        elif o.name == "adamw":   # decoupled decay, as optax.adamw
            self.opt = torch.optim.AdamW(self.params, **kw)
        else:
            raise NotImplementedError(f"optimizer {o.name!r} (adam and adamw only)")
        self.clip_norm = o.clip_norm
        self.losses: list = []

    def _init_like_grux(self) -> None:
        """grux's initial distributions (torch stores kernels transposed, ``(out, in)``)."""
        init = self.torch.nn.init

        def lecun(w):  # jax lecun_normal: truncated at ±2σ, σ corrected to 1/sqrt(fan_in)
            std = 1.0 / math.sqrt(w.shape[1]) / 0.87962566103423978
            init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)

        with self.torch.no_grad():
            for name, p in self.mods.named_parameters():
                if "bias" in name:
                    init.zeros_(p)
                elif "embed" in name:   # flax Embed: variance_scaling(1, fan_in=features)
                    lecun(p)
                elif "weight_hh" in name:  # orthogonal per gate block (r, z, n)
                    for block in p.chunk(3, dim=0):
                        init.orthogonal_(block)
                else:                   # weight_ih, Linear weights
                    lecun(p)

    def _loss(self, b: dict):
        torch, mods = self.torch, self.mods
        nn = torch.nn
        src = torch.from_numpy(b["src"]).long().to(self.dev)
        src_mask = torch.from_numpy(b["src_mask"]).to(self.dev) > 0
        tgt_in = torch.from_numpy(b["tgt_in"]).long().to(self.dev)
        tgt_out = torch.from_numpy(b["tgt_out"]).long().to(self.dev)
        tgt_mask = torch.from_numpy(b["tgt_mask"]).to(self.dev)
        batch, slen = src.shape

        # encoder: packed, so each direction reads only the sentence (lengths >= 1 always:
        # a source is at least [eos]); padded annotations come back as zeros, as in grux
        lengths = torch.from_numpy(np.asarray(b["src_mask"]).sum(1).astype(np.int64))
        x = mods["drop"](mods["src_embed"](src))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        ann, finals = mods["encoder"](packed)
        ann, _ = nn.utils.rnn.pad_packed_sequence(ann, batch_first=True, total_length=slen)
        s = torch.tanh(mods["init"](finals[-1]))   # last layer, backward direction
        o = s.new_zeros(batch, mods["deep_out"].out_features)
        keys = mods["att_keys"](ann)                # U_a h_j + b_a, (B, S, A)

        emb = mods["drop"](mods["tgt_embed"](tgt_in))   # (B, T, E), dropped once for both uses
        outs = []
        for i in range(tgt_in.shape[1]):
            scores = torch.tanh(mods["att_query"](s)[:, None, :] + keys) @ mods["att"]["v"]
            alpha = torch.softmax(scores.masked_fill(~src_mask, torch.finfo(scores.dtype).min),
                                  dim=-1)
            c = torch.einsum("bs,bsd->bd", alpha, ann)
            s = mods["cell"](torch.cat([emb[:, i], c, o], dim=-1), s)
            o = torch.tanh(mods["deep_out"](torch.cat([s, c, emb[:, i]], dim=-1)))
            outs.append(o)
        logits = mods["head"](mods["drop"](torch.stack(outs, dim=1)))
        nll = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                          tgt_out.reshape(-1), reduction="none")
        tokens = tgt_mask.sum()
        return (nll * tgt_mask.reshape(-1)).sum() / tokens, tokens

    def run(self, batches) -> None:
        torch = self.torch
        for b in batches:
            loss, tokens = self._loss(b)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
            self.opt.step()
            self.losses.append((loss.detach() * tokens, tokens))
        if self.dev == "cuda":
            torch.cuda.synchronize()

    def mean_loss(self, last: int) -> float:
        """Token-weighted mean over the last ``last`` steps (as ``GruxLoop.mean_loss``)."""
        pairs = [(float(s), float(n)) for s, n in self.losses[-last:]]
        return sum(p[0] for p in pairs) / sum(p[1] for p in pairs)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.params)
