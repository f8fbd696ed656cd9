"""MorphMLP video backbone (mmaction2)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .morphmlp import ArchType, MorphMLP


def stem_frames_of(num_frames: int) -> int:
    """Frames after the stem for ``num_frames`` input frames: T' =
    ceil(T / 2) (its first convolution has temporal stride 2)."""
    return (int(num_frames) - 1) // 2 + 1


class MorphMLP3D(MorphMLP):
    """MorphMLP backbone for video (the official MorphMLP / MorphMLP_32).

    The image backbone plus a 3x3x3 stem with temporal stride 2 and a
    MorphFC_t branch in every block. At 224 x 224 with 16 or 32 frames the
    parameters, initialisation and outputs equal the official model; other
    frame counts and sizes follow the general rules documented in
    :mod:`morphmlp_mm.models.morph_fc`.

    Args:
        arch (str | dict): As :class:`MorphMLP`. The official video models
            are ``'small'`` and ``'base'``; ``'tiny'`` and ``'large'`` work
            too. Defaults to ``'small'``.
        num_frames (int): Input frames T. The stem halves them to
            T' = ceil(T / 2); MorphFC_t is built for T' frames, so every clip
            must have exactly ``num_frames`` frames. Defaults to 16.
        temporal (bool): Build the MorphFC_t branch (a bool). False leaves
            only the stem's temporal convolution to see time (an ablation).
            Defaults to True.
        stem_temporal_kernel (int): Temporal taps of the stem's first
            convolution: 3 (the official stem) or any odd number; 1 makes
            the stem look at one frame at a time. With ``temporal=False``
            and ``stem_temporal_kernel=1`` nothing in the backbone mixes
            frames: its output is the same for any order of the frames the
            stem samples (every second one), the control of an experiment
            that needs temporal order. Defaults to 3.
        temporal_init (str): Initialisation of MorphFC_t.
            ``'official'``: ``mlp_t`` = 0 and ``proj.weight`` = 1, so the
            branch starts as an identity skip (the official code). Its
            output only reaches the rest of the block through ``norm1``, a
            LayerNorm whose input gradient sums to zero over channels;
            with all-equal ``proj`` rows ``mlp_t`` therefore receives a zero
            gradient and ``proj.weight`` too (``mlp_t`` outputs 0): in fp32
            the branch stays at its init unless rounding noise breaks the
            symmetry. ``'learnable'``: ``mlp_t`` = 0 but ``proj.weight``
            truncated normal (std 0.02): still an identity skip at the
            start (so image -> video initialisation stays exact), and the
            branch trains. Defaults to ``'official'``.
        out_indices (int | Sequence[int]): As :class:`MorphMLP`. Defaults
            to -1.
        out_type (str): ``'featmap'`` returns (B, C, T', H, W) maps (a single
            tensor when one stage is requested, as mmaction2 heads expect),
            ``'avg_featmap'`` (B, C). Defaults to ``'featmap'``.
        **kwargs: The other arguments of :class:`MorphMLP`.

    Example:
        >>> import torch
        >>> from morphmlp_mm import MorphMLP3D
        >>> arch = dict(depths=[1, 1, 1, 1], channels=[16, 32, 56, 112],
        ...             chunk_lengths=[4, 8, 8, 16])
        >>> model = MorphMLP3D(arch, num_frames=8).eval()
        >>> tuple(model(torch.rand(1, 3, 8, 64, 64)).shape)
        (1, 112, 4, 2, 2)
    """
    video = True
    #: The stem's norms see (B, C, T, H, W) maps.
    norm_types = {
        'BN3d': nn.BatchNorm3d,
        'SyncBN': nn.SyncBatchNorm,
        'GN': nn.GroupNorm,
        'IN3d': nn.InstanceNorm3d,
    }

    def __init__(self,
                 arch: ArchType = 'small',
                 num_frames: int = 16,
                 temporal: bool = True,
                 stem_temporal_kernel: int = 3,
                 temporal_init: str = 'official',
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'featmap',
                 in_channels: int = 3,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, Sequence[bool]] = False,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if not isinstance(num_frames, int) or isinstance(
                num_frames, bool) or num_frames < 1:
            raise ValueError(
                f'num_frames must be a positive int, got {num_frames!r}')
        if (not isinstance(stem_temporal_kernel, int)
                or isinstance(stem_temporal_kernel, bool)
                or stem_temporal_kernel < 1 or stem_temporal_kernel % 2 == 0):
            raise ValueError(
                'stem_temporal_kernel must be a positive odd int (3: the '
                'official stem, 1: one frame at a time), got '
                f'{stem_temporal_kernel!r}')
        if not isinstance(temporal, bool):
            raise ValueError(
                f'temporal must be a bool (True or False), got '
                f'{type(temporal).__name__} {temporal!r}')
        if temporal_init not in ('official', 'learnable'):
            raise ValueError(f"temporal_init must be 'official' or "
                             f"'learnable', got {temporal_init!r}")
        self.num_frames = num_frames
        self.temporal = temporal
        self.stem_temporal_kernel = stem_temporal_kernel
        self.temporal_init = temporal_init
        super().__init__(
            arch=arch,
            in_channels=in_channels,
            out_indices=out_indices,
            out_type=out_type,
            drop_path_rate=drop_path_rate,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            with_cp=with_cp,
            norm_cfg=norm_cfg,
            init_cfg=init_cfg)

    def reset_official(self) -> None:
        """The official initialisation, or the ``'learnable'`` variant."""
        super().reset_official()
        if self.temporal_init == 'learnable':
            from mmengine.model.weight_init import trunc_normal_init
            from .morph_fc import MorphFCTemporal
            for m in self.modules():
                if isinstance(m, MorphFCTemporal):
                    trunc_normal_init(m.proj, std=.02, bias=0.)

    def _stem_kwargs(self) -> dict:
        return dict(temporal_kernel=self.stem_temporal_kernel)

    @property
    def stem_frames(self) -> int:
        """Frames after the stem: T' = ceil(T / 2)."""
        return stem_frames_of(self.num_frames)

    def _stage_frames(self) -> Optional[int]:
        return self.stem_frames if self.temporal else None

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            shape = self._shape(x) if isinstance(x, torch.Tensor) else x
            raise ValueError(
                'MorphMLP3D expects an input of shape (B, '
                f'{self.in_channels}, T={self.num_frames}, H, W), got '
                f'{shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'MorphMLP3D was built with in_channels={self.in_channels},'
                f' got an input with {int(x.shape[1])} channels (shape '
                f'{self._shape(x)}); video inputs are (B, C, T, H, W)')
        if x.shape[2] != self.num_frames:
            raise ValueError(
                f'MorphMLP3D was built with num_frames={self.num_frames}, '
                f'got a clip of {int(x.shape[2])} frames (shape '
                f'{self._shape(x)}); set num_frames to the clip length of '
                'the pipeline (SampleFrames clip_len)')
        self._check_not_empty(x, 'B, C, T, H, W')

    def _format_output(self, x: torch.Tensor) -> torch.Tensor:
        if self.out_type == 'avg_featmap':
            return x.mean(dim=(1, 2, 3))
        return x.permute(0, 4, 1, 2, 3).contiguous()

    def forward(self, x: torch.Tensor
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        outs = super().forward(x)
        return outs[0] if len(outs) == 1 else outs
