"""MorphMLP image backbone (mmpretrain / mmsegmentation).

The official repository released only the video model; the image model
follows the paper ([v1] Table 1, Fig. 4) and the video model's modules with
T = 1 and no temporal branch: the same stem (2-D), blocks and downsampling.
"""
import copy
import numbers
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from .blocks import Downsample, MorphBlock, Stem
from .morph_fc import REFERENCE_STAGE_SIZES, default_chunk_window

ArchType = Union[str, Dict]

_OFFICIAL_CHUNKS = [14, 28, 28, 49]
_SB_CHANNELS = [112, 224, 392, 784]


class MorphMLP(BaseModule):
    """MorphMLP backbone for images.

    A PyTorch implementation of `MorphMLP: An Efficient MLP-Like Backbone for
    Spatial-Temporal Representation Learning <https://arxiv.org/abs/2111.12527>`_
    (ECCV 2022). Block, MorphFC and naming follow the official video code
    (MTLab/MorphMLP); the image variant is the T = 1 case without MorphFC_t.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'``
            (aliases ``t``, ``s``, ``b``, ``l``) or a dict with keys
            ``depths`` (4 ints), ``channels`` (4 ints), ``chunk_lengths``
            (4 entries, each a chunk length L or an explicit window
            ``(rows, cols)``) and optionally ``mlp_ratio`` (float or 4
            floats, default 3). Defaults to ``'tiny'``.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages whose normed outputs are
            returned; negative indices count from the end. Defaults to -1.
        out_type (str): ``'avg_featmap'`` returns (B, C) features pooled
            over space (classification; the official head pools after the
            norm), ``'featmap'`` returns (B, C, H, W) maps (dense tasks).
        drop_path_rate (float): Stochastic depth, rising linearly over all
            blocks. The paper uses 0.1 / 0.1 / 0.3 / 0.4 for T / S / B / L.
            Defaults to 0.
        frozen_stages (int): Freeze the stem and stages ``0..frozen_stages``
            (-1: freeze nothing). Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training
            (a bool). Defaults to False.
        with_cp (bool | Sequence[bool]): Gradient checkpointing of every
            block, or per stage (one bool per stage, e.g. ``(True, True,
            False, False)`` for the first two stages, whose blocks hold the
            most activation memory per block). Defaults to False.
        norm_cfg (dict, optional): Norm of the stem, whose norms see
            channels-first maps: one of :attr:`norm_types` (images ``BN``,
            ``BN2d``, ``SyncBN``, ``GN`` with ``num_groups``, ``IN``,
            ``IN2d``; video ``BN3d``, ``SyncBN``, ``GN``, ``IN3d``).
            Defaults to BN (BN3d for video), as the official model.
        init_cfg (dict | list[dict], optional): mmengine init config. A
            ``Pretrained`` entry (``checkpoint``, optional ``prefix``) is
            loaded by :func:`morphmlp_mm.checkpoint.load_pretrained`, which
            accepts official, mmpretrain, mmaction2 and mmseg checkpoints
            and converts image <-> video weights. As in mmengine, the other
            entries of a list apply too, and ``Pretrained`` last, so the
            checkpoint wins on the keys it holds.

    Example:
        >>> import torch
        >>> from morphmlp_mm import MorphMLP
        >>> model = MorphMLP('tiny', out_indices=(0, 1, 2, 3),
        ...                  out_type='featmap').eval()
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 64, 96))]
        [(1, 84, 16, 24), (1, 168, 8, 12), (1, 336, 4, 6), (1, 588, 2, 3)]
    """

    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], {
            'depths': [3, 4, 7, 3],
            'channels': [84, 168, 336, 588],
            'chunk_lengths': _OFFICIAL_CHUNKS,
            'mlp_ratio': 3.,
        }),
        **dict.fromkeys(['s', 'small'], {
            'depths': [3, 4, 9, 3],
            'channels': _SB_CHANNELS,
            'chunk_lengths': _OFFICIAL_CHUNKS,
            'mlp_ratio': 3.,
        }),
        **dict.fromkeys(['b', 'base'], {
            'depths': [4, 6, 15, 4],
            'channels': _SB_CHANNELS,
            'chunk_lengths': _OFFICIAL_CHUNKS,
            'mlp_ratio': 3.,
        }),
        **dict.fromkeys(['l', 'large'], {
            'depths': [4, 8, 18, 6],
            'channels': _SB_CHANNELS,
            'chunk_lengths': _OFFICIAL_CHUNKS,
            'mlp_ratio': 3.,
        }),
    }
    num_stages = 4
    #: Spatial input rank (2 for images, 3 for video: T, H, W).
    video = False
    out_types = ('avg_featmap', 'featmap')
    #: ``norm_cfg`` types of the stem and their classes. The stem's norms
    #: see channels-first (B, C, H, W) maps, so channels-last ``LN`` does
    #: not fit, nor do the 1-D / 3-D variants.
    norm_types = {
        'BN': nn.BatchNorm2d,
        'BN2d': nn.BatchNorm2d,
        'SyncBN': nn.SyncBatchNorm,
        'GN': nn.GroupNorm,
        'IN': nn.InstanceNorm2d,
        'IN2d': nn.InstanceNorm2d,
    }

    def __init__(self,
                 arch: ArchType = 'tiny',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'avg_featmap',
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, Sequence[bool]] = False,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.parse_arch(arch)
        if not isinstance(in_channels, int) or isinstance(
                in_channels, bool) or in_channels < 1:
            raise ValueError(
                f'in_channels must be a positive int, got {in_channels!r}')
        if out_type not in self.out_types:
            raise ValueError(f'out_type must be one of {self.out_types}, '
                             f'got {out_type!r}')
        if (not isinstance(drop_path_rate, numbers.Real)
                or isinstance(drop_path_rate, bool)
                or not 0. <= drop_path_rate < 1.):
            raise ValueError(
                f'drop_path_rate must be in [0, 1) and a number (int or '
                f'float), got {type(drop_path_rate).__name__} '
                f'{drop_path_rate!r}')
        if not (isinstance(frozen_stages, int)
                and not isinstance(frozen_stages, bool)
                and -1 <= frozen_stages < self.num_stages):
            raise ValueError(
                f'frozen_stages must be an int in [-1, {self.num_stages - 1}]'
                f', got {frozen_stages!r}')
        if not isinstance(norm_eval, bool):
            raise ValueError(
                f'norm_eval must be a bool (True or False), got '
                f'{type(norm_eval).__name__} {norm_eval!r}')
        self._pretrained_cfgs()  # a malformed init_cfg fails here, early
        self.in_channels = in_channels
        self.out_indices = self._parse_out_indices(out_indices)
        self.out_type = out_type
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        stage_cp = self._parse_with_cp(with_cp)

        depths = self.arch_settings['depths']
        channels = self.arch_settings['channels']
        self.channels = channels
        self._check_norm_cfg(norm_cfg, channels[0])
        dpr = torch.linspace(
            0, float(drop_path_rate), sum(depths), device='cpu').tolist()
        try:
            self.patch_embed1 = Stem(in_channels, channels[0], self.video,
                                     norm_cfg, **self._stem_kwargs())
        except TypeError as err:  # an argument the norm class does not take
            raise ValueError(
                f'norm_cfg={norm_cfg!r} cannot build the stem norm: '
                f'{err}') from err
        frames = self._stage_frames()
        start = 0
        for i in range(self.num_stages):
            if i > 0:
                self.add_module(
                    f'patch_embed{i + 1}',
                    Downsample(channels[i - 1], channels[i], self.video))
            blocks = nn.ModuleList([
                MorphBlock(
                    channels[i],
                    window=self.arch_settings['chunk_windows'][i],
                    mlp_ratio=self.arch_settings['mlp_ratio'][i],
                    num_branches=2 if i == self.num_stages - 1 else 3,
                    frames=frames,
                    drop_path=dpr[start + j],
                    with_cp=stage_cp[i]) for j in range(depths[i])
            ])
            start += depths[i]
            self.add_module(f'blocks{i + 1}', blocks)
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(channels[i]))
        self.reset_official()
        self._freeze_stages()

    # ------------------------------------------------------------------ arch
    @classmethod
    def parse_arch(cls, arch: ArchType) -> dict:
        """Validate ``arch`` and return the full settings dict.

        Returns a dict with ``depths``, ``channels``, ``chunk_lengths``,
        ``chunk_windows`` and ``mlp_ratio`` (one float per stage).
        """
        n = cls.num_stages
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(
                    f'arch={arch!r} is not a known MorphMLP arch; choose one '
                    f'of {sorted(set(cls.arch_zoo))} or pass a dict with '
                    "keys 'depths', 'channels', 'chunk_lengths' "
                    "(and optionally 'mlp_ratio')")
            arch = cls.arch_zoo[key]
        elif not isinstance(arch, dict):
            raise ValueError(f'arch must be a str or a dict, got '
                             f'{type(arch).__name__}: {arch!r}')
        arch = copy.deepcopy(dict(arch))
        required = {'depths', 'channels', 'chunk_lengths'}
        missing = required - set(arch)
        unknown = set(arch) - required - {'mlp_ratio'}
        if missing or unknown:
            raise ValueError(
                f'custom arch needs the keys {sorted(required)} (and '
                f"optionally 'mlp_ratio'); missing {sorted(missing)}, "
                f'unknown {sorted(unknown)} in arch={arch!r}')
        for key in ('depths', 'channels', 'chunk_lengths'):
            value = arch[key]
            if not isinstance(value, (list, tuple)) or len(value) != n:
                raise ValueError(f'arch[{key!r}] must be a list of {n} '
                                 f'entries, got {value!r}')
        for key in ('depths', 'channels'):
            if not all(isinstance(v, int) and v > 0 for v in arch[key]):
                raise ValueError(f'arch[{key!r}] must hold positive ints, '
                                 f'got {arch[key]!r}')
        ratio = arch.get('mlp_ratio', 3.)
        ratios = list(ratio) if isinstance(ratio, (list, tuple)) else \
            [ratio] * n
        if len(ratios) != n or not all(
                isinstance(r, (int, float)) and r > 0 for r in ratios):
            raise ValueError(f"arch['mlp_ratio'] must be a positive number "
                             f'or {n} of them, got {ratio!r}')
        windows = []
        for i, (chunk, ch) in enumerate(
                zip(arch['chunk_lengths'], arch['channels'])):
            if isinstance(chunk, int) and chunk > 0:
                window = default_chunk_window(chunk, REFERENCE_STAGE_SIZES[i])
            elif (isinstance(chunk, (list, tuple)) and len(chunk) == 2
                  and all(isinstance(v, int) and v > 0 for v in chunk)):
                window = tuple(chunk)
            else:
                raise ValueError(
                    f"arch['chunk_lengths'][{i}] must be a positive int or "
                    f'a (rows, cols) window, got {chunk!r}')
            length = window[0] * window[1]
            if ch % length != 0:
                raise ValueError(
                    f"arch['channels'][{i}]={ch} is not divisible by the "
                    f'chunk length {length} of stage {i}: MorphFC splits the '
                    f'channels into L={length} groups. Use channels that '
                    f'are multiples of {length} or another chunk length')
            windows.append(window)
        arch['chunk_lengths'] = [w[0] * w[1] for w in windows]
        arch['chunk_windows'] = windows
        arch['mlp_ratio'] = [float(r) for r in ratios]
        return arch

    def _parse_out_indices(self, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, (list, tuple)) or not out_indices:
            raise ValueError('out_indices must be an int or a non-empty '
                             f'sequence of ints, got {out_indices!r}')
        parsed = []
        for index in out_indices:
            if not isinstance(index, int) or not (-self.num_stages <= index <
                                                  self.num_stages):
                raise ValueError(
                    f'out_indices entries must be ints in '
                    f'[-{self.num_stages}, {self.num_stages - 1}], got '
                    f'{out_indices!r}')
            parsed.append(index % self.num_stages)
        return tuple(sorted(set(parsed)))

    def _parse_with_cp(self, with_cp) -> Tuple[bool, ...]:
        """``with_cp`` as one bool per stage."""
        if isinstance(with_cp, bool):
            return (with_cp, ) * self.num_stages
        if not (isinstance(with_cp, (list, tuple))
                and len(with_cp) == self.num_stages
                and all(isinstance(v, bool) for v in with_cp)):
            raise ValueError(
                f'with_cp must be a bool or a sequence of {self.num_stages} '
                f'bools (one per stage), got {with_cp!r}')
        return tuple(with_cp)

    def _check_norm_cfg(self, norm_cfg: Optional[dict],
                        channels: int) -> None:
        """Check ``norm_cfg`` against :attr:`norm_types`.

        Args:
            norm_cfg (dict, optional): The stem norm config (None: default).
            channels (int): Width C1 of the stem (its hidden width C1 // 2).

        Raises:
            ValueError: not a dict with a ``type`` the stem can use, or a
                ``GN`` whose ``num_groups`` does not divide both widths.
        """
        if norm_cfg is None:
            return
        name = type(self).__name__
        allowed = list(self.norm_types)
        if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
            raise ValueError(
                f'norm_cfg must be None or a dict with a "type" key, one of '
                f'{allowed}, got {norm_cfg!r}')
        layer = norm_cfg['type']
        if isinstance(layer, str):
            cls = self.norm_types.get(layer.split('.')[-1])
        elif isinstance(layer, type):
            cls = layer if issubclass(
                layer, tuple(self.norm_types.values())) else None
        else:
            cls = None
        if cls is None:
            raise ValueError(
                f'norm_cfg={norm_cfg!r}: type {layer!r} is not a norm the '
                f'{name} stem can use; allowed types are {allowed} (the '
                'stem normalises channels-first maps after each convolution;'
                f" the official model uses {'BN3d' if self.video else 'BN'})")
        if issubclass(cls, nn.GroupNorm):
            groups = norm_cfg.get('num_groups')
            hidden = channels // 2
            if not (isinstance(groups, int) and not isinstance(groups, bool)
                    and groups > 0 and hidden % groups == 0
                    and channels % groups == 0):
                raise ValueError(
                    f'norm_cfg={norm_cfg!r}: GN needs num_groups, a positive '
                    f'int dividing the stem widths {hidden} and {channels}, '
                    f'got num_groups={groups!r}')

    def _stem_kwargs(self) -> dict:
        """Extra arguments of :class:`Stem` (none for images)."""
        return {}

    def _stage_frames(self) -> Optional[int]:
        """Frames of the temporal branch; None builds no MorphFC_t."""
        return None

    # ------------------------------------------------------------------ init
    def reset_official(self) -> None:
        """The official initialisation.

        Linear: truncated normal (std 0.02), bias 0; LayerNorm: weight 1,
        bias 0; convolutions and BatchNorm keep PyTorch defaults; then every
        MorphFC_t gets ``mlp_t`` = 0 and ``proj.weight`` = 1 (an identity
        skip at the start of training).
        """
        from mmengine.model.weight_init import constant_init, \
            trunc_normal_init
        from .morph_fc import MorphFCTemporal
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1., bias=0.)
        for m in self.modules():
            if isinstance(m, MorphFCTemporal):
                m.reset_official()

    @staticmethod
    def _is_pretrained(cfg: dict) -> bool:
        from mmengine.model.weight_init import PretrainedInit
        return cfg['type'] == 'Pretrained' or cfg['type'] is PretrainedInit

    def _init_cfg_list(self) -> List[dict]:
        """``init_cfg`` as a list of dicts, each with a ``type``.

        Raises:
            ValueError: ``init_cfg`` is not None, a dict or a list of dicts
                with a ``type`` key.
        """
        init_cfg = self.init_cfg
        cfgs = init_cfg if isinstance(init_cfg, list) else \
            [init_cfg] if init_cfg else []
        for cfg in cfgs:
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(
                    'init_cfg must be None, a dict or a list of dicts, each '
                    "with a 'type' key (e.g. dict(type='Pretrained', "
                    f"checkpoint='in1k.pth')), got init_cfg={init_cfg!r}")
        return list(cfgs)

    def _pretrained_cfgs(self) -> List[dict]:
        """The ``Pretrained`` entries of ``init_cfg``, checked.

        Raises:
            ValueError: an entry without a usable ``checkpoint`` or with a
                ``prefix`` / ``inflate`` of the wrong kind.
        """
        from ..checkpoint import INFLATE_MODES, TEMPORAL_WEIGHTS
        found = []
        for cfg in self._init_cfg_list():
            if not self._is_pretrained(cfg):
                continue
            checkpoint = cfg.get('checkpoint')
            if not (isinstance(checkpoint, (str, os.PathLike))
                    and str(checkpoint)):
                raise ValueError(
                    "init_cfg of type 'Pretrained' needs checkpoint=<path or "
                    f'URL of a checkpoint file>, got {cfg!r}; without '
                    'weights to load, drop the Pretrained entry')
            prefix = cfg.get('prefix')
            if prefix is not None and not isinstance(prefix, str):
                raise ValueError(
                    "init_cfg of type 'Pretrained': prefix must be a str "
                    f"(e.g. 'backbone.') or None, got {prefix!r}")
            inflate = cfg.get('inflate')
            if inflate is not None and inflate not in INFLATE_MODES:
                raise ValueError(
                    "init_cfg of type 'Pretrained': inflate must be one of "
                    f'{list(INFLATE_MODES)} or None, got {inflate!r}')
            temporal = cfg.get('temporal_weights')
            if temporal is not None and temporal not in TEMPORAL_WEIGHTS:
                raise ValueError(
                    "init_cfg of type 'Pretrained': temporal_weights must be "
                    f'one of {list(TEMPORAL_WEIGHTS)} or None, got '
                    f"{temporal!r} ('init' starts the temporal branch from "
                    'its initialisation instead of the checkpoint)')
            found.append(cfg)
        return found

    def init_weights(self) -> None:
        """Apply ``init_cfg``; ``Pretrained`` goes through our loader.

        mmengine's semantics: every entry of ``init_cfg`` applies, the
        ``Pretrained`` ones last (after the children's ``init_weights``), so
        the checkpoint wins on the keys it holds. Keys absent from a
        pretrained checkpoint (for example the temporal branch when starting
        video training from image weights) keep the official initialisation
        or what the other entries set.
        """
        pretrained = self._pretrained_cfgs()
        if not pretrained or self._is_init:
            super().init_weights()  # a repeated call only warns
            return
        init_cfg = self.init_cfg
        others = [c for c in self._init_cfg_list()
                  if not self._is_pretrained(c)]
        self.init_cfg = others or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        from ..checkpoint import load_pretrained
        try:
            for cfg in pretrained:
                load_pretrained(
                    self,
                    cfg['checkpoint'],
                    prefix=cfg.get('prefix'),
                    map_location=cfg.get('map_location', 'cpu'),
                    inflate=cfg.get('inflate') or 'center',
                    temporal_weights=cfg.get('temporal_weights') or 'load')
        except BaseException:
            self._is_init = False  # nothing loaded: a retry may load
            raise

    # --------------------------------------------------------------- forward
    @staticmethod
    def _shape(x: torch.Tensor) -> Tuple[int, ...]:
        """``x.shape`` as plain ints (traced sizes are 0-d tensors)."""
        return tuple(int(d) for d in x.shape)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = self._shape(x) if isinstance(x, torch.Tensor) else x
            raise ValueError(
                f'{type(self).__name__} expects an input of shape '
                f'(B, {self.in_channels}, H, W), got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} was built with in_channels='
                f'{self.in_channels}, got an input with {int(x.shape[1])} '
                f'channels (shape {self._shape(x)})')
        self._check_not_empty(x, 'B, C, H, W')

    @classmethod
    def _check_not_empty(cls, x: torch.Tensor, dims: str) -> None:
        if x.numel() == 0:
            raise ValueError(
                f'input of shape {cls._shape(x)} ({dims}) is empty; every '
                'dimension must be >= 1')

    def _format_output(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, C) normed tokens -> the requested output."""
        if self.out_type == 'avg_featmap':
            return x.mean(dim=(1, 2, 3))
        return x.squeeze(1).permute(0, 3, 1, 2).contiguous()

    def forward_stages(self, x: torch.Tensor):
        """Yield (stage index, channels-last tokens) after each stage."""
        x = self.patch_embed1(x)
        for i in range(self.num_stages):
            if i > 0:
                x = getattr(self, f'patch_embed{i + 1}')(x)
            for block in getattr(self, f'blocks{i + 1}'):
                x = block(x)
            yield i, x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self._check_input(x)
        outs = []
        for i, tokens in self.forward_stages(x):
            if i in self.out_indices:
                normed = getattr(self, f'norm{i}')(tokens)
                outs.append(self._format_output(normed))
            if i == self.out_indices[-1]:
                break
        return tuple(outs)

    # ------------------------------------------------------------- training
    def _stage_modules(self, i: int) -> List[nn.Module]:
        mods = [getattr(self, f'patch_embed{i + 1}'),
                getattr(self, f'blocks{i + 1}')]
        if i in self.out_indices:
            mods.append(getattr(self, f'norm{i}'))
        return mods

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            for module in self._stage_modules(i):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'MorphMLP':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[
            int, int]:
        """Layer id of a parameter, for layer-wise learning-rate decay.

        The stem is layer 0, block k (counted over all stages) is layer
        k + 1, a downsampling layer shares the id of the first block after
        it, output norms get the last id.

        Returns:
            tuple[int, int]: (layer id, number of layers).
        """
        depths = self.arch_settings['depths']
        num_layers = sum(depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        head, _, rest = name.partition('.')
        if head == 'patch_embed1':
            return 0, num_layers
        if head.startswith('patch_embed'):
            stage = int(head[len('patch_embed'):]) - 1
            return sum(depths[:stage]) + 1, num_layers
        if head.startswith('blocks'):
            stage = int(head[len('blocks'):]) - 1
            block = int(rest.split('.')[0])
            return sum(depths[:stage]) + block + 1, num_layers
        return num_layers - 1, num_layers
