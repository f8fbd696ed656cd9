"""MorphMLP block, stem and downsampling layers (image and video).

All modules take and return channels-last ``(B, T, H, W, C)`` tensors except
the stem, which takes the channels-first input of the backbone. Module and
parameter names follow the official MorphMLP code (``PermutatorBlock``,
``PatchEmbed``, ``Downsample``; names inherited from ViP) so that official
checkpoints load key for key.
"""
import math
import os
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from .gemm import addmm_tn_, autocast_on, linear_into, mm
from .morph_fc import (Mlp, MorphFCSpatial, MorphFCTemporal, _onednn_ok,
                       fused_linear, graph_capture)


def l2_cache_bytes() -> int:
    """Size of the first CPU's L2 cache from sysfs (Linux), 0 if unknown."""
    root = '/sys/devices/system/cpu/cpu0/cache'
    try:
        for index in sorted(os.listdir(root)):
            path = os.path.join(root, index)
            with open(os.path.join(path, 'level')) as f:
                if f.read().strip() != '2':
                    continue
            with open(os.path.join(path, 'size')) as f:
                return parse_cache_size(f.read())
    except (OSError, ValueError):
        pass
    return 0


def parse_cache_size(text: str) -> int:
    """Bytes of a sysfs cache size: ``'1024K'``, ``'2M'``, ``'512'``."""
    text = text.strip().upper()
    scale = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def stream_tokens_for(l2_bytes: int) -> int:
    """Streamed-inference chunk for an L2 cache: 4096 tokens per MiB,
    within [2048, 16384]; 8192 where the size is unknown (0)."""
    if l2_bytes <= 0:
        return 8192
    return max(2048, min(16384, l2_bytes // 256))


class MorphBlock(BaseModule):
    """One MorphMLP block (the official ``PermutatorBlock``).

    ``xt = x + MorphFC_t(LN(x))`` (video only), then
    ``x = x + DropPath(MorphFC_s(LN(xt)))`` -- the residual base is the block
    input ``x``, not ``xt`` (the "skip residual" of the paper's Table 11) --
    then ``x = x + DropPath(Mlp(LN(x)))``.

    Args:
        channels (int): Channels C.
        window (tuple[int, int]): Chunk window of MorphFC_s.
        mlp_ratio (float): Hidden width of the channel MLP over C.
        num_branches (int): 3 (H/W/C) or 2 (official stage-4 form).
        frames (int, optional): Frames T' for MorphFC_t; ``None`` builds no
            temporal branch (images, or video with temporal mixing off).
        drop_path (float): Stochastic depth rate. Defaults to 0.
        with_cp (bool): Recompute the block in the backward pass to save
            memory (reentrant checkpointing, see :meth:`_checkpointed` and
            :class:`_CheckpointFunction`, whose recompute stops after the
            MLP's ``fc1``: like every reentrant checkpoint it supports
            ``loss.backward()``, which the OpenMMLab runners use, not
            ``torch.autograd.grad``, which raises). Defaults to False.
    """

    def __init__(self,
                 channels: int,
                 window: Tuple[int, int],
                 mlp_ratio: float,
                 num_branches: int = 3,
                 frames: Optional[int] = None,
                 drop_path: float = 0.,
                 with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(channels)
        if frames is not None:
            self.t_norm1 = nn.LayerNorm(channels)
            self.t_fc = MorphFCTemporal(channels, frames)
        self.fc = MorphFCSpatial(channels, window, num_branches)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = Mlp(channels, int(channels * mlp_ratio))

    #: Tokens per chunk of the streamed inference path (see
    #: :meth:`forward_streamed`): small enough that a chunk's intermediates,
    #: including the 3C-wide MLP hidden layer, stay in the CPU caches.
    #: Scaled to the core's L2 cache, 4096 tokens per MiB
    #: (:func:`stream_tokens_for`): 8192 measured best for MorphMLP-S at
    #: 16 x 224 x 224 on a 2-core Xeon (2 MiB L2 per core) against 2048 to
    #: 12544, and 4096 on an AMD EPYC with 1 MiB L2 per core (3% faster
    #: than 8192, even with 2048).
    stream_tokens = stream_tokens_for(l2_cache_bytes())

    @property
    def temporal(self) -> bool:
        return hasattr(self, 't_fc')

    #: Tokens per chunk of the channel MLP in training on the CPU (see
    #: :class:`_ResidualMlpFunction`): the chunk's 3C-wide hidden layer and
    #: its gradient stay in the CPU caches (1024 x 3C floats: 1.3 MiB at
    #: C = 112). ``0`` gives the MLP to autograd.
    train_mlp_chunk = 1024

    #: Tokens per tile of MorphFC_t in training on the CPU (see
    #: :class:`_TemporalMixFunction`; a tile is ``max(1, chunk // T')``
    #: spatial positions with all their frames). 1024 and 2048 measured
    #: alike on MorphMLP-S at 16 x 224 x 224. ``0`` gives MorphFC_t to
    #: autograd.
    train_temporal_chunk = 1024

    def _forward_mixing(self, x: torch.Tensor) -> torch.Tensor:
        """The block up to its channel MLP: MorphFC_t, MorphFC_s and their
        residuals."""
        if _TemporalMixFunction.applies(self, x):
            self.t_fc.check_input(x)
            n1 = _TemporalMixFunction.apply(x.contiguous(),
                                            self.train_temporal_chunk,
                                            self.t_norm1.eps, self.norm1.eps,
                                            *self._temporal_params())
            return self._add_path(x, self.fc(n1))
        xt = x + self.t_fc(self.t_norm1(x)) if self.temporal else x
        return self._add_path(x, self.fc(self.norm1(xt)))

    def _temporal_params(self) -> Tuple[Optional[torch.Tensor], ...]:
        t_fc = self.t_fc
        return (self.t_norm1.weight, self.t_norm1.bias, t_fc.mlp_t.weight,
                t_fc.mlp_t.bias, t_fc.proj.weight, t_fc.proj.bias,
                self.norm1.weight, self.norm1.bias)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._forward_mixing(x)
        if _ResidualMlpFunction.applies(self, x):
            return _ResidualMlpFunction.apply(x, self._path_scale(x),
                                              self.train_mlp_chunk,
                                              self.norm2.eps,
                                              *self._mlp_params())
        return self._add_path(x, self.mlp.forward_gemm(self.norm2(x)))

    def _mlp_params(self) -> Tuple[torch.Tensor, ...]:
        return (self.norm2.weight, self.norm2.bias, self.mlp.fc1.weight,
                self.mlp.fc1.bias, self.mlp.fc2.weight, self.mlp.fc2.bias)

    def _path_scale(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Per-sample factor of an active DropPath for ``x``, or ``None``.

        The (B, 1, 1, 1, 1) factor mmcv's ``drop_path`` multiplies ``x``
        by: the same ``torch.rand`` draw (shape, dtype and device of its
        call for ``x``, so the same samples are dropped) and the same
        arithmetic, ``floor(keep + u) / keep``, in four small ops rather
        than the module's call on a tensor of ones (six).
        ``tests/models/test_plain_equivalence.py`` pins it to the module.
        """
        if isinstance(self.drop_path, DropPath) and self.drop_path.training \
                and self.drop_path.drop_prob > 0:
            keep = 1 - self.drop_path.drop_prob
            u = torch.rand((x.shape[0], ) + (1, ) * (x.dim() - 1),
                           dtype=x.dtype, device=x.device)
            return u.add_(keep).floor_().div_(keep)
        return None

    def _add_path(self, x: torch.Tensor,
                  branch: torch.Tensor) -> torch.Tensor:
        """``x + self.drop_path(branch)`` with one pass less over the
        branch.

        An active DropPath divides and then multiplies the whole branch
        before the residual sum. Here the branch is multiplied once by its
        per-sample factor (:meth:`_path_scale`: the draw DropPath makes for
        the branch, so the same samples are dropped). Not ``addcmul``: CUDA
        autocast promotes its inputs to the widest dtype, which would cast
        the half-precision branch to float32 in a pass of its own.
        """
        scale = self._path_scale(branch)
        if scale is None:
            return x + self.drop_path(branch)  # Identity, or eval mode
        return x + branch * scale

    def _draws_random(self) -> bool:
        """Whether a training forward draws random numbers (DropPath)."""
        return self.training and any(
            isinstance(m, (DropPath, nn.Dropout)) for m in self.modules())

    def _can_stream(self, x: torch.Tensor) -> bool:
        """Streaming needs a CPU tensor, no autograd graph and no random
        layers.

        Its chunks are sized to a CPU core's L2 cache; on a GPU the same
        loops would only multiply kernel launches (one chunk pass per clip
        and slab: for MorphMLP-S at 16 frames and batch 8, 32-64 passes
        per stage-1 block and 8 per block at every later stage, where one
        batched pass does), so other devices take the whole-clip path.
        Tracing (FLOP counters, TorchScript) and ``torch.compile`` also take
        it: it records the same products without the chunk loops, and
        inductor does its own fusion.
        """
        if x.device.type != 'cpu' or graph_capture():
            return False
        if torch.is_grad_enabled() and (
                x.requires_grad or any(p.requires_grad
                                       for p in self.parameters())):
            return False
        return not self._draws_random()

    def _stream_rows(self, frames: int, H: int, W: int) -> int:
        """Rows per slab: whole windows of every branch, ~budget tokens."""
        r, c = self.fc.window
        align = 1
        for _, transpose in self.fc.window_branches():
            align = math.lcm(align, c if transpose else r)
        per_slab = max(1, self.stream_tokens // (frames * W * align))
        return min(H, per_slab * align)

    def forward_streamed(self, x: torch.Tensor) -> torch.Tensor:
        """The block without autograd, one cache-sized chunk at a time.

        Same result as :meth:`_forward` (up to float rounding), in two
        passes over slabs of rows that hold whole windows of every branch:

        1. per slab, all frames (MorphFC_t mixes frames):
           ``n1 = norm1(x + t_fc(t_norm1(x)))`` and its mean over frames;
        2. the branch weights from that mean (the only clip-wide quantity),
           then per slab, a few frames at a time: ``y = x + fc(n1)`` and
           ``y + mlp(norm2(y))``.

        Only ``x`` (gathered once per slab and kept for pass 2; a clip that
        is one chunk returns its chunk's result without a copy into the
        output), ``n1`` and the output go through memory: the permuted
        copies, branch outputs and the 3C-wide MLP hidden layer of a chunk
        stay in cache, and the biases and residuals of ``t_fc.proj`` and
        ``fc.proj`` are folded into their GEMMs. Builds no autograd graph.
        """
        B, T, H, W, C = x.shape
        rows = self._stream_rows(B * T, H, W)
        slabs, means = [], []
        for r0 in range(0, H, rows):
            # one gather of the slab, read by both passes
            xs = x[:, :, r0:r0 + rows].contiguous()
            xt = xs
            if self.temporal:
                xt = _residual_linear(xs, self.t_fc.mix(self.t_norm1(xs)),
                                      self.t_fc.proj)
            ns = self.norm1(xt)
            means.append(ns[:, 0] if T == 1 else ns.mean(1))
            slabs.append((r0, xs, ns))
        frame_mean = means[0] if len(means) == 1 else torch.cat(means, 1)
        weights = self.fc.branch_weights(frame_mean)

        out = None
        for r0, xs, ns in slabs:
            n_rows = ns.shape[2]
            chunks = math.ceil(T * n_rows * W / self.stream_tokens)
            frames = math.ceil(T / chunks)
            if B == 1 and frames == T and n_rows == H:
                # the whole clip is one chunk: its result is the output
                return self._stream_chunk(xs, ns, weights)
            if out is None:
                out = torch.empty_like(x)
            for b in range(B):
                for f0 in range(0, T, frames):
                    idx = (slice(b, b + 1), slice(f0, f0 + frames),
                           slice(r0, r0 + n_rows))
                    chunk = (slice(b, b + 1), slice(f0, f0 + frames))
                    out[idx] = self._stream_chunk(xs[chunk], ns[chunk],
                                                  weights[b:b + 1])
        return out

    def _stream_chunk(self, x: torch.Tensor, n1: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
        """Pass 2 of :meth:`forward_streamed` on one chunk: ``y = x +
        fc(n1)`` (``n1``: the normalised MorphFC_s input of the chunk), then
        ``y + mlp(norm2(y))``."""
        y = _residual_linear(x, self.fc.mix(n1, weights), self.fc.proj)
        h = fused_linear(self.norm2(y), self.mlp.fc1.weight,
                         self.mlp.fc1.bias, gelu=True)
        return fused_linear(h, self.mlp.fc2.weight, self.mlp.fc2.bias,
                            residual=y)

    def _checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        """The block under ``with_cp``.

        Reentrant checkpointing runs the first forward without autograd
        and recomputes it with autograd in the backward pass. Without
        autograd the block may stream (:meth:`forward_streamed`, the fast
        inference path; not with active DropPath / Dropout, whose random
        masks must match the recompute), so the first forward costs an
        inference pass, not a second autograd forward.
        """
        if not torch.is_grad_enabled() and self._can_stream(x):
            return self.forward_streamed(x)
        return self._forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            if _ResidualMlpFunction.applies(self, x):
                return _CheckpointFunction.apply(self, x,
                                                 *self._mlp_params())
            return cp.checkpoint(self._checkpointed, x, use_reentrant=True)
        if self._can_stream(x):
            return self.forward_streamed(x)
        return self._forward(x)


def _chunks_apply(x: torch.Tensor, chunk: int) -> bool:
    """Whether a training function that works in chunks of ``chunk``
    tokens (:class:`_ResidualMlpFunction`, :class:`_TemporalMixFunction`)
    may run on ``x``: a positive chunk, autograd on, a CPU tensor, no
    autocast or graph capture, and more than one chunk of tokens."""
    return (chunk > 0 and torch.is_grad_enabled() and x.device.type == 'cpu'
            and not graph_capture() and not torch.is_autocast_enabled('cpu')
            and x.shape[:-1].numel() > chunk)


class _ResidualMlpFunction(torch.autograd.Function):
    """``y + DropPath(fc2(GELU(fc1(norm2(y)))))`` in token chunks (training).

    Autograd of the layer-by-layer MLP writes, and reads back in the
    backward, the normalised input, the 3C-wide hidden layer before and
    after GELU and the gradients of both: every one of them a pass over
    memory at the first stages, where they do not fit in the caches (the
    hidden layer of one MorphMLP-S block at 16 x 224 x 224 is 34 MB). Here
    the forward runs ``chunk`` tokens at a time and keeps only the hidden
    layer before GELU (and the LayerNorm statistics); the backward
    recomputes, per chunk and in cache, the normalised input and the GELU
    output, and accumulates the weight gradients chunk by chunk. That stores
    3C instead of 7C floats per token and moves the elementwise work into
    the caches. The idea is the fused MLP of memory-efficient transformer
    kernels (e.g. xFormers' and Apex's fused MLP), written here with
    PyTorch ops.

    Used by :meth:`MorphBlock._forward` on the CPU outside autocast and
    graph capture, with the block's MLP as built (GELU, no Dropout), when
    the clip has more than ``chunk`` tokens; a DropPath enters as the
    per-sample ``scale`` it would multiply by. Outputs and gradients equal
    autograd of the layers (tests).
    """

    @staticmethod
    def applies(block: 'MorphBlock', x: torch.Tensor) -> bool:
        mlp = block.mlp
        return (_chunks_apply(x, block.train_mlp_chunk)
                and isinstance(mlp.act, nn.GELU)
                and mlp.act.approximate == 'none'
                and isinstance(mlp.drop, nn.Identity)
                and block.norm2.weight is not None
                and block.norm2.bias is not None
                and mlp.fc1.bias is not None and mlp.fc2.bias is not None)

    @staticmethod
    def row_scale(y: torch.Tensor,
                  scale: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Per-token DropPath factor of ``y``'s rows (a sample's tokens are
        consecutive), or ``None``."""
        if scale is None:
            return None
        return scale.reshape(-1, 1).repeat_interleave(
            y.shape[:-1].numel() // y.shape[0], 0)

    @staticmethod
    def run(y2: torch.Tensor, row_scale: Optional[torch.Tensor], chunk: int,
            eps: float, ln_w: torch.Tensor, ln_b: torch.Tensor,
            w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
            b2: torch.Tensor, output: bool = True
            ) -> Tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor,
                       torch.Tensor]:
        """The chunked forward on ``(tokens, C)`` rows, without autograd.

        Returns the output (``None`` unless ``output``: what the backward
        needs is only the hidden layer before GELU and the LayerNorm
        statistics, so a recompute stops after ``fc1``), the hidden layer,
        and the LayerNorm means and reciprocal standard deviations.
        """
        rows, C = y2.shape
        hidden = y2.new_empty(rows, w1.shape[0])
        out = torch.empty_like(y2) if output else None
        means, rstds = [], []
        for r0 in range(0, rows, chunk):
            part = slice(r0, r0 + chunk)
            n, mean, rstd = torch.native_layer_norm(y2[part], (C, ), ln_w,
                                                    ln_b, eps)
            means.append(mean)
            rstds.append(rstd)
            h = linear_into(n, w1, b1, out=hidden[part])
            if out is None:
                continue
            act = F.gelu(h)
            if row_scale is None:
                linear_into(act, w2, b2, residual=y2[part], out=out[part])
            else:
                torch.addcmul(y2[part], linear_into(act, w2, b2),
                              row_scale[part], out=out[part])
        return out, hidden, torch.cat(means), torch.cat(rstds)

    @staticmethod
    def grads(g2: torch.Tensor, y2: torch.Tensor, hidden: torch.Tensor,
              mean: torch.Tensor, rstd: torch.Tensor,
              row_scale: Optional[torch.Tensor], chunk: int, eps: float,
              ln_w: torch.Tensor, ln_b: torch.Tensor, w1: torch.Tensor,
              w2: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The chunked backward: the gradient of the ``(tokens, C)`` input
        ``y2`` (residual path included) given the output's ``g2``, and
        those of ``ln_w, ln_b, w1, b1, w2, b2``."""
        C = y2.shape[1]
        grad_y = torch.empty_like(y2)
        grads = [torch.zeros_like(t) for t in (ln_w, ln_b, w1)]
        grads += [w1.new_zeros(w1.shape[0]), torch.zeros_like(w2),
                  w2.new_zeros(w2.shape[0])]
        g_ln_w, g_ln_b, g_w1, g_b1, g_w2, g_b2 = grads
        for r0 in range(0, y2.shape[0], chunk):
            part = slice(r0, r0 + chunk)
            y, h, g = y2[part], hidden[part], g2[part]
            g_mlp = g if row_scale is None else g * row_scale[part]
            addmm_tn_(g_w2, g_mlp, F.gelu(h))
            g_b2 += g_mlp.sum(0)
            g_h = torch.ops.aten.gelu_backward(mm(g_mlp, w2), h)
            n = torch.native_layer_norm(y, (C, ), ln_w, ln_b, eps)[0]
            addmm_tn_(g_w1, g_h, n)
            g_b1 += g_h.sum(0)
            g_n, g_w, g_b = torch.ops.aten.native_layer_norm_backward(
                mm(g_h, w1), y, (C, ), mean[part], rstd[part], ln_w, ln_b,
                [True, True, True])
            torch.add(g_n, g, out=grad_y[part])
            g_ln_w += g_w
            g_ln_b += g_b
        return grad_y, grads

    @staticmethod
    def forward(ctx, y: torch.Tensor, scale: Optional[torch.Tensor],
                chunk: int, eps: float, ln_w: torch.Tensor,
                ln_b: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor,
                w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
        y2 = y.reshape(-1, y.shape[-1])
        row_scale = _ResidualMlpFunction.row_scale(y, scale)
        out, hidden, mean, rstd = _ResidualMlpFunction.run(
            y2, row_scale, chunk, eps, ln_w, ln_b, w1, b1, w2, b2)
        ctx.chunk, ctx.eps = chunk, eps
        ctx.save_for_backward(y2, hidden, mean, rstd, row_scale, ln_w, ln_b,
                              w1, w2)
        return out.view(y.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        y2, hidden, mean, rstd, row_scale, ln_w, ln_b, w1, w2 = \
            ctx.saved_tensors
        grad_y, grads = _ResidualMlpFunction.grads(
            grad.reshape(-1, y2.shape[1]), y2, hidden, mean, rstd, row_scale,
            ctx.chunk, ctx.eps, ln_w, ln_b, w1, w2)
        return (grad_y.view(grad.shape), None, None, None, *grads)


class _TemporalMixFunction(torch.autograd.Function):
    """``norm1(x + t_fc(t_norm1(x)))``, the input of MorphFC_s, in tiles of
    positions (training).

    Everything in it is local to one spatial position: the LayerNorms and
    ``t_fc.proj`` act per token, ``t_fc.mlp_t`` across the frames of one
    position. So it runs on tiles of ``max(1, chunk // T')`` positions with
    all their frames (a (T', n, C) slab of the block input), each tile
    through all of it while in cache: normalise, permute to (position,
    group) rows, ``mlp_t``, permute back, ``proj`` with the residual in the
    GEMM's epilogue, ``norm1``. Autograd of the layers instead writes to
    memory and reads back the normalised input, both permutation copies,
    ``mlp_t``'s and ``proj``'s outputs, the residual sum and ``norm1``'s
    output, and in the backward the gradients of each.

    The forward keeps, per tile, ``mlp_t``'s output in token order (the
    input of ``proj``, for its weight gradient) and the residual sum with
    its ``norm1`` statistics; the backward recomputes ``t_norm1`` and the
    permuted rows of ``mlp_t``'s input per tile, in cache. Besides the
    block input, which the layers keep too, that stores 2C floats per token
    where the layers store 3C (they also keep ``mlp_t``'s permuted input).
    The outline is that of :class:`_ResidualMlpFunction`. On MorphMLP-S at
    16 x 224 x 224 (fp32, one thread, an AMD EPYC) the training step keeps
    7% less activation memory (1083 MB, not 1159 MB) and took 0.97x the
    time of autograd of the layers in consecutive steps, 0.99x-1.00x in the
    benchmark's interleaved rounds (docs/benchmark.md, "Sixteenth
    session").

    Used by :meth:`MorphBlock._forward_mixing` on the CPU outside autocast
    and graph capture, for a block with MorphFC_t and no dropout in it,
    when the clip has more than ``chunk`` tokens. Outputs and gradients
    equal autograd of the layers (tests). The modules ``t_norm1``, ``t_fc``
    and ``norm1`` are not called on this path, so their forward hooks do
    not fire; ``MorphBlock.train_temporal_chunk = 0`` calls them.
    """

    @staticmethod
    def applies(block: 'MorphBlock', x: torch.Tensor) -> bool:
        if not block.temporal:
            return False
        norms = (block.t_norm1, block.norm1)
        return (_chunks_apply(x, block.train_temporal_chunk)
                and isinstance(block.t_fc.proj_drop, nn.Identity)
                and all(n.weight is not None and n.bias is not None
                        for n in norms))

    @staticmethod
    def to_rows(t: torch.Tensor, frames: int, groups: int) -> torch.Tensor:
        """A tile's (T' * k, C) tokens (frame-major) -> (k * G, T' * S)
        rows of ``mlp_t``: one per (position, group), a copy."""
        C = t.shape[-1]
        k = t.numel() // (frames * C)
        return t.reshape(frames, k, groups, C // groups).permute(
            1, 2, 0, 3).reshape(k * groups, -1)

    @staticmethod
    def to_tokens(rows: torch.Tensor, frames: int,
                  groups: int) -> torch.Tensor:
        """Undo :meth:`to_rows` as a (T', k, G, S) view (no copy)."""
        k = rows.shape[0] // groups
        return rows.view(k, groups, frames, -1).permute(2, 0, 1, 3)

    @staticmethod
    def tiles(x: torch.Tensor, chunk: int):
        """(clip, first position, positions, first row of the tile-major
        buffers) of every tile of a (B, T, H, W, C) input."""
        B, T, H, W, _ = x.shape
        n = max(1, chunk // T)
        row = 0
        for b in range(B):
            for p0 in range(0, H * W, n):
                k = min(n, H * W - p0)
                yield b, p0, k, row
                row += T * k

    @staticmethod
    def forward(ctx, x: torch.Tensor, chunk: int, eps_t: float,
                eps_1: float, ln_t_w: torch.Tensor, ln_t_b: torch.Tensor,
                w_t: torch.Tensor, b_t: Optional[torch.Tensor],
                w_p: torch.Tensor, b_p: Optional[torch.Tensor],
                ln_1_w: torch.Tensor, ln_1_b: torch.Tensor) -> torch.Tensor:
        B, T, H, W, C = x.shape
        groups = C * T // w_t.shape[0]
        x3 = x.view(B, T, H * W, C)
        out = torch.empty_like(x)
        out3 = out.view(B, T, H * W, C)
        # tile-major buffers: rows [row, row + T * k) belong to a tile
        q_all = x.new_empty(x.numel() // C, C)
        xt_all = torch.empty_like(q_all)
        stats = x.new_empty(2, x.numel() // C, 1)
        for b, p0, k, row in _TemporalMixFunction.tiles(x, chunk):
            rows = slice(row, row + T * k)
            xs = x3[b, :, p0:p0 + k].reshape(T * k, C)
            n = torch.native_layer_norm(xs, (C, ), ln_t_w, ln_t_b, eps_t)[0]
            m = linear_into(_TemporalMixFunction.to_rows(n, T, groups),
                            w_t, b_t)
            q = q_all[rows]
            q.view(T, k, groups, -1).copy_(
                _TemporalMixFunction.to_tokens(m, T, groups))
            xt = linear_into(q, w_p, b_p, residual=xs, out=xt_all[rows])
            n1, mean, rstd = torch.native_layer_norm(xt, (C, ), ln_1_w,
                                                     ln_1_b, eps_1)
            stats[0, rows], stats[1, rows] = mean, rstd
            out3[b, :, p0:p0 + k] = n1.view(T, k, C)
        ctx.chunk, ctx.eps = chunk, (eps_t, eps_1)
        ctx.has_bias = (b_t is not None, b_p is not None)
        ctx.save_for_backward(x, q_all, xt_all, stats, ln_t_w, ln_t_b, w_t,
                              b_t, w_p, ln_1_w, ln_1_b)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, q_all, xt_all, stats, ln_t_w, ln_t_b, w_t, b_t, w_p, ln_1_w, \
            ln_1_b = ctx.saved_tensors
        eps_t, eps_1 = ctx.eps
        B, T, H, W, C = x.shape
        groups = C * T // w_t.shape[0]
        to_rows, to_tokens = (_TemporalMixFunction.to_rows,
                              _TemporalMixFunction.to_tokens)
        x3 = x.view(B, T, H * W, C)
        g3 = grad.reshape(B, T, H * W, C)
        grad_x = torch.empty_like(x)
        gx3 = grad_x.view(B, T, H * W, C)
        params = (ln_t_w, ln_t_b, w_t, w_p, ln_1_w, ln_1_b)
        g_ln_t_w, g_ln_t_b, g_w_t, g_w_p, g_ln_1_w, g_ln_1_b = [
            torch.zeros_like(p) for p in params]
        g_b_t = w_t.new_zeros(w_t.shape[0])
        g_b_p = w_p.new_zeros(w_p.shape[0])
        mask = [True, True, True]
        for b, p0, k, row in _TemporalMixFunction.tiles(x, ctx.chunk):
            rows = slice(row, row + T * k)
            xs = x3[b, :, p0:p0 + k].reshape(T * k, C)
            # norm1, then proj (whose residual passes g on to x)
            g, g_w, g_b = torch.ops.aten.native_layer_norm_backward(
                g3[b, :, p0:p0 + k].reshape(T * k, C), xt_all[rows], (C, ),
                stats[0, rows], stats[1, rows], ln_1_w, ln_1_b, mask)
            g_ln_1_w += g_w
            g_ln_1_b += g_b
            addmm_tn_(g_w_p, g, q_all[rows])
            g_b_p += g.sum(0)
            # mlp_t, on rows recomputed from t_norm1
            n, mean, rstd = torch.native_layer_norm(xs, (C, ), ln_t_w,
                                                    ln_t_b, eps_t)
            g_m = to_rows(mm(g, w_p), T, groups)
            addmm_tn_(g_w_t, g_m, to_rows(n, T, groups))
            g_b_t += g_m.sum(0)
            g_n = to_tokens(mm(g_m, w_t), T, groups).reshape(T * k, C)
            g_xs, g_w, g_b = torch.ops.aten.native_layer_norm_backward(
                g_n, xs, (C, ), mean, rstd, ln_t_w, ln_t_b, mask)
            g_ln_t_w += g_w
            g_ln_t_b += g_b
            torch.add(g_xs.view(T, k, C), g.view(T, k, C),
                      out=gx3[b, :, p0:p0 + k])
        has_b_t, has_b_p = ctx.has_bias
        grads = (grad_x, None, None, None, g_ln_t_w, g_ln_t_b, g_w_t,
                 g_b_t if has_b_t else None, g_w_p,
                 g_b_p if has_b_p else None, g_ln_1_w, g_ln_1_b)
        return tuple(g if need else None
                     for g, need in zip(grads, ctx.needs_input_grad))


class _CheckpointFunction(torch.autograd.Function):
    """``with_cp`` of a block whose channel MLP runs in token chunks.

    Like reentrant checkpointing (``torch.utils.checkpoint``), the forward
    runs the block without autograd (streamed where it can be, see
    :meth:`MorphBlock._checkpointed`) and keeps only its input; the backward
    recomputes the block with autograd and back-propagates through it, the
    inner backward accumulating the gradients of the block's other
    parameters into their ``.grad`` as reentrant checkpointing does. Unlike
    it, the recompute stops where the backward stops needing values: the
    channel MLP's backward (:meth:`_ResidualMlpFunction.grads`) needs its
    hidden layer before GELU and its LayerNorm statistics, so the recompute
    runs the MLP's LayerNorm and ``fc1`` only -- not GELU, not ``fc2`` (a
    quarter of the block's MACs), not the output. The CPU random state is
    replayed in the recompute, so a DropPath draws the same samples.

    Used by :meth:`MorphBlock.forward` where the recompute would take
    :class:`_ResidualMlpFunction`; otherwise ``with_cp`` is
    ``torch.utils.checkpoint``. Gradients equal those of the block without
    checkpointing (tests).
    """

    @staticmethod
    def forward(ctx, block: 'MorphBlock', x: torch.Tensor,
                *mlp_params: torch.Tensor) -> torch.Tensor:
        ctx.block = block
        ctx.rng = torch.get_rng_state() if block._draws_random() else None
        ctx.save_for_backward(x)
        return block._checkpointed(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        if not torch.autograd._is_checkpoint_valid():
            raise RuntimeError(
                'with_cp=True recomputes MorphMLP blocks inside '
                'loss.backward(); it does not support torch.autograd.grad '
                '(build the model with with_cp=False for that)')
        (x, ), block = ctx.saved_tensors, ctx.block
        with torch.random.fork_rng(devices=[], enabled=ctx.rng is not None):
            if ctx.rng is not None:
                torch.set_rng_state(ctx.rng)
            with torch.enable_grad():
                xd = x.detach().requires_grad_(True)
                y = block._forward_mixing(xd)
            scale = block._path_scale(y)
        mlp = _ResidualMlpFunction
        chunk, eps, params = block.train_mlp_chunk, block.norm2.eps, \
            block._mlp_params()
        y2 = y.detach().reshape(-1, y.shape[-1])
        row_scale = mlp.row_scale(y, scale)
        _, hidden, mean, rstd = mlp.run(y2, row_scale, chunk, eps, *params,
                                        output=False)
        ln_w, ln_b, w1, _, w2, _ = params
        grad_y, grads = mlp.grads(grad.reshape(y2.shape), y2, hidden, mean,
                                  rstd, row_scale, chunk, eps, ln_w, ln_b,
                                  w1, w2)
        del hidden
        torch.autograd.backward(y, grad_y.view(y.shape))
        return (None, xd.grad, *(g if need else None for g, need in zip(
            grads, ctx.needs_input_grad[2:])))


def _residual_linear(residual: torch.Tensor, x: torch.Tensor,
                     linear: nn.Linear) -> torch.Tensor:
    """``residual + linear(x)`` as one GEMM accumulating onto the residual.

    No autograd: oneDNN's matmul with a residual epilogue
    (:func:`~morphmlp_mm.models.morph_fc.fused_linear`) where available,
    else the in-place ``addmm_``, which replaces the bias copy of the GEMM
    and the separate residual add. Under autocast (or mixed dtypes) it is
    the plain ``residual + linear(x)``, which autocast knows how to cast.
    """
    if _onednn_ok(x) and residual.dtype == linear.weight.dtype:
        return fused_linear(x, linear.weight, linear.bias,
                            residual=residual.contiguous())
    if autocast_on(x.device.type) or not (
            residual.dtype == x.dtype == linear.weight.dtype):
        return residual + linear(x)
    out = residual.new_empty(residual.shape)  # contiguous, unlike the input
    if linear.bias is not None:
        torch.add(residual, linear.bias, out=out)
    else:
        out.copy_(residual)
    out.view(-1, out.shape[-1]).addmm_(
        x.reshape(-1, x.shape[-1]), linear.weight.t())
    return out


_HAS_ONEDNN_CONV = (torch.backends.mkldnn.is_available()
                    and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


class Stem(BaseModule):
    """Two strided 3x3 convolutions (the official ``PatchEmbed``).

    ``proj1`` (stride 2) -> ``norm1`` (BN) -> GELU -> ``proj2`` (stride 2) ->
    ``norm2`` (BN): spatial stride 4. For video ``proj1`` is a 3x3x3 conv with
    temporal stride 2 and ``proj2`` a 1x3x3 conv, as in the official code.

    Args:
        in_channels (int): Input channels.
        channels (int): Output channels C1 (the hidden width is C1 // 2).
        video (bool): Build 3-D convolutions. Defaults to False.
        norm_cfg (dict): Norm of the stem, e.g. ``dict(type='BN')`` for
            images, ``dict(type='BN3d')`` for video, ``SyncBN`` for both.
        temporal_kernel (int): Temporal taps of the video ``proj1`` (odd;
            3 is the official stem, 1 looks at one frame at a time and
            keeps the temporal stride 2). Defaults to 3.
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 video: bool = False,
                 norm_cfg: Optional[dict] = None,
                 temporal_kernel: int = 3) -> None:
        super().__init__()
        self.video = video
        if norm_cfg is None:
            norm_cfg = dict(type='BN3d' if video else 'BN')
        hidden = channels // 2
        if video:
            k = temporal_kernel
            self.proj1 = nn.Conv3d(in_channels, hidden, (k, 3, 3), 2,
                                   (k // 2, 1, 1))
            self.proj2 = nn.Conv3d(hidden, channels, (1, 3, 3), (1, 2, 2),
                                   (0, 1, 1))
        else:
            self.proj1 = nn.Conv2d(in_channels, hidden, 3, 2, 1)
            self.proj2 = nn.Conv2d(hidden, channels, 3, 2, 1)
        self.norm1 = build_norm_layer(norm_cfg, hidden)[1]
        self.act = nn.GELU()
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]

    #: Our layout and fusion choices: inference may take
    #: :meth:`forward_fused`, and the layer-by-layer forward returns a
    #: contiguous (B, T', H', W', C1) tensor (a permuted view of the
    #: channels-first convolution output would be inherited by every
    #: residual sum of the first stage, so each of its LayerNorms and
    #: Linears, and their backward, would copy it). The plain twin
    #: (:func:`~morphmlp_mm.models.plain.build_plain`) turns this off to
    #: keep the official forward and its layer calls.
    fast_paths = True

    def _can_fuse(self, x: torch.Tensor) -> bool:
        """Inference with both norms on running statistics: the BN affine
        maps fold into the convolutions and GELU into the first one's
        epilogue (see :meth:`forward_fused`)."""
        return (self.fast_paths and _HAS_ONEDNN_CONV and _onednn_ok(x)
                and isinstance(self.act, nn.GELU)
                and self.act.approximate == 'none' and all(
                    isinstance(bn, _BatchNorm) and not bn.training
                    and bn.track_running_stats
                    and bn.running_mean is not None
                    for bn in (self.norm1, self.norm2)))

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """The stem as two oneDNN convolutions, no autograd.

        ``norm(conv(x))`` with BN on running statistics is one convolution
        with scaled weights and a shifted bias (folded here at every call, so
        loaded or updated weights are always used); oneDNN applies GELU in the
        first convolution's epilogue, the fusion inductor does for CPU
        convolutions. The input goes channels-last, so both convolutions run
        in oneDNN's preferred layout and the output is already (B, T', H', W',
        C1) in memory: no BN, GELU or permutation pass over the activations.
        """
        memory_format = torch.channels_last_3d if self.video else \
            torch.channels_last
        x = x.contiguous(memory_format=memory_format)
        pointwise = torch.ops.mkldnn._convolution_pointwise
        for conv, bn, act in ((self.proj1, self.norm1, 'gelu'),
                              (self.proj2, self.norm2, 'none')):
            scale = bn.running_var.add(bn.eps).rsqrt()
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale
            if bn.bias is not None:
                shift = shift + bn.bias
            if conv.bias is not None:
                shift = shift + conv.bias * scale
            weight = conv.weight * scale.reshape(-1, *[1] *
                                                 (conv.weight.dim() - 1))
            x = pointwise(x, weight, shift, conv.padding, conv.stride,
                          conv.dilation, conv.groups, act, [],
                          'none' if act == 'gelu' else '')
        return self._tokens(x)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution output -> (B, T', H', W', C1) view."""
        if self.video:
            return x.permute(0, 2, 3, 4, 1)
        return x.permute(0, 2, 3, 1).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, C, T, H, W) -> (B, T', H/4, W/4, C1)."""
        if self._can_fuse(x):
            return self.forward_fused(x)
        x = self._tokens(
            self.norm2(self.proj2(self.act(self.norm1(self.proj1(x))))))
        return x.contiguous() if self.fast_paths else x


class Downsample(BaseModule):
    """Stride-2 3x3 convolution per frame, then LayerNorm.

    The official ``Downsample``: for video a Conv3d with kernel (1, 3, 3),
    for images a Conv2d. Both run as a 2-D convolution over the B*T frames.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        video (bool): Store a (O, I, 1, 3, 3) kernel as the official video
            model does. Defaults to False.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 video: bool = False) -> None:
        super().__init__()
        if video:
            self.proj = nn.Conv3d(in_channels, out_channels, (1, 3, 3),
                                  (1, 2, 2), (0, 1, 1))
        else:
            self.proj = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H, W, C = x.shape
        weight = self.proj.weight
        if weight.dim() == 5:
            weight = weight.squeeze(2)
        y = F.conv2d(
            x.reshape(B * T, H, W, C).permute(0, 3, 1, 2), weight,
            self.proj.bias, stride=2, padding=1)
        y = y.permute(0, 2, 3, 1)
        return self.norm(y.reshape(B, T, *y.shape[1:]))
