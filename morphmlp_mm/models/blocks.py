"""MorphMLP block, stem and downsampling layers (image and video).

All modules take and return channels-last ``(B, T, H, W, C)`` tensors except
the stem, which takes the channels-first input of the backbone. Module and
parameter names follow the official MorphMLP code (``PermutatorBlock``,
``PatchEmbed``, ``Downsample``; names inherited from ViP) so that official
checkpoints load key for key.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from .morph_fc import Mlp, MorphFCSpatial, MorphFCTemporal


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
            memory. Defaults to False.
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

    @property
    def temporal(self) -> bool:
        return hasattr(self, 't_fc')

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = x + self.t_fc(self.t_norm1(x)) if self.temporal else x
        x = x + self.drop_path(self.fc(self.norm1(xt)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


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
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 video: bool = False,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.video = video
        if norm_cfg is None:
            norm_cfg = dict(type='BN3d' if video else 'BN')
        hidden = channels // 2
        if video:
            self.proj1 = nn.Conv3d(in_channels, hidden, 3, 2, 1)
            self.proj2 = nn.Conv3d(hidden, channels, (1, 3, 3), (1, 2, 2),
                                   (0, 1, 1))
        else:
            self.proj1 = nn.Conv2d(in_channels, hidden, 3, 2, 1)
            self.proj2 = nn.Conv2d(hidden, channels, 3, 2, 1)
        self.norm1 = build_norm_layer(norm_cfg, hidden)[1]
        self.act = nn.GELU()
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, C, T, H, W) -> (B, T', H/4, W/4, C1)."""
        x = self.norm2(self.proj2(self.act(self.norm1(self.proj1(x)))))
        if self.video:
            return x.permute(0, 2, 3, 4, 1)
        return x.permute(0, 2, 3, 1).unsqueeze(1)


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
