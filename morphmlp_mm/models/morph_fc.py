"""MorphFC token mixing, written once for images and videos.

Implements MorphFC_s (spatial) and MorphFC_t (temporal) of
Zhang et al., "MorphMLP: An Efficient MLP-Like Backbone for Spatial-Temporal
Representation Learning", ECCV 2022 (arXiv 2111.12527), following the
semantics of the official video code (MTLab/MorphMLP, commit 62ebe80); the
split-attention reweighting is the one of ViP (Hou et al., Vision Permutator).

Tensor layout (decided here, used everywhere)
---------------------------------------------
Every module in this file takes and returns channels-last tensors::

    x: (B, T, H, W, C)      an image is the T = 1 case

MorphFC_s with chunk length L on C channels splits the channels into
G = L groups of S = C / L channels. A chunk is a window of ``r x c = L``
tokens. For one (window, group) pair the L tokens' S channels are
concatenated token-major, channel-minor into a vector of length L * S = C,
and a Linear(C, C) shared by all windows, groups and frames mixes it::

    W-branch  x (B,T,H,W,C) --pad H to r*, W to c*-->
              (B,T,H/r,r,W/c,c,G,S) --permute--> (B,G,T,H/r,W/c,[r,c,S])
              --Linear(C,C)--> inverse permute --> crop --> (B,T,H,W,C)
    H-branch  the same on the map with H and W swapped (windows run down
              columns: r columns by c rows)
    C-branch  Linear(C,C) per token
    fusion    a = mean_{T,H,W}(h + w + c) (B,C) -> Mlp(C, C/4, kC) -> (B,C,k)
              -> softmax over k -> sum_k branch_k * a_k -> Linear(C,C)

The official code cuts the row-major flattened H*W sequence into chunks of L
consecutive tokens. At 224 x 224 input with the official chunk lengths
[14, 28, 28, 49] every such chunk is a window: 1x14 and 1x28 in stages 1-2,
2x14 (two whole rows of the 14x14 map) in stage 3 and 7x7 in stage 4. We
define the window at that 224 reference (:func:`default_chunk_window`) and
keep it at every input size, zero-padding H and W up to multiples of the
window and cropping afterwards. Zero tokens add nothing to the products, so
a padded chunk acts like the Linear with the weights of the missing tokens
removed, and each weight keeps the spatial offset it was trained for. At
224 x 224 nothing is padded and the result equals the official code.

Stage 4 of the official model uses a two-branch MorphFC (``mlp_h`` over the
whole 7x7 map in row-major order, plus ``mlp_c``; reweighting to 2C). Here
that is ``MorphFCSpatial(num_branches=2)``; its ``mlp_h`` mixes row-major
windows (7x7 at the reference), which equals the official code at 7x7.

MorphFC_t mixes, at every spatial position, all T' frames of a group of
S_t = C / G_t channels: vector (T', S_t) -> Linear(T' * S_t, T' * S_t).
G_t is the largest divisor of C not above T' (:func:`temporal_groups`),
which gives the official 8 groups at 16 frames, 16 groups at 32 frames and
14 groups (Linear(448, 448)) for C = 392 at 32 frames.

How the forward is computed
---------------------------
The algorithm above, done literally (``morphmlp_mm.models.plain``), writes
every branch output in token layout and reads it back three times (pooling,
weighting, sum). Here:

* each windowed branch costs one copy: :func:`_to_windows` permutes (and
  pads) the input into rows, one GEMM, and the result is read back through
  a strided view (:func:`_from_windows`) by the in-place weighted sum;
* the pooled vector of the reweighting is computed from the input, not from
  the branch outputs: every branch is affine, so the mean of a branch
  output is the branch applied to mean window vectors
  (:func:`_window_mix_mean`; only partial windows of a padded map are mixed
  explicitly);
* the C-branch carries its reweighting factor in its weight (when the
  clip has more tokens than channels), so its GEMM writes the initial sum.

:class:`~morphmlp_mm.models.blocks.MorphBlock` streams clips through these
steps in cache-sized chunks when no autograd graph is needed. In training
the weighted sum has a hand-written backward (:class:`_SpatialMixFunction`)
that permutes the output gradient once per branch and takes the
branch-weight gradients from GEMMs instead of stored branch outputs.

Those choices save memory passes at the price of many small ops. On other
devices than the CPU (a GPU), where at the configs' 8 clips per step the
CPU queueing the kernels sets the pace, :meth:`MorphFCSpatial.mix` takes
the plain algorithm's order instead, branch outputs first, in fewer kernels
than the plain algorithm (:meth:`MorphFCSpatial._mix_lean`;
``MorphFCSpatial.launch_lean``). Results agree with the plain
implementation within 1e-5 in fp32 on every path
(``tests/models/test_plain_equivalence.py``).
"""
import math
import os
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch.autograd.function import once_differentiable

from .gemm import (_HAS_ONEDNN_LINEAR, autocast_input, autocast_on, bmm,
                   bmm_tn, graph_capture, linear, mm, mm_tn, onednn_eligible)

#: Stage resolutions of the 224 x 224 reference input (stride 4, 8, 16, 32).
REFERENCE_STAGE_SIZES = (56, 28, 14, 7)

#: Values of ``MORPHMLP_LAUNCH_LEAN`` (see :func:`launch_lean_setting`).
LAUNCH_LEAN_SETTINGS = ('auto', 'on', 'off')


def launch_lean_setting() -> str:
    """Where MorphFC_s takes its launch-lean mix
    (:meth:`MorphFCSpatial._mix_lean`), from the environment variable
    ``MORPHMLP_LAUNCH_LEAN``: ``'auto'`` (default, unset or empty) on every
    device but the CPU, ``'on'`` everywhere, ``'off'`` nowhere. A module's
    ``launch_lean`` attribute, when not ``None``, overrides it."""
    value = os.environ.get('MORPHMLP_LAUNCH_LEAN', '').strip().lower()
    if value and value not in LAUNCH_LEAN_SETTINGS:
        raise ValueError(
            f'MORPHMLP_LAUNCH_LEAN must be one of {LAUNCH_LEAN_SETTINGS}, '
            f'got {value!r}')
    return value or 'auto'


def default_chunk_window(chunk_length: int,
                         reference_size: int) -> Tuple[int, int]:
    """Window (rows, cols) that a chunk of ``chunk_length`` tokens covers.

    The official code chunks the flattened map of the 224 reference. A
    chunk that is at most one row long and divides the row is a 1 x L
    window; a chunk of whole rows is a (L / size) x size window. Other
    lengths would wrap irregularly across rows in the official code; they
    are taken as 1 x L windows here.

    Args:
        chunk_length (int): Tokens per chunk (L).
        reference_size (int): Side of the stage's map at 224 x 224 input.

    Returns:
        tuple[int, int]: (rows, cols) with rows * cols == chunk_length.
    """
    if chunk_length > reference_size and chunk_length % reference_size == 0:
        return chunk_length // reference_size, reference_size
    return 1, chunk_length


def temporal_groups(channels: int, frames: int) -> int:
    """Largest divisor of ``channels`` that is not above ``frames``.

    Args:
        channels (int): Channels C of the stage.
        frames (int): Frames T' seen by the stage (after the stem).

    Returns:
        int: Number of channel groups G_t of MorphFC_t.
    """
    if channels < 1 or frames < 1:
        raise ValueError(f'channels and frames must be >= 1, got '
                         f'channels={channels}, frames={frames}')
    for groups in range(min(channels, frames), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


class Mlp(BaseModule):
    """Two Linear layers with a GELU between them.

    Named ``fc1``/``fc2`` so that official MorphMLP keys map one to one; mmcv's
    ``FFN`` cannot change the output width, which the reweighting needs.

    Args:
        in_features (int): Input channels.
        hidden_features (int): Hidden channels.
        out_features (int, optional): Output channels. Defaults to
            ``in_features``.
        drop (float): Dropout after each Linear. Defaults to 0.
    """

    def __init__(self,
                 in_features: int,
                 hidden_features: int,
                 out_features: Optional[int] = None,
                 drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # module calls: the plain twin (``models.plain``) and hooks see them
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    def forward_gemm(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with the products in the library of
        :func:`~morphmlp_mm.models.gemm.gemm_backend` (the layers' weights
        used directly, so module hooks of ``fc1`` / ``fc2`` do not fire)."""
        h = self.act(linear(x, self.fc1.weight, self.fc1.bias))
        return self.drop(linear(self.drop(h), self.fc2.weight, self.fc2.bias))


def _onednn_ok(x: torch.Tensor) -> bool:
    """Whether :func:`fused_linear` may use oneDNN's fused matmul for ``x``.

    Only without autograd (the fused ops have no derivative), in fp32 on the
    CPU, outside autocast and tracing (FLOP counters and TorchScript see the
    plain ``nn.Linear`` calls) and ``torch.compile`` (inductor lowers only
    its own fused linears, whose weights it holds as graph constants), and
    when oneDNN is built in and enabled.
    """
    return (_HAS_ONEDNN_LINEAR and not torch.is_grad_enabled()
            and onednn_eligible(x))


def fused_linear(x: torch.Tensor,
                 weight: torch.Tensor,
                 bias: Optional[torch.Tensor],
                 gelu: bool = False,
                 residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[residual +] [GELU](x @ weight.T + bias)`` over the last dim.

    Without autograd on the CPU (fp32) this is one oneDNN matmul whose
    epilogue adds the bias and applies GELU (exact erf form) or adds the
    residual, the fusion that inductor (``torch.compile``) does for CPU
    linears: the bias, activation and residual then cost no separate pass
    over memory. Elsewhere (autograd, autocast, other devices or dtypes,
    tracing) it is the same expression in plain ops, the product being
    :func:`~morphmlp_mm.models.gemm.linear` (oneDNN or PyTorch's own, as
    :func:`~morphmlp_mm.models.gemm.gemm_backend` says). GELU and the
    residual are not combined.

    Args:
        x (Tensor): (..., K).
        weight (Tensor): (N, K).
        bias (Tensor, optional): (N, ).
        gelu (bool): Apply GELU to the product. Defaults to False.
        residual (Tensor, optional): (..., N), added to the product.

    Returns:
        Tensor: (..., N), contiguous.
    """
    if gelu and residual is not None:
        raise ValueError('fused_linear: gelu and residual cannot be combined')
    if not _onednn_ok(x):
        y = linear(x, weight, bias)
        if gelu:
            return F.gelu(y)
        return y if residual is None else residual + y
    shape = x.shape[:-1] + (weight.shape[0], )
    x2 = x.reshape(-1, x.shape[-1])
    if residual is not None:
        y = torch.ops.mkldnn._linear_pointwise.binary(
            x2, residual.reshape(-1, shape[-1]), weight,
            bias, 'add')
    else:
        y = torch.ops.mkldnn._linear_pointwise(
            x2, weight, bias, 'gelu' if gelu else 'none', [],
            'none' if gelu else '')
    return y.view(shape)


def _window_extent(window: Tuple[int, int],
                   transpose: bool) -> Tuple[int, int]:
    """(rows, cols) a window covers on the untransposed (H, W) map."""
    r, c = window
    return (c, r) if transpose else (r, c)


def _to_windows(x: torch.Tensor,
                window: Tuple[int, int],
                transpose: bool,
                out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, F, H, W, C) -> (M, C): one row per (window, group) vector.

    The single copy of a branch: zero-pads H and W to window multiples and
    permutes every (window, group) into a row of L * S = C values, token-major
    and channel-minor (for ``transpose`` the tokens of the transposed window
    are taken W-offset major). Rows are ordered (B, group, F, window): the
    rows of one clip and channel group are contiguous, so per-group products
    are plain batched GEMMs, and this order copies faster than group-minor
    rows (stage 1 of MorphMLP-S: 2.5 ms instead of 7.3 ms cold, W-branch).
    ``out``, a contiguous tensor of the result's size, receives the rows
    (when no padding is needed): a reused buffer saves the fresh memory
    pages of a new tensor.
    """
    B, F_, H, W, C = x.shape
    groups = window[0] * window[1]
    wh, ww = _window_extent(window, transpose)
    Hp, Wp = math.ceil(H / wh) * wh, math.ceil(W / ww) * ww
    if Hp != H or Wp != W:
        x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    x = x.reshape(B, F_, Hp // wh, wh, Wp // ww, ww, groups, C // groups)
    if transpose:  # -> (B, G, F, nh, nw, ww, wh, S)
        x = x.permute(0, 6, 1, 2, 4, 5, 3, 7)
    else:  # -> (B, G, F, nh, nw, wh, ww, S)
        x = x.permute(0, 6, 1, 2, 4, 3, 5, 7)
    if out is not None and out.numel() == x.numel() and out.is_contiguous():
        return out.view(x.shape).copy_(x).view(-1, C)
    return x.reshape(-1, C)


def _from_windows(y: torch.Tensor, shape: torch.Size,
                  window: Tuple[int, int], transpose: bool) -> torch.Tensor:
    """Undo :func:`_to_windows` as a view (no copy).

    Returns the padded map as an 8-D strided view
    ``(B, F, nh, wh, nw, ww, G, S)``: merging (nh, wh) and (nw, ww) gives
    (B, F, Hp, Wp, C). Elementwise ops read it without a separate copy.
    """
    B, F_, H, W, C = shape
    groups = window[0] * window[1]
    S = C // groups
    wh, ww = _window_extent(window, transpose)
    nh, nw = math.ceil(H / wh), math.ceil(W / ww)
    if transpose:
        y = y.view(B, groups, F_, nh, nw, ww, wh, S)
        return y.permute(0, 2, 3, 6, 4, 5, 1, 7)
    y = y.view(B, groups, F_, nh, nw, wh, ww, S)
    return y.permute(0, 2, 3, 5, 4, 6, 1, 7)


def chunk_mix(x: torch.Tensor, linear: nn.Linear, window: Tuple[int, int],
              transpose: bool) -> torch.Tensor:
    """Mix tokens within windows of ``r x c`` tokens with one shared Linear.

    Args:
        x (Tensor): (B, T, H, W, C), channels divisible by ``r * c``.
        linear (nn.Linear): Linear(C, C) applied to each (window, group)
            vector laid out token-major, channel-minor.
        window (tuple[int, int]): (r, c); the groups are G = r * c.
        transpose (bool): If True the windows live on the map with H and W
            swapped: r columns by c rows (the official H-branch).

    Returns:
        Tensor: (B, T, H, W, C).
    """
    B, T, H, W, C = x.shape
    y = _from_windows(linear(_to_windows(x, window, transpose)), x.shape,
                      window, transpose)
    Hp, Wp = y.shape[2] * y.shape[3], y.shape[4] * y.shape[5]
    return y.reshape(B, T, Hp, Wp, C)[:, :, :H, :W]


#: Masks of the real (unpadded) tokens of window rows, per map geometry and
#: device (:func:`_window_rows_sum`); a few entries per model and input size.
_REAL_TOKEN_MASKS: dict = {}


def _real_token_mask(shape: Tuple[int, int, int], window: Tuple[int, int],
                     transpose: bool, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    """(F * nh * nw * L, 1) ones at the window-row tokens of a padded map
    that lie on the (F, H, W) map, zeros at the padding, in the row order of
    :func:`_to_windows`, which makes it: the rows of one channel group of a
    map of ones, zero-padded. Built once per geometry and device (not kept
    when made under ``torch.inference_mode``, whose tensors autograd
    refuses later, or while a graph is captured)."""
    key = (shape, window, transpose, device, dtype)
    keep = not (torch.is_inference_mode_enabled() or graph_capture())
    mask = _REAL_TOKEN_MASKS.get(key) if keep else None
    if mask is None:
        groups = window[0] * window[1]  # one channel per group
        ones = torch.ones(1, *shape, groups, device=device, dtype=dtype)
        rows = _to_windows(ones, window, transpose)  # (G * windows, L)
        # a copy, so the cache does not hold the other groups' rows
        mask = rows[:rows.shape[0] // groups].reshape(-1, 1).clone()
        if keep:
            if len(_REAL_TOKEN_MASKS) >= 64:
                _REAL_TOKEN_MASKS.clear()
            _REAL_TOKEN_MASKS[key] = mask
    return mask


def _window_rows_sum(y: torch.Tensor, shape: torch.Size,
                     window: Tuple[int, int],
                     transpose: bool) -> torch.Tensor:
    """Per-clip channel sums of a windowed branch's output over the tokens
    of the map, read from its window rows (``y``: the branch's product of
    :func:`_to_windows` rows) without laying them out as a map: one
    reduction, or, where the map was padded (the outputs at padded tokens
    are not zero), a product with a mask of the real tokens and then one.

    Returns:
        Tensor: (B, C) in float32.
    """
    B, F_, H, W, C = shape
    groups = window[0] * window[1]
    S = C // groups
    wh, ww = _window_extent(window, transpose)
    rows = y.view(B, groups, -1, S)  # (B, G, windows x L, S)
    if H % wh == 0 and W % ww == 0:
        return rows.sum(2, dtype=torch.float32).view(B, C)
    mask = _real_token_mask((F_, H, W), window, transpose, y.device, y.dtype)
    return (rows * mask).sum(2, dtype=torch.float32).view(B, C)


def _window_mix_mean(m: torch.Tensor, linear: nn.Linear,
                     window: Tuple[int, int], transpose: bool) -> torch.Tensor:
    """``chunk_mix(m).mean((1, 2, 3))`` without mixing every window.

    ``m`` is a (B, H, W, C) map (a clip's mean over frames). A window's
    output is affine in its input vector, so the sum of the outputs over all
    whole windows is the Linear of the summed window vectors (one (G, C) x
    (C, C) product) plus the bias once per window; only the partial windows
    at the bottom and right edges of a padded map are mixed explicitly.

    Returns:
        Tensor: (B, C), the spatial mean of the branch output.
    """
    B, H, W, C = m.shape
    groups = window[0] * window[1]
    S = C // groups
    wh, ww = _window_extent(window, transpose)
    Hf, Wf = H // wh * wh, W // ww * ww
    total = m.new_zeros(B, C)
    if Hf and Wf:
        u = m[:, :Hf, :Wf].unflatten(2, (Wf // ww, ww)).unflatten(
            1, (Hf // wh, wh)).sum((1, 3))  # (B, wh, ww, C)
        u = u.unflatten(3, (groups, S))
        # vector order of a window: (wh, ww, S), or (ww, wh, S) transposed
        u = u.permute(0, 3, 2, 1, 4) if transpose else u.permute(0, 3, 1, 2, 4)
        # Only the per-channel sum over a window's L output tokens is
        # needed: sum those rows of the weight first ((S, C), not (C, C)).
        weight = linear.weight.reshape(groups, S, C).sum(0)
        v = F.linear(u.reshape(B, groups, C), weight)
        if linear.bias is not None:
            v = v + linear.bias.reshape(groups, S).sum(0) * (
                (Hf // wh) * (Wf // ww))
        total = total + v.flatten(1)
    strips = []
    if Hf < H:
        strips.append(m[:, Hf:])
    if Wf < W and Hf:
        strips.append(m[:, :Hf, Wf:])
    for strip in strips:
        total = total + chunk_mix(strip.unsqueeze(1), linear, window,
                                  transpose).sum((1, 2, 3))
    return total / (H * W)


def frame_mean(x: torch.Tensor) -> torch.Tensor:
    """``x.mean(1)`` of a (B, F, H, W, C) tensor, as a sum over frames
    divided by F (the same float result): the sum's gradient is the output
    gradient expanded over the frames as a view, where the mean's backward
    writes that expansion out in full, one more pass over a block input's
    size for autograd to read back when it adds the gradients of ``x``."""
    return x.sum(1) / x.shape[1]


class MorphFCSpatial(BaseModule):
    """MorphFC_s: chunked token mixing along H and W plus a channel FC.

    The forward is :meth:`branch_weights` (the reweighting) followed by
    :meth:`mix` (the weighted sum of the branches) and ``proj``; blocks call
    the two steps separately to stream a clip through in chunks
    (:class:`~morphmlp_mm.models.blocks.MorphBlock`). Compared with the plain
    algorithm (:mod:`morphmlp_mm.models.plain`) this never materialises the
    branch outputs in token layout: the pooled vector comes from the input's
    window sums (the branches are affine), the C-branch weight carries its
    reweighting factor (when there are more tokens than channels), and the
    H/W outputs are added from their permuted layout (in place without
    autograd).

    Args:
        channels (int): Channels C.
        window (tuple[int, int]): Chunk window (r, c); chunk length and
            number of channel groups are both L = r * c, C % L == 0.
        num_branches (int): 3 for the H/W/C form (stages 1-3), 2 for the
            official stage-4 form (``mlp_h`` over row-major windows and
            ``mlp_c``).
        qkv_bias (bool): Bias of the branch Linears. Defaults to True
            (official ``MORPH.QKV_BIAS``).
        proj_drop (float): Dropout after ``proj``. Defaults to 0.
    """

    def __init__(self,
                 channels: int,
                 window: Tuple[int, int],
                 num_branches: int = 3,
                 qkv_bias: bool = True,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if num_branches not in (2, 3):
            raise ValueError(
                f'num_branches must be 2 or 3, got {num_branches}')
        chunk = window[0] * window[1]
        if channels % chunk != 0:
            raise ValueError(
                f'channels={channels} must be divisible by the chunk length '
                f'{chunk} (window {tuple(window)}): MorphFC splits C into '
                'L groups of C/L channels')
        self.channels = channels
        self.window = tuple(window)
        self.num_branches = num_branches
        self.mlp_h = nn.Linear(channels, channels, bias=qkv_bias)
        if num_branches == 3:
            self.mlp_w = nn.Linear(channels, channels, bias=qkv_bias)
        self.mlp_c = nn.Linear(channels, channels, bias=qkv_bias)
        self.reweight = Mlp(channels, channels // 4, channels * num_branches)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop else nn.Identity()

    #: Whether :meth:`mix` computes the branch weights from the branch
    #: outputs, in the fewest kernels (:meth:`_mix_lean`). ``None``
    #: (default): as :func:`launch_lean_setting` says (every device but the
    #: CPU unless ``MORPHMLP_LAUNCH_LEAN`` is set).
    launch_lean: Optional[bool] = None

    def window_branches(self) -> List[Tuple[nn.Linear, bool]]:
        """(Linear, transpose) of the windowed branches, in reweight order."""
        if self.num_branches == 3:
            return [(self.mlp_h, True), (self.mlp_w, False)]
        return [(self.mlp_h, False)]

    def branch_weights(self, frame_mean: torch.Tensor) -> torch.Tensor:
        """Softmax weights of the branches for every clip.

        Args:
            frame_mean (Tensor): (B, H, W, C), the block input averaged over
                its frames (the pooling is over the whole clip, and every
                branch is affine, so the mean over frames can come first).

        Returns:
            Tensor: (B, k, C) with k = ``num_branches`` (order h, w, c or
            h, c), summing to 1 over k.
        """
        B, C = frame_mean.shape[0], frame_mean.shape[-1]
        pooled = self.mlp_c(frame_mean.mean((1, 2)))
        for branch, transpose in self.window_branches():
            pooled = pooled + _window_mix_mean(frame_mean, branch,
                                               self.window, transpose)
        weights = self.reweight(pooled).reshape(B, C, self.num_branches)
        return weights.softmax(dim=-1).transpose(1, 2)

    def mix(self,
            x: torch.Tensor,
            weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``sum_k weights_k * branch_k(x)``, the input of ``proj``.

        Off the CPU (see ``launch_lean``) and without given ``weights``:
        :meth:`_mix_lean`. Else, without autograd, the weighted sum is
        accumulated in place. With autograd it is
        :class:`_SpatialMixFunction` (a hand-written backward; see there)
        where that applies, else the same steps in out-of-place ops that
        autograd differentiates.

        Args:
            x (Tensor): (B, F, H, W, C), any number of frames F of each clip
                (windows never cross frames).
            weights (Tensor, optional): (B, k, C) from
                :meth:`branch_weights`; computed from ``x`` (the whole clip)
                when not given.

        Returns:
            Tensor: (B, F, H, W, C), contiguous.
        """
        if weights is None:
            lean = self.launch_lean
            if lean is None:
                setting = launch_lean_setting()
                lean = setting == 'on' or (setting == 'auto'
                                           and x.device.type != 'cpu')
            if lean:
                return self._mix_lean(x)
            weights = self.branch_weights(frame_mean(x))
        # under autocast: every branch product reads x in autocast's dtype,
        # so cast it once (the pooling above read it in float32)
        x = autocast_input(x)
        params = self._mix_params()
        if not torch.is_grad_enabled() or not (
                x.requires_grad or weights.requires_grad
                or any(p is not None and p.requires_grad for p in params)):
            return self._mix_forward(x, weights)[0]
        if _SpatialMixFunction.applies(x, self.channels):
            return _SpatialMixFunction.apply(x, weights, self, *params)
        return self._mix_forward(x, weights, inplace=False)[0]

    def _mix_lean(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`mix` in the fewest kernels, for devices where launching
        them is what costs (a GPU at the configs' 8 clips per step: the CPU
        that queues the kernels, not the GPU, sets the pace there).

        The plain algorithm's order (the branch outputs first, the branch
        weights from their mean over the clip, then the weighted sum) with
        none of its layout passes: the branch means come from the window
        rows (:func:`_window_rows_sum`, one reduction each) and the
        windowed outputs are added to the scaled C-branch through their
        strided views. One forward launches fewer kernels than the plain
        algorithm's (21 against 23 at 224 x 224), where the pooling from
        the input of :meth:`branch_weights`, which reads less memory,
        launches about twenty small ones. Autograd differentiates it; it
        keeps the branch outputs for the backward, as the plain algorithm
        does.
        """
        B, F_, H, W, C = x.shape
        x = autocast_input(x)
        c = linear(x, self.mlp_c.weight, self.mlp_c.bias)
        pooled = c.sum((1, 2, 3), dtype=torch.float32)
        rows = []
        for branch, transpose in self.window_branches():
            y = linear(_to_windows(x, self.window, transpose), branch.weight,
                       branch.bias)
            pooled = pooled + _window_rows_sum(y, x.shape, self.window,
                                               transpose)
            rows.append((y, transpose))
        weights = self.reweight(pooled / (F_ * H * W)).reshape(
            B, C, self.num_branches).softmax(dim=-1).transpose(1, 2)
        # one cast for all branches: the sum stays in the products' dtype
        weights = weights.to(c.dtype)
        z = c * weights[:, -1, None, None, None]
        for k, (y, transpose) in enumerate(rows):
            acc, view, a = self._in_map(z, y, weights[:, k], transpose)
            # not addcmul: its backward multiplies each factor by the
            # scalar ``value`` first, one more pass over the branch output
            z = (acc + view * a).reshape(B, F_, H, W, C)
        return z

    def _mix_params(self) -> List[Optional[torch.Tensor]]:
        """Weight and bias of ``mlp_c``, then of each windowed branch."""
        params = [self.mlp_c.weight, self.mlp_c.bias]
        for branch, _ in self.window_branches():
            params += [branch.weight, branch.bias]
        return params

    def _mix_forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor,
        inplace: bool = True,
        keep_rows: bool = False
    ) -> Tuple[torch.Tensor, List[Tuple[torch.Tensor, torch.Tensor]]]:
        """:meth:`mix`, the windowed branches accumulated in place (no
        autograd graph, or inside :class:`_SpatialMixFunction`) or, with
        ``inplace=False``, out of place for autograd (autocast, graph
        capture, clips with no more tokens than channels). The C-branch's
        in-place bias add / scaling act on its fresh GEMM output, which
        autograd allows.

        Returns the mix and, with ``keep_rows``, per windowed branch its
        window rows and their product with the branch's Linear (what the
        backward of :class:`_SpatialMixFunction` needs); else an empty list,
        and each branch's buffers are freed before the next branch
        allocates its own (which then reuses the same, cache-warm memory).
        """
        B, F_, H, W, C = x.shape
        a = weights[:, -1]
        tokens = F_ * H * W
        # C-branch, scaled per clip and channel: folded into the output rows
        # of the weight when that is cheaper than scaling the output.
        if tokens > C:
            weight = self.mlp_c.weight * a[:, :, None]  # (B, C, C)
            bias = self.mlp_c.bias
            bias = bias * a if bias is not None else None
            if B == 1:
                z = fused_linear(x.reshape(tokens, C), weight[0],
                                 None if bias is None else bias[0])
            else:
                z = bmm(x.reshape(B, tokens, C), weight.transpose(1, 2))
                if bias is not None:
                    z.add_(bias[:, None])
        else:
            # out of place: the output of a custom autograd Function
            # (:func:`~morphmlp_mm.models.gemm.linear`) may not be modified
            z = fused_linear(x, self.mlp_c.weight,
                             self.mlp_c.bias) * a[:, None, None, None]
        z = z.view(B, F_, H, W, C)
        rows = []
        for k, (branch, transpose) in enumerate(self.window_branches()):
            u = _to_windows(x, self.window, transpose)
            y = fused_linear(u, branch.weight, branch.bias)
            acc, view, a = self._in_map(z, y, weights[:, k], transpose)
            if autocast_on(x.device.type):
                # keep the sum in the products' dtype (the input of proj,
                # which autocast would cast to it anyway)
                a = a.to(acc.dtype)
            if inplace:
                acc.addcmul_(view, a)
            else:
                z = torch.addcmul(acc, view, a).reshape(B, F_, H, W, C)
            if keep_rows:
                rows.append((u, y))
            del u, y, view
        return z, rows

    def _in_map(self, z: torch.Tensor, rows: torch.Tensor,
                a: Optional[torch.Tensor], transpose: bool
                ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Window rows ``rows`` of a branch seen in the geometry of ``z``.

        Returns (view of ``z``, view of ``rows``, ``a`` reshaped) such that
        an elementwise op of the three adds the rows into the map: in the
        window geometry when the map is unpadded (no copy), else on the map
        cropped out of the padded window view.
        """
        B, F_, H, W, C = z.shape
        groups = self.window[0] * self.window[1]
        y = _from_windows(rows, z.shape, self.window, transpose)
        if y.shape[2] * y.shape[3] == H and y.shape[4] * y.shape[5] == W:
            if a is not None:
                a = a.reshape(B, 1, 1, 1, 1, 1, groups, C // groups)
            return z.view(y.shape), y, a
        y = y.reshape(B, F_, y.shape[2] * y.shape[3], y.shape[4] * y.shape[5],
                      C)[:, :, :H, :W]
        return z, y, None if a is None else a.reshape(B, 1, 1, 1, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(
            linear(self.mix(x), self.proj.weight, self.proj.bias))


class _SpatialMixFunction(torch.autograd.Function):
    """:meth:`MorphFCSpatial.mix` with a hand-written backward.

    Autograd of the out-of-place mix stores every branch output, multiplies
    the output gradient with it through the strided window view for the
    branch-weight gradient, writes the scaled gradient in token layout and
    copies it into window layout again, and copies the input gradient back.
    Here the output gradient ``g`` is permuted into window rows once per
    windowed branch, and everything else comes from GEMMs:

    * C-branch, ``z_c = x @ (a * W)^T + a * b`` per clip: ``P = g^T x`` (the
      weight-gradient GEMM, (C, C)) gives both the Linear's gradient
      ``a * P`` and the branch-weight gradient ``sum_i P[o, i] W[o, i]``
      (plus the bias term), so the branch output is never stored.
    * A windowed branch with many window rows per clip (four times the
      entries of ``G`` (C, C) matrices; stage 1 at 224): the same per group,
      ``P_g = g_g^T u_g`` for each group g of rows (one batched GEMM with
      the FLOPs of the weight gradient), so neither the branch output nor a
      scaled copy of the gradient is needed; the input gradient is
      ``g_g @ (a_g * W)`` per group.
    * Otherwise (few rows: deep stages) the stored branch output gives the
      branch-weight gradient by one reduction and the gradient rows are
      scaled in place before the two GEMMs.

    The input gradient of each windowed branch is added back through the
    strided window view. Used in eager mode outside autocast and graph
    capture, on the CPU (elsewhere :meth:`MorphFCSpatial.mix` is the
    launch-lean mix unless ``launch_lean`` is False; the per-clip loop of
    the grouped backward would multiply a GPU's launches by the batch), for
    clips with more tokens than channels (else the C-branch
    scales its output, and autograd handles the mix). Gradients agree with
    autograd of the plain algorithm (``tests/models/test_plain_equivalence``).
    """

    @staticmethod
    def applies(x: torch.Tensor, channels: int) -> bool:
        return (not graph_capture()
                and not autocast_on(x.device.type)
                and x.shape[1] * x.shape[2] * x.shape[3] > channels)

    @staticmethod
    def grouped(rows: int, channels: int, groups: int) -> bool:
        """Whether a windowed branch's backward uses per-group GEMMs: the
        (G, C, C) products are at most a quarter of the branch output (at
        equal size the batched GEMMs with few rows per group are slower
        than the passes they save)."""
        return rows >= 4 * groups * channels

    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor,
                module: 'MorphFCSpatial', *params) -> torch.Tensor:
        z, rows = module._mix_forward(x, weights, keep_rows=True)
        ctx.module = module
        ctx.has_bias = [p is not None for p in params[1::2]]
        saved = [x, weights] + [p for p in params[0::2]]
        saved += [p for p in params[1::2] if p is not None]
        groups = module.window[0] * module.window[1]
        for u, y in rows:
            grouped = _SpatialMixFunction.grouped(
                u.shape[0] // x.shape[0], x.shape[-1], groups)
            saved += [u, None if grouped else y]  # no output: grouped
        ctx.save_for_backward(*saved)
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        module = ctx.module
        branches = module.window_branches()
        x, weights, *rest = ctx.saved_tensors
        n = 1 + len(branches)
        mats = rest[:n]
        nb = sum(ctx.has_bias)
        it = iter(rest[n:n + nb])
        biases = [next(it) if has else None for has in ctx.has_bias]
        rest = rest[n + nb:]
        needs = ctx.needs_input_grad
        B, F_, H, W, C = x.shape
        groups = module.window[0] * module.window[1]
        S = C // groups
        g = grad.contiguous()
        g3, x3 = g.view(B, -1, C), x.view(B, -1, C)
        grad_weights = torch.empty(weights.shape, dtype=g.dtype,
                                   device=g.device)
        grads: List[Optional[torch.Tensor]] = [None] * (2 * n)
        # C-branch: z_c = x @ (a * W)^T + a * b, per clip and channel a
        a = weights[:, -1]
        prod = bmm_tn(g3, x3)  # (B, C, C)
        colsum = g3.sum(1)  # (B, C)
        grad_weights[:, -1] = (prod * mats[0]).sum(-1)
        if biases[0] is not None:
            grad_weights[:, -1] += colsum * biases[0]
        if needs[3]:
            grads[0] = (prod * a[:, :, None]).sum(0)
        if biases[0] is not None and needs[4]:
            grads[1] = (colsum * a).sum(0)
        gx = None
        if needs[0]:
            gx = bmm(g3, mats[0] * a[:, :, None]).view(x.shape)
        # the branches' gradient rows and input-gradient rows share two
        # buffers (fresh pages of new tensors cost page faults)
        gw = rows = None
        for k, (_, transpose) in enumerate(branches):
            u, y = rest[2 * k], rest[2 * k + 1]
            weight, bias = mats[k + 1], biases[k + 1]
            gw = _to_windows(g, module.window, transpose, out=gw)
            if gw.data_ptr() == g.data_ptr():  # a 1 x 1 window is a view
                gw = gw.clone()
            if rows is None or rows.shape != gw.shape:
                rows = torch.empty_like(gw)
            if y is None:  # grouped (see forward)
                # the branch weight of output column (l, s) of group g's
                # rows is a[g * S + s]
                scale = weights[:, k].reshape(B, groups, 1, S).expand(
                    B, groups, groups, S).reshape(B, groups, C)
                gw4, u4 = gw.view(B, groups, -1, C), u.view(B, groups, -1, C)
                gsum = gw4.sum(2)  # (B, G, C)
                grad_w = weight.new_zeros(C, C) if needs[5 + 2 * k] else None
                for b in range(B):
                    gb = gw4[b]  # (G, rows, C)
                    prods = bmm_tn(gb, u4[b])  # (G, C, C)
                    ga = (prods * weight).sum(-1)  # (G, C)
                    if bias is not None:
                        ga += gsum[b] * bias
                    grad_weights[b, k] = ga.view(groups, groups, S).sum(
                        1).reshape(C)
                    if grad_w is not None:
                        grad_w += (prods * scale[b, :, :, None]).sum(0)
                    if gx is not None:
                        rows_b = bmm(gb, weight * scale[b, :, :, None],
                                     out=rows.view(gw4.shape)[b])
                        acc, view, _ = module._in_map(
                            gx[b:b + 1], rows_b, None, transpose)
                        acc.add_(view)
                grads[2 + 2 * k] = grad_w
                if bias is not None and needs[6 + 2 * k]:
                    grads[3 + 2 * k] = (gsum * scale).sum((0, 1))
                continue
            gw5 = gw.view(B, groups, -1, groups, S)  # rows (B, G, ..), (L, S)
            grad_weights[:, k] = (gw5 * y.view(gw5.shape)).sum(
                (2, 3)).reshape(B, C)
            gw5.mul_(weights[:, k].reshape(B, groups, 1, 1, S))
            if needs[5 + 2 * k]:
                grads[2 + 2 * k] = mm_tn(gw, u)
            if bias is not None and needs[6 + 2 * k]:
                grads[3 + 2 * k] = gw.sum(0)
            if gx is not None:
                acc, view, _ = module._in_map(
                    gx, mm(gw, weight, out=rows), None, transpose)
                acc.add_(view)
        return (gx, grad_weights if needs[1] else None, None, *grads)


class MorphFCTemporal(BaseModule):
    """MorphFC_t: mixes all frames at each spatial position.

    Args:
        channels (int): Channels C.
        frames (int): Frames T' at this stage; fixed at construction.
        qkv_bias (bool): Bias of ``mlp_t``. Defaults to True.
        proj_drop (float): Dropout after ``proj``. Defaults to 0.
    """

    def __init__(self,
                 channels: int,
                 frames: int,
                 qkv_bias: bool = True,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        self.channels = channels
        self.frames = frames
        self.groups = temporal_groups(channels, frames)
        dim = frames * (channels // self.groups)
        self.mlp_t = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop else nn.Identity()

    def reset_official(self) -> None:
        """Official init: ``mlp_t`` zero, ``proj.weight`` all ones, bias 0."""
        nn.init.zeros_(self.mlp_t.weight)
        if self.mlp_t.bias is not None:
            nn.init.zeros_(self.mlp_t.bias)
        nn.init.ones_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless ``x`` is (B, frames, H, W, channels):
        ``mlp_t`` is built for ``frames`` frames, and another count could
        even fit its weight with other channel groups, silently."""
        if x.dim() != 5 or x.shape[1] != self.frames or \
                x.shape[-1] != self.channels:
            raise ValueError(
                f'MorphFC_t was built for frames={self.frames} and '
                f'channels={self.channels}: it takes (B, {self.frames}, H, '
                f'W, {self.channels}) inputs, got {tuple(x.shape)}')

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """``mlp_t`` over the frames of every (position, group): the input
        of ``proj``. (B, T, H, W, C) -> (B, T, H, W, C), contiguous."""
        self.check_input(x)
        B, T, H, W, C = x.shape
        G, S = self.groups, C // self.groups
        t = x.reshape(B, T, H, W, G, S).permute(0, 2, 3, 4, 1, 5)
        # under autocast the permutation copy is also the cast
        t = fused_linear(autocast_input(t).reshape(B, H, W, G, T * S),
                         self.mlp_t.weight, self.mlp_t.bias)
        t = t.reshape(B, H, W, G, T, S).permute(0, 4, 1, 2, 3, 5)
        return t.reshape(B, T, H, W, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(
            linear(self.mix(x), self.proj.weight, self.proj.bias))


__all__: Sequence[str] = ('Mlp', 'MorphFCSpatial', 'MorphFCTemporal',
                          'chunk_mix', 'default_chunk_window', 'fused_linear',
                          'launch_lean_setting', 'temporal_groups',
                          'LAUNCH_LEAN_SETTINGS', 'REFERENCE_STAGE_SIZES')
