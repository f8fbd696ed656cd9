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
              (B,T,H/r,r,W/c,c,G,S) --permute--> (B,T,H/r,W/c,G,[r,c,S])
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
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

#: Stage resolutions of the 224 x 224 reference input (stride 4, 8, 16, 32).
REFERENCE_STAGE_SIZES = (56, 28, 14, 7)


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
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


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
    r, c = window
    groups = r * c
    S = C // groups
    # Window extent along (H, W) of the untransposed map.
    wh, ww = (c, r) if transpose else (r, c)
    Hp, Wp = math.ceil(H / wh) * wh, math.ceil(W / ww) * ww
    if Hp != H or Wp != W:
        x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    nh, nw = Hp // wh, Wp // ww
    x = x.reshape(B, T, nh, wh, nw, ww, groups, S)
    if transpose:
        # vector order (w-offset, h-offset, s): the window of the transposed map
        perm = (0, 1, 4, 2, 6, 5, 3, 7)
        inv = (0, 1, 3, 6, 2, 5, 4, 7)
        shape = (B, T, nw, nh, groups, ww, wh, S)
    else:
        perm = (0, 1, 2, 4, 6, 3, 5, 7)
        inv = (0, 1, 2, 5, 3, 6, 4, 7)
        shape = (B, T, nh, nw, groups, wh, ww, S)
    x = x.permute(*perm).reshape(*shape[:5], -1)
    x = linear(x).reshape(shape).permute(*inv).reshape(B, T, Hp, Wp, C)
    if Hp != H or Wp != W:
        x = x[:, :, :H, :W]
    return x


class MorphFCSpatial(BaseModule):
    """MorphFC_s: chunked token mixing along H and W plus a channel FC.

    Args:
        channels (int): Channels C.
        window (tuple[int, int]): Chunk window (r, c); chunk length and
            number of channel groups are both L = r * c, C % L == 0.
        num_branches (int): 3 for the H/W/C form (stages 1-3), 2 for the
            official stage-4 form (``mlp_h`` over row-major windows + ``mlp_c``).
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C = x.shape[0], x.shape[-1]
        if self.num_branches == 3:
            branches = (chunk_mix(x, self.mlp_h, self.window, transpose=True),
                        chunk_mix(x, self.mlp_w, self.window,
                                  transpose=False), self.mlp_c(x))
        else:
            branches = (chunk_mix(x, self.mlp_h, self.window,
                                  transpose=False), self.mlp_c(x))
        pooled = sum(branches).mean(dim=(1, 2, 3))
        weights = self.reweight(pooled).reshape(B, C, self.num_branches)
        weights = weights.softmax(dim=-1)[:, None, None, None]
        x = sum(b * weights[..., k] for k, b in enumerate(branches))
        return self.proj_drop(self.proj(x))


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H, W, C = x.shape
        G, S = self.groups, C // self.groups
        t = x.reshape(B, T, H, W, G, S).permute(0, 4, 2, 3, 1, 5)
        t = self.mlp_t(t.reshape(B, G, H, W, T * S))
        t = t.reshape(B, G, H, W, T, S).permute(0, 4, 2, 3, 1, 5)
        return self.proj_drop(self.proj(t.reshape(B, T, H, W, C)))


__all__: Sequence[str] = ('Mlp', 'MorphFCSpatial', 'MorphFCTemporal',
                          'chunk_mix', 'default_chunk_window',
                          'temporal_groups', 'REFERENCE_STAGE_SIZES')
