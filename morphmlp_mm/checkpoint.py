"""MorphMLP checkpoints: official key mapping and image <-> video weights.

Used by :meth:`morphmlp_mm.models.MorphMLP.init_weights` (``init_cfg=dict(
type='Pretrained', checkpoint=..., prefix=...)``) and by the converter
``tools/convert/morphmlp_official_to_mm.py``.

Names
-----
Our backbones use the official MorphMLP parameter names (MTLab/MorphMLP,
``slowfast/models/morphmlp.py``) with two exceptions:

* the official final LayerNorm ``norm.*`` is ``norm3.*`` here (the output norm
  of the last stage, ``norm{i}`` for every ``i`` in ``out_indices``);
* the official classifier ``head.*`` belongs to the host's head:
  ``cls_head.fc_cls.*`` for mmaction2 ``Recognizer3D`` + ``I3DHead`` and
  ``head.fc.*`` for mmpretrain ``ImageClassifier`` + ``LinearClsHead``; in
  those checkpoints every backbone key carries the prefix ``backbone.``.

Image <-> video
---------------
Only three tensors differ in shape between the image model and the video
model; everything else is shared, and the video model adds the temporal
branch (``t_norm1`` and ``t_fc`` in every block):

* ``patch_embed1.proj1.weight``: (O, I, 3, 3) image, (O, I, 3, 3, 3) video.
  The video stem convolves with temporal stride 2 and zero padding 1, so
  output frame ``t`` sees input frames ``2t - 1, 2t, 2t + 1`` through taps
  0, 1, 2. On a static clip (every frame the same image) the interior output
  frames see ``sum_k w[:, :, k]`` and the first output frame sees only
  ``w[:, :, 1] + w[:, :, 2]`` (tap 0 reads the zero padding).

  *Folding* (video -> image) sums the taps: the image model then equals the
  video stem on every output frame of a static clip except the first one
  (exactly equal there too when ``w[:, :, 0] == 0``).

  *Inflating* (image -> video) has two modes. ``'center'`` (the default)
  puts the image kernel on the centre tap and zeros on the others: tap 1
  always reads a real frame, so a static clip reproduces the image features
  on **every** frame, and since the temporal branch starts as an exact
  identity (official init: ``mlp_t`` = 0, so ``t_fc`` outputs
  ``proj(0) = proj.bias = 0``) the pooled clip features equal the image
  features. ``'average'`` (I3D, Carreira & Zisserman 2017; also the usual
  UniFormer practice) repeats ``w / 3`` on all taps: interior frames match,
  the first output frame gets only 2/3 of the kernel, and because MorphFC's
  reweighting pools over the whole clip that edge frame shifts every frame a
  little. Both modes fold back to the image kernel exactly.
* ``patch_embed1.proj2.weight`` and ``patch_embed{2,3,4}.proj.weight``:
  (O, I, 3, 3) image, (O, I, 1, 3, 3) video -- a squeeze / unsqueeze.

Frames
------
The 16- and 32-frame official models differ only in the shape of
``t_fc.mlp_t``: Linear(T' * C / G_t) with T' = frames after the stem and G_t
the largest divisor of C not above T' (see
:func:`morphmlp_mm.models.morph_fc.temporal_groups`). The shapes alone cannot
tell every frame count apart (any T' dividing all stage widths gives C x C,
e.g. 8 and 14 for MorphMLP-S), so :func:`detect_arch` returns every
candidate and :func:`choose_num_frames` prefers a frame count recorded in the
checkpoint, then the official 16 / 32.

A recorded count is read from our converter's ``meta['num_frames']``, the
official PySlowFast ``cfg`` (``DATA.NUM_FRAMES``) or, for mmengine Runner
checkpoints, ``model.backbone.num_frames`` of the config text in
``meta['cfg']`` (parsed with :mod:`ast`, never executed). Because equal shapes
do not prove equal frame counts, :func:`load_pretrained` refuses a recorded
count whose T' differs from the model's (:class:`CheckpointLoadError`),
unless ``temporal_weights='init'`` starts the temporal branch from its init.
"""
import ast
import contextlib
import logging
import numbers
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, \
    Tuple, Union

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from .models.morph_fc import temporal_groups
from .models.morphmlp3d import stem_frames_of
from .utils import safe_torch_load
from .utils.safe_load import is_safe_loader, safe_load_remote, safe_load_url

#: Names of the final norm in the official code and in our backbones.
OFFICIAL_FINAL_NORM = 'norm.'
FINAL_NORM = 'norm3.'
#: Classifier prefixes: official, mmaction2 I3DHead, mmpretrain LinearClsHead.
OFFICIAL_HEAD = 'head.'
MMACTION_HEAD = 'cls_head.fc_cls.'
MMPRETRAIN_HEAD = 'head.fc.'
BACKBONE_PREFIX = 'backbone.'
#: Chunk lengths of every official variant ([v1] Table 1).
OFFICIAL_CHUNK_LENGTHS = (14, 28, 28, 49)
#: Keys every MorphMLP backbone state dict has (our names).
SIGNATURE_KEYS = ('patch_embed1.proj1.weight', 'patch_embed1.proj2.weight',
                  'blocks1.0.fc.mlp_h.weight', 'blocks4.0.fc.mlp_c.weight')
#: The stem's first convolution, whose input width is ``in_channels``.
STEM_KERNEL = 'patch_embed1.proj1.weight'
#: Inflation modes of the stem's first convolution.
INFLATE_MODES = ('center', 'average')
#: Frames after the stem the official models were trained with (16, 32).
OFFICIAL_STEM_FRAMES = (8, 16)

_BLOCK_RE = re.compile(r'^blocks(\d+)\.(\d+)\.')
_TEMPORAL_RE = re.compile(r'^blocks\d+\.\d+\.(t_fc|t_norm1)\.')
_WRAPPER_KEYS = ('state_dict', 'model_state', 'model', 'state_dict_ema')
#: What :func:`load_pretrained` does with the checkpoint's temporal branch:
#: ``'load'`` it (refusing a recorded frame count that does not match the
#: model) or leave the model's ``'init'``.
TEMPORAL_WEIGHTS = ('load', 'init')
#: mmengine schemes that download through ``load_from_http``.
_MMENGINE_VIA_HTTP = ('torchvision://', 'modelzoo://', 'mmcls://')

StateDict = Dict[str, torch.Tensor]


class CheckpointLoadError(ValueError):
    """A checkpoint does not fit the model it is loaded into.

    Raised by :func:`load_pretrained` (and the helpers it calls) for
    problems the user fixes in the config: a prefix that matches no key, a
    file that is not a MorphMLP checkpoint, a shape mismatch (arch,
    ``num_frames``, ``in_channels``...) or a recorded frame count that
    differs from the model's. The message names the file or key, the values
    and the fix. A ``ValueError``, so existing handlers keep working.
    """


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = 'cpu') -> Any:
    """Read a checkpoint without executing pickled code.

    Every file ends in :func:`morphmlp_mm.utils.safe_torch_load`
    (TorchScript archives refused, ``weights_only=True`` first, then an
    allow-listed unpickler for mmengine metadata):

    * local paths directly;
    * ``http://`` / ``https://``: downloaded into torch.hub's cache
      (``<torch.hub.get_dir()>/checkpoints``; a cached file is not
      downloaded again), then read;
    * ``torchvision://``, ``modelzoo://``, ``mmcls://``, ``open-mmlab://``:
      through mmengine's ``CheckpointLoader``, whose loaders the package
      replaces on import;
    * any other ``scheme://`` (``s3://``, ``petrel://`` ...): the bytes are
      read with ``mmengine.fileio.get`` and loaded from memory; a prefix no
      mmengine file backend serves raises ``ValueError``.

    Args:
        filename (str): Path or URL.
        map_location: Device mapping for :func:`torch.load`. Defaults to
            ``'cpu'``.

    Returns:
        The unpickled object.
    """
    filename = str(filename)
    if '://' not in filename or osp.isfile(filename):
        return safe_torch_load(filename, map_location=map_location)
    if filename.startswith(('http://', 'https://')):
        return safe_load_url(filename, map_location=map_location)
    from mmengine.runner import checkpoint as mm_checkpoint
    loader = mm_checkpoint.CheckpointLoader._get_checkpoint_loader(filename)
    via_http = (filename.startswith(_MMENGINE_VIA_HTTP)
                and getattr(loader, '__module__', '') == mm_checkpoint.__name__
                and is_safe_loader(mm_checkpoint.load_from_http))
    own = is_safe_loader(loader) and loader is not \
        mm_checkpoint.CheckpointLoader._schemes.get('')
    if via_http or own:
        return loader(filename, map_location)
    return safe_load_remote(filename, map_location=map_location)


def extract_state_dict(checkpoint: Any) -> StateDict:
    """Return the tensor dict inside a checkpoint object.

    Accepts a flat ``{name: tensor}`` dict (official ImageNet files) or a dict
    holding it under ``state_dict`` (mmengine), ``model_state`` (official
    PySlowFast fine-tuned files) or ``model`` (DeiT / timm). A ``module.``
    prefix (DataParallel) is removed.

    Args:
        checkpoint: What :func:`load_checkpoint_file` returned.

    Returns:
        dict: An ordered ``{name: tensor}`` dict.

    Raises:
        CheckpointLoadError: ``checkpoint`` holds no tensors in a known
            place.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointLoadError(
            f'checkpoint must be a dict of tensors or a dict with one of the '
            f'keys {list(_WRAPPER_KEYS)}, got {type(checkpoint).__name__}')
    state = checkpoint
    for key in _WRAPPER_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            state = checkpoint[key]
            break
    tensors = OrderedDict(
        (k, v) for k, v in state.items() if isinstance(v, torch.Tensor))
    if not tensors:
        raise CheckpointLoadError(
            'checkpoint holds no tensors: expected a flat state_dict or a '
            f'dict with one of the keys {list(_WRAPPER_KEYS)}; its top-level '
            f'keys are {sorted(map(str, checkpoint))[:10]}')
    if all(k.startswith('module.') for k in tensors):
        tensors = OrderedDict((k[len('module.'):], v)
                              for k, v in tensors.items())
    return tensors


def select_prefix(state: Mapping[str, torch.Tensor],
                  prefix: str) -> StateDict:
    """Keep the keys under ``prefix`` and strip it (``'backbone'`` works too).

    Raises:
        CheckpointLoadError: no key starts with ``prefix``.
    """
    if not prefix.endswith('.'):
        prefix += '.'
    picked = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                         if k.startswith(prefix))
    if not picked:
        tops = sorted({k.split('.')[0] for k in state})
        raise CheckpointLoadError(
            f'prefix={prefix!r} matches no key of the checkpoint; its '
            f'top-level names are {tops[:20]}')
    return picked


def _as_int(value: Any) -> Optional[int]:
    """``value`` as an int if it is an integer (not a bool), else None."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None


def _dict_entry(node: Optional[ast.AST], key: str) -> Optional[ast.AST]:
    """The value node of ``key`` in a ``dict(...)`` call or ``{...}``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict':
        for keyword in node.keywords:
            if keyword.arg == key:
                return keyword.value
    elif isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values):
            if isinstance(k, ast.Constant) and k.value == key:
                return v
    return None


def frames_from_config_text(text: str) -> Optional[int]:
    """``model.backbone.num_frames`` of an mmengine config given as text.

    mmengine's Runner saves its config as Python text in
    ``meta['cfg']``. The text is parsed with :func:`ast.parse` and the
    value read with :func:`ast.literal_eval`, so nothing in it runs. A
    ``MorphMLP3D`` backbone without ``num_frames`` has the class default.

    Args:
        text (str): Config text (``Config.pretty_text``).

    Returns:
        int | None: The frame count, or None if the text has none (not a
        video MorphMLP, not Python, or not a literal).
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, TypeError, RecursionError,
            MemoryError):
        return None
    model = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'model'
                for t in node.targets):
            model = node.value
    backbone = _dict_entry(model, 'backbone')
    node = _dict_entry(backbone, 'num_frames')
    try:
        if node is not None:
            return _as_int(ast.literal_eval(node))
        kind = _dict_entry(backbone, 'type')
        kind = ast.literal_eval(kind) if kind is not None else None
    except (ValueError, TypeError, SyntaxError, RecursionError,
            MemoryError):
        return None
    if isinstance(kind, str) and kind.split('.')[-1] == 'MorphMLP3D':
        import inspect

        from .models.morphmlp3d import MorphMLP3D
        return inspect.signature(MorphMLP3D).parameters['num_frames'].default
    return None


def _read_records(checkpoint: Any) -> Tuple[dict, dict]:
    """What :func:`read_official_cfg` returns, plus where each came from."""
    found, where = {}, {}
    if not isinstance(checkpoint, Mapping):
        return found, where
    meta = checkpoint.get('meta')
    if isinstance(meta, Mapping):
        for key in ('num_frames', 'num_classes', 'depths'):
            if meta.get(key) is not None:
                found[key] = meta[key]
                where[key] = f"meta['{key}']"
        if 'num_frames' not in found and isinstance(meta.get('cfg'), str):
            frames = frames_from_config_text(meta['cfg'])
            if frames is not None:
                found['num_frames'] = frames
                where['num_frames'] = ("model.backbone.num_frames of the "
                                       "config in meta['cfg']")
    cfg = checkpoint.get('cfg')
    if isinstance(cfg, str):
        try:
            import yaml
            cfg = yaml.safe_load(cfg)
        except Exception:  # not YAML: ignore, shapes still decide
            cfg = None
    if isinstance(cfg, Mapping):
        data = cfg.get('DATA') or {}
        model = cfg.get('MODEL') or {}
        morph = cfg.get('MORPH') or {}
        if isinstance(data.get('NUM_FRAMES'), int):
            found['num_frames'] = data['NUM_FRAMES']
            where['num_frames'] = "DATA.NUM_FRAMES of the official 'cfg'"
        if isinstance(model.get('NUM_CLASSES'), int):
            found['num_classes'] = model['NUM_CLASSES']
            where['num_classes'] = "MODEL.NUM_CLASSES of the official 'cfg'"
        if isinstance(morph.get('LAYERS'), (list, tuple)):
            found['depths'] = list(morph['LAYERS'])
            where['depths'] = "MORPH.LAYERS of the official 'cfg'"
    return found, where


def read_official_cfg(checkpoint: Any) -> dict:
    """Frames, classes and depths recorded in a checkpoint.

    Sources: converted checkpoints of this package store
    ``meta['num_frames']`` (and ``num_classes``, ``depths``); mmengine Runner
    checkpoints store their config as text in ``meta['cfg']``, from which
    ``model.backbone.num_frames`` is read (:func:`frames_from_config_text`);
    PySlowFast stores its config as a YAML string under ``cfg``, which wins.

    Returns:
        dict: Any of ``num_frames``, ``num_classes`` and ``depths`` found.
    """
    return _read_records(checkpoint)[0]


def recorded_num_frames(checkpoint: Any) -> Tuple[Optional[int], str]:
    """The frame count a checkpoint records, and where it is recorded.

    Returns:
        tuple: (``num_frames`` or None, a description of its source such as
        ``"meta['num_frames']"``; empty when there is none).
    """
    found, where = _read_records(checkpoint)
    frames = _as_int(found.get('num_frames'))
    if frames is None or frames < 1:
        return None, ''
    return frames, where['num_frames']


# --------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------
def _shape(value: Any) -> Tuple[int, ...]:
    """Shape of a tensor or of a plain shape list (key lists in tests)."""
    if hasattr(value, 'shape'):
        return tuple(value.shape)
    return tuple(int(v) for v in value)


def split_backbone_head(state: Mapping[str, Any]
                        ) -> Tuple['OrderedDict[str, Any]', Dict[str, Any],
                                   str]:
    """Bring any supported layout to our backbone names plus a head.

    Layouts: official (``norm.``, ``head.``), mmaction2 Recognizer3D
    (``backbone.``, ``cls_head.fc_cls.``), mmpretrain ImageClassifier
    (``backbone.``, ``head.fc.``) and a bare backbone (our names).

    Args:
        state (dict): ``{name: tensor}`` (or ``{name: shape}``).

    Returns:
        tuple: (backbone dict in our names, head dict with ``weight`` /
        ``bias`` or empty, layout name).
    """
    head = {}
    if any(k.startswith(BACKBONE_PREFIX) for k in state):
        backbone = OrderedDict((k[len(BACKBONE_PREFIX):], v)
                               for k, v in state.items()
                               if k.startswith(BACKBONE_PREFIX))
        for prefix, layout in ((MMACTION_HEAD, 'mmaction'),
                               (MMPRETRAIN_HEAD, 'mmpretrain')):
            found = {k[len(prefix):]: v for k, v in state.items()
                     if k.startswith(prefix)}
            if found:
                return backbone, found, layout
        return backbone, head, 'mm'
    backbone = OrderedDict()
    layout = 'backbone'
    for key, value in state.items():
        if key.startswith(OFFICIAL_HEAD):
            head[key[len(OFFICIAL_HEAD):]] = value
            layout = 'official'
        elif key.startswith(OFFICIAL_FINAL_NORM):
            backbone[FINAL_NORM + key[len(OFFICIAL_FINAL_NORM):]] = value
            layout = 'official'
        else:
            backbone[key] = value
    return backbone, head, layout


def check_morphmlp(state: Mapping[str, Any], source: str = 'checkpoint'
                   ) -> None:
    """Raise a clear error if ``state`` is not a MorphMLP backbone.

    Args:
        state (dict): Backbone dict in our names.
        source (str): What to call it in the message (a file name).

    Raises:
        CheckpointLoadError: a signature key is missing.
    """
    missing = [k for k in SIGNATURE_KEYS if k not in state]
    if missing:
        sample = list(state)[:8]
        raise CheckpointLoadError(
            f'{source} is not a MorphMLP checkpoint: it lacks {missing} '
            f'(a MorphMLP state dict has keys such as {list(SIGNATURE_KEYS)}'
            f'); its first keys are {sample}. Pass the official MorphMLP '
            'file (flat state_dict or a dict with "model_state"), or an '
            'mmengine checkpoint whose backbone is MorphMLP.')


@dataclass
class ArchInfo:
    """What a MorphMLP state dict says about the model that produced it.

    Attributes:
        depths (list[int]): Blocks per stage (counted, not trusted from a
            file name: some official "S" files hold B depths).
        channels (list[int]): Width of each stage.
        mlp_ratio (list[float]): Hidden ratio of each stage's MLP.
        video (bool): The stem holds 3-D kernels.
        temporal (bool): The blocks hold a MorphFC_t branch.
        temporal_dims (list[int]): ``t_fc.mlp_t`` width per stage (empty if
            not temporal).
        stem_frames (list[int]): Every T' (frames after the stem) that fits
            all ``temporal_dims``; empty if not temporal.
        num_classes (int, optional): Classes of the head, if any.
    """
    depths: List[int]
    channels: List[int]
    mlp_ratio: List[float]
    video: bool
    temporal: bool
    temporal_dims: List[int] = field(default_factory=list)
    stem_frames: List[int] = field(default_factory=list)
    num_classes: Optional[int] = None

    @property
    def arch_name(self) -> Optional[str]:
        """``'tiny'``/``'small'``/``'base'``/``'large'`` or None (custom)."""
        from .models.morphmlp import MorphMLP
        for name in ('tiny', 'small', 'base', 'large'):
            zoo = MorphMLP.arch_zoo[name]
            if (list(zoo['depths']) == self.depths
                    and list(zoo['channels']) == self.channels
                    and all(r == zoo['mlp_ratio'] for r in self.mlp_ratio)):
                return name
        return None

    def arch(self, chunk_lengths: Sequence[int] = OFFICIAL_CHUNK_LENGTHS
             ) -> Union[str, dict]:
        """The ``arch`` argument that rebuilds this model.

        Chunk lengths are not stored in weights; the official ones are used
        unless given.
        """
        name = self.arch_name
        if name is not None and tuple(chunk_lengths) == \
                OFFICIAL_CHUNK_LENGTHS:
            return name
        ratio = self.mlp_ratio[0] if len(set(self.mlp_ratio)) == 1 else \
            list(self.mlp_ratio)
        return dict(depths=list(self.depths), channels=list(self.channels),
                    chunk_lengths=list(chunk_lengths), mlp_ratio=ratio)


def detect_arch(state: Mapping[str, Any],
                head: Optional[Mapping[str, Any]] = None) -> ArchInfo:
    """Read depths, widths, stem kind and frame candidates from the keys.

    Args:
        state (dict): Backbone dict in our names (tensors or shapes).
        head (dict, optional): ``weight``/``bias`` of the classifier.

    Returns:
        ArchInfo: The detected architecture.

    Raises:
        ValueError: the dict is not a 4-stage MorphMLP.
    """
    check_morphmlp(state)
    counts: Dict[int, int] = {}
    for key in state:
        match = _BLOCK_RE.match(key)
        if match:
            stage, index = int(match.group(1)), int(match.group(2))
            counts[stage] = max(counts.get(stage, 0), index + 1)
    if sorted(counts) != [1, 2, 3, 4]:
        raise ValueError(
            f'a MorphMLP checkpoint has blocks1..blocks4, this one has '
            f'stages {sorted(counts)}')
    depths = [counts[s] for s in (1, 2, 3, 4)]
    channels, ratios, tdims = [], [], []
    for s in (1, 2, 3, 4):
        for key in (f'blocks{s}.0.norm1.weight',
                    f'blocks{s}.0.mlp.fc1.weight'):
            if key not in state:
                raise ValueError(f'a MorphMLP checkpoint has {key!r}, this '
                                 'one does not')
        c = _shape(state[f'blocks{s}.0.norm1.weight'])[0]
        channels.append(c)
        ratios.append(_shape(state[f'blocks{s}.0.mlp.fc1.weight'])[0] / c)
        tkey = f'blocks{s}.0.t_fc.mlp_t.weight'
        if tkey in state:
            tdims.append(_shape(state[tkey])[0])
    temporal = len(tdims) == 4
    video = len(_shape(state['patch_embed1.proj1.weight'])) == 5
    frames = []
    if temporal:
        frames = [t for t in range(1, 513) if all(
            t * (c // temporal_groups(c, t)) == d
            for c, d in zip(channels, tdims))]
    num_classes = None
    if head and 'weight' in head:
        num_classes = _shape(head['weight'])[0]
    return ArchInfo(depths, channels, ratios, video, temporal, tdims,
                    frames, num_classes)


def fitting_num_frames(info: ArchInfo) -> List[int]:
    """Every input frame count whose temporal branch has ``info``'s shapes.

    The stem makes T' = ceil(num_frames / 2), so each fitting T' gives two
    counts, ``2 T' - 1`` and ``2 T'``. Empty if ``info`` has no temporal
    branch.
    """
    return sorted({2 * t for t in info.stem_frames} |
                  {2 * t - 1 for t in info.stem_frames})


def choose_num_frames(info: ArchInfo,
                      requested: Optional[int] = None,
                      recorded: Optional[int] = None) -> Optional[int]:
    """Pick the input frame count of a video checkpoint.

    Order: ``requested`` (must fit the shapes), then ``recorded`` in the
    checkpoint, then the official 16 or 32 if they fit, then the only
    candidate. The result is ``2 * T'``.

    Args:
        info (ArchInfo): From :func:`detect_arch`.
        requested (int, optional): Frames asked for by the user.
        recorded (int, optional): Frames stored in the checkpoint.

    Returns:
        int | None: Input frames, or ``requested`` (or None) when the
        checkpoint has no temporal branch.

    Raises:
        ValueError: ``requested`` does not fit, or the choice is ambiguous.
    """
    if not info.temporal:
        return requested
    fits = set(fitting_num_frames(info))
    if requested is not None:
        if requested not in fits:
            raise ValueError(
                f'num_frames={requested} does not fit the checkpoint: its '
                f't_fc.mlp_t widths {info.temporal_dims} (stage widths '
                f'{info.channels}) fit T\' in {info.stem_frames}, i.e. '
                f'num_frames in {sorted(fits)} (the stem makes T\' = '
                'ceil(num_frames / 2))')
        return requested
    if recorded is not None and recorded in fits:
        return int(recorded)
    for t in OFFICIAL_STEM_FRAMES:
        if t in info.stem_frames:
            return 2 * t
    if len(info.stem_frames) == 1:
        return 2 * info.stem_frames[0]
    raise ValueError(
        f'cannot tell the frame count from the t_fc.mlp_t widths '
        f'{info.temporal_dims}: num_frames in {sorted(fits)} all fit; pass '
        'the one the checkpoint was trained with (num_frames=; the '
        'converter: --num-frames)')


# --------------------------------------------------------------------------
# image <-> video tensors
# --------------------------------------------------------------------------
def fold_kernel(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, kt, kh, kw) -> (O, I, kh, kw) by summing the temporal taps.

    Exact for a static clip on every output frame that sees all taps (see
    the module docstring); a squeeze when ``kt == 1``.
    """
    if weight.dim() != 5:
        raise ValueError(f'fold_kernel expects a 5-D kernel, got shape '
                         f'{tuple(weight.shape)}')
    return weight.sum(dim=2)


def inflate_kernel(weight: torch.Tensor,
                   time: int,
                   mode: str = 'center') -> torch.Tensor:
    """(O, I, kh, kw) -> (O, I, time, kh, kw).

    Args:
        weight (Tensor): 2-D kernel.
        time (int): Temporal taps of the target kernel.
        mode (str): ``'center'``: the kernel on the centre tap, zeros
            elsewhere; ``'average'``: ``weight / time`` on every tap. Both
            fold back to ``weight``; for ``time == 1`` both unsqueeze.

    Returns:
        Tensor: The 3-D kernel.
    """
    if mode not in INFLATE_MODES:
        raise ValueError(
            f'inflate={mode!r} is not supported; choose one of '
            f'{list(INFLATE_MODES)}')
    if weight.dim() != 4:
        raise ValueError(f'inflate_kernel expects a 4-D kernel, got shape '
                         f'{tuple(weight.shape)}')
    if time == 1:
        return weight.unsqueeze(2).clone()
    if mode == 'average':
        return weight.unsqueeze(2).repeat(1, 1, time, 1, 1) / time
    out = weight.new_zeros(weight.shape[:2] + (time, ) + weight.shape[2:])
    out[:, :, time // 2] = weight
    return out


class _MetaFactories(TorchFunctionMode):
    """Sends tensor factories without an explicit device to ``meta``."""

    _FACTORIES = frozenset(
        (torch.empty, torch.zeros, torch.ones, torch.full, torch.tensor))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self._FACTORIES and kwargs.get('device') is None:
            kwargs['device'] = 'meta'
        return func(*args, **kwargs)


@contextlib.contextmanager
def init_on_meta() -> Iterator[None]:
    """Build modules with parameters on the ``meta`` device.

    Parameters and buffers get shapes but no storage, and the (slow)
    random initialisation of large models becomes a no-op. Unlike
    ``with torch.device('meta')`` it leaves other tensors (e.g. the
    drop-path schedule, which is read with ``.tolist()``) on the CPU. Fill
    such a model with ``load_state_dict(state, strict=True, assign=True)``,
    or use it only for :meth:`state_dict` shapes.
    """
    with _MetaFactories():
        yield


def is_temporal_key(key: str) -> bool:
    """True for the keys of the temporal branch (``t_norm1``, ``t_fc``)."""
    return bool(_TEMPORAL_RE.match(key))


# --------------------------------------------------------------------------
# loading into a backbone
# --------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        loaded (list[str]): Model keys that received a checkpoint tensor.
        inflated (list[str]): Of those, 2-D kernels inflated to 3-D.
        folded (list[str]): Of those, 3-D kernels folded to 2-D.
        missing (list[str]): Model keys the checkpoint lacks (they keep
            their initialisation).
        unexpected (list[str]): Checkpoint keys the model has no place for.
        skipped (list[str]): Checkpoint keys left out on request
            (``temporal_weights='init'``: the temporal branch).
    """
    loaded: List[str] = field(default_factory=list)
    inflated: List[str] = field(default_factory=list)
    folded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def _model_summary(model: nn.Module) -> str:
    settings = getattr(model, 'arch_settings', None)
    text = type(model).__name__
    if settings:
        text += (f"(depths={list(settings['depths'])}, "
                 f"channels={list(settings['channels'])}")
        if getattr(model, 'video', False):
            text += f", num_frames={getattr(model, 'num_frames', '?')}"
        text += ')'
    return text


def _ckpt_summary(info: Optional[ArchInfo]) -> str:
    if info is None:
        return 'the checkpoint'
    text = f'the checkpoint (depths={info.depths}, channels={info.channels}'
    if info.arch_name:
        text += f", MorphMLP-{info.arch_name[0].upper()}"
    if info.temporal:
        text += f', num_frames in {fitting_num_frames(info)}'
    return text + ')'


def _arch_differences(model: nn.Module,
                      info: Optional[ArchInfo]) -> Optional[List[str]]:
    """Where the model's arch and the checkpoint's differ.

    Both are read from the weights (:func:`detect_arch`), so they compare
    on the same terms.

    Returns:
        list[str] | None: One ``'name: model X, checkpoint Y'`` per differing
        field (depths, channels, MLP ratios); empty if they agree, None if
        either cannot be read.
    """
    if info is None:
        return None
    try:
        mine = detect_arch(model.state_dict())
    except (ValueError, KeyError):
        return None
    diffs = []
    for name in ('depths', 'channels'):
        ours, theirs = getattr(mine, name), getattr(info, name)
        if list(ours) != list(theirs):
            diffs.append(f'{name}: model {list(ours)}, checkpoint '
                         f'{list(theirs)}')
    if any(abs(a - b) > 1e-6 for a, b in zip(mine.mlp_ratio,
                                              info.mlp_ratio)):
        ours = [round(r, 4) for r in mine.mlp_ratio]
        theirs = [round(r, 4) for r in info.mlp_ratio]
        diffs.append(f'mlp_ratio: model {ours}, checkpoint {theirs}')
    return diffs


def _mismatch_error(key: str, src: Tuple[int, ...], dst: Tuple[int, ...],
                    model: nn.Module, info: Optional[ArchInfo]
                    ) -> CheckpointLoadError:
    stem = key == STEM_KERNEL
    if '.t_fc.mlp_t.' in key:
        cause = (f'num_frames mismatch: MorphFC_t is built for a fixed '
                 f'frame count; the model has num_frames='
                 f"{getattr(model, 'num_frames', '?')}, "
                 f'{_ckpt_summary(info)} was trained for another one. Build '
                 'the model with the checkpoint\'s num_frames, or pass '
                 "temporal_weights='init' (in init_cfg: dict(type="
                 "'Pretrained', ..., temporal_weights='init')) to start the "
                 'temporal branch from its init')
    elif stem and len(src) >= 2 and len(dst) >= 2 and src[0] == dst[0] \
            and src[1] != dst[1]:
        cause = (f'in_channels mismatch: the stem\'s first convolution of '
                 f'the model takes in_channels={dst[1]}, the checkpoint\'s '
                 f'takes {src[1]}. Build the model with in_channels={src[1]}'
                 f', or remove {key!r} from the checkpoint to train that '
                 'convolution from its init')
    elif stem and len(src) == len(dst) == 5 and src[:2] == dst[:2] \
            and src[2] != dst[2]:
        cause = (f'stem_temporal_kernel mismatch: the model\'s stem has '
                 f'{dst[2]} temporal taps, the checkpoint\'s {src[2]}. Build '
                 f'the model with stem_temporal_kernel={src[2]}')
    else:
        diffs = _arch_differences(model, info)
        if diffs:
            cause = (f'arch mismatch: the model is {_model_summary(model)}, '
                     f'{_ckpt_summary(info)}; they differ in '
                     f'{"; ".join(diffs)}')
        else:
            dims = [f'dim {i}: checkpoint {a}, model {b}'
                    for i, (a, b) in enumerate(zip(src, dst)) if a != b]
            if len(src) != len(dst):
                dims.append(f'{len(src)}-D in the checkpoint, {len(dst)}-D '
                            'in the model')
            known = 'cannot be read from its keys' if diffs is None else (
                'has the same depths, channels and MLP ratios as the model '
                f'{_model_summary(model)}')
            cause = (f'this tensor alone differs ({"; ".join(dims)}); the '
                     f'checkpoint\'s arch {known}. Check the options that '
                     'shape this tensor')
    return CheckpointLoadError(
        f'cannot load {key!r}: checkpoint shape {list(src)} vs model shape '
        f'{list(dst)}; likely cause: {cause}')


def _pretrained_option(model: nn.Module, key: str) -> Any:
    """``key`` of the model's first ``Pretrained`` init_cfg, or None."""
    cfgs = getattr(model, 'init_cfg', None)
    cfgs = cfgs if isinstance(cfgs, list) else [cfgs] if cfgs else []
    for cfg in cfgs:
        if isinstance(cfg, Mapping) and cfg.get('type') == 'Pretrained':
            return cfg.get(key)
    return None


def convert_to_model(state: Mapping[str, torch.Tensor],
                     model: nn.Module,
                     inflate: str = 'center',
                     info: Optional[ArchInfo] = None
                     ) -> Tuple[StateDict, LoadReport]:
    """Match a backbone dict (our names) to ``model``'s parameters.

    Tensors of equal shape are taken as they are; 2-D kernels are inflated
    and 3-D kernels folded where the model needs it; anything else that
    differs in shape raises.

    Args:
        state (dict): Backbone dict in our names.
        model (nn.Module): A :class:`MorphMLP` or :class:`MorphMLP3D`.
        inflate (str): Inflation mode (:data:`INFLATE_MODES`).
        info (ArchInfo, optional): Detected arch of ``state`` for messages.

    Returns:
        tuple: (dict ready for ``load_state_dict``, report).

    Raises:
        ValueError: ``inflate`` is not a known mode.
        CheckpointLoadError: a shape mismatch that is not inflation /
            folding, or different block counts (arch mismatch).
    """
    if inflate not in INFLATE_MODES:
        raise ValueError(
            f'inflate={inflate!r} is not supported; choose one of '
            f'{list(INFLATE_MODES)}')
    target = model.state_dict()
    report = LoadReport()
    out = OrderedDict()
    settings = getattr(model, 'arch_settings', None)
    if info is not None and settings is not None and \
            list(settings['depths']) != info.depths:
        hint = ''
        if info.arch_name == 'base':
            hint = (' (official MorphMLP-S files published before '
                    '2023-03-16 hold B depths [4, 6, 15, 4]: build the model '
                    "with arch='base')")
        raise CheckpointLoadError(
            f'cannot load the checkpoint: block counts differ; likely cause: '
            f'arch mismatch: the model is {_model_summary(model)}, '
            f'{_ckpt_summary(info)}{hint}')
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
            continue
        src, dst = tuple(value.shape), tuple(target[key].shape)
        if src == dst:
            out[key] = value
        elif value.dim() == 4 and len(dst) == 5 and \
                src == dst[:2] + dst[3:]:
            out[key] = inflate_kernel(value, dst[2], inflate)
            report.inflated.append(key)
        elif value.dim() == 5 and len(dst) == 4 and \
                src[:2] + src[3:] == dst:
            out[key] = fold_kernel(value)
            report.folded.append(key)
        else:
            raise _mismatch_error(key, src, dst, model, info)
        report.loaded.append(key)
    report.missing = [k for k in target if k not in out]
    return out, report


def _check_frames(model: nn.Module, info: Optional[ArchInfo],
                  checkpoint: Any, source: str, logger: Any) -> None:
    """Refuse a recorded frame count whose T' differs from the model's.

    Only when both the model and the checkpoint have a temporal branch:
    shapes alone cannot tell every frame count apart (``t_fc.mlp_t`` is
    C x C for 8 and 16 frames of most archs).
    """
    from mmengine.logging import print_log

    model_frames = getattr(model, 'num_frames', None)
    if info is None or not info.temporal or model_frames is None or \
            not any(is_temporal_key(k) for k in model.state_dict()):
        return
    model_stem = stem_frames_of(model_frames)
    fits = fitting_num_frames(info)
    recorded, where = recorded_num_frames(checkpoint)
    if recorded is not None and recorded not in fits:
        if logger is not None:
            print_log(
                f'{source}: ignoring num_frames={recorded} recorded in '
                f'{where}: it does not fit the t_fc.mlp_t widths '
                f'{info.temporal_dims}, which fit num_frames in {fits}',
                logger=logger, level=logging.WARNING)
        recorded = None
    if recorded is None:
        if logger is not None and len(info.stem_frames) > 1 and \
                model_stem in info.stem_frames:
            print_log(
                f'{source} records no frame count; its t_fc.mlp_t shapes '
                f'fit num_frames in {fits}, so its temporal branch loads '
                f'into num_frames={model_frames} whichever of them it was '
                'trained with', logger=logger)
        return
    if stem_frames_of(recorded) != model_stem:
        raise CheckpointLoadError(
            f'cannot load the temporal branch of {source!r}: it was trained '
            f'with num_frames={recorded} ({where}; T\'='
            f'{stem_frames_of(recorded)} after the stem), the model is built '
            f'with num_frames={model_frames} (T\'={model_stem}). MorphFC_t '
            'is built for a fixed frame count, so its weights would load '
            'with the wrong meaning. Build the model with '
            f'num_frames={recorded}, or pass temporal_weights=\'init\' (in '
            "init_cfg: dict(type='Pretrained', ..., temporal_weights="
            "'init')) to start the temporal branch from its init")
    if recorded != model_frames and logger is not None:
        print_log(
            f'{source} was trained with num_frames={recorded}, the model '
            f'has num_frames={model_frames}: both give T\'={model_stem} '
            'after the stem, so the temporal branch loads as trained',
            logger=logger)


def load_pretrained(model: nn.Module,
                    checkpoint: Union[str, Mapping[str, Any]],
                    prefix: Optional[str] = None,
                    map_location: Optional[Any] = 'cpu',
                    inflate: Optional[str] = None,
                    logger: Any = 'current',
                    temporal_weights: Optional[str] = None) -> LoadReport:
    """Load MorphMLP weights of any supported origin into a backbone.

    Accepted checkpoints: the official files (flat state dict, or a dict
    with ``model_state``), mmengine checkpoints of mmpretrain / mmaction2 /
    mmseg models (``state_dict``; the backbone is found under ``prefix``,
    by default ``backbone.`` when the top level is not a backbone) and bare
    backbone dicts. Image weights go into :class:`MorphMLP3D` by inflation
    (the temporal branch keeps its official init), video weights into
    :class:`MorphMLP` by folding (the temporal branch is dropped).

    Frame counts: when the model and the checkpoint both have a temporal
    branch and the checkpoint records its frame count (converter
    ``meta['num_frames']``, official ``cfg`` ``DATA.NUM_FRAMES``, or
    ``model.backbone.num_frames`` of a Runner checkpoint's ``meta['cfg']``),
    a count whose T' = ceil(num_frames / 2) differs from the model's is
    refused, even where the shapes agree.

    Args:
        model (nn.Module): The backbone to fill.
        checkpoint (str | dict): A path / URL or an already loaded dict.
        prefix (str, optional): Take only keys under this prefix
            (``'backbone.'``; a trailing dot is added if missing).
        map_location: Device mapping. Defaults to ``'cpu'``.
        inflate (str, optional): ``'center'`` or ``'average'`` for the
            stem's 3x3x3 kernel (see the module docstring). Defaults to the
            ``inflate`` key of the model's ``Pretrained`` init_cfg, else
            ``'center'``.
        logger: mmengine logger (or ``'current'``) for the report; None
            silences it.
        temporal_weights (str, optional): ``'load'``: load the checkpoint's
            temporal branch (``t_fc``, ``t_norm1``) and refuse a recorded
            frame count that does not match the model. ``'init'``: leave
            it out, so the model's MorphFC_t keeps its init (to fine-tune
            at another frame count); the keys are listed in
            ``LoadReport.skipped``. Defaults to the ``temporal_weights`` key
            of the model's ``Pretrained`` init_cfg, else ``'load'``.

    Returns:
        LoadReport: Loaded, converted, missing, unexpected and skipped keys.

    Raises:
        ValueError: ``inflate`` or ``temporal_weights`` is not a known
            value.
        CheckpointLoadError: (a ``ValueError``) nothing matches the model
            (not a MorphMLP checkpoint, wrong prefix), a shape mismatch
            that is not inflation / folding (wrong arch or num_frames; the
            message names the key and both shapes), or a recorded frame
            count that differs from the model's.
    """
    from mmengine.logging import print_log

    if inflate is None:
        inflate = _pretrained_option(model, 'inflate') or 'center'
    if temporal_weights is None:
        temporal_weights = _pretrained_option(model, 'temporal_weights') \
            or 'load'
    if temporal_weights not in TEMPORAL_WEIGHTS:
        raise ValueError(
            f'temporal_weights={temporal_weights!r} is not supported; choose '
            f"one of {list(TEMPORAL_WEIGHTS)} ('init' starts the temporal "
            'branch from its init instead of loading it)')
    source = 'checkpoint'
    if isinstance(checkpoint, str) or hasattr(checkpoint, '__fspath__'):
        source = str(checkpoint)
        checkpoint = load_checkpoint_file(source, map_location=map_location)
    state = extract_state_dict(checkpoint)
    if prefix:
        state = select_prefix(state, prefix)
    elif not any(k.startswith(('patch_embed', 'blocks')) for k in state) \
            and any(k.startswith(BACKBONE_PREFIX) for k in state):
        state = select_prefix(state, BACKBONE_PREFIX)
    backbone, head, _ = split_backbone_head(state)
    info = None
    try:
        info = detect_arch(backbone, head)
    except ValueError:
        pass  # reported below if nothing matches
    skipped = []
    if temporal_weights == 'init':
        skipped = [k for k in backbone if is_temporal_key(k)]
        backbone = OrderedDict((k, v) for k, v in backbone.items()
                               if not is_temporal_key(k))
    else:
        _check_frames(model, info, checkpoint, source, logger)
    converted, report = convert_to_model(backbone, model, inflate, info)
    report.skipped = skipped
    if head:
        report.unexpected.extend(OFFICIAL_HEAD + k for k in head)
    if not report.loaded:
        raise CheckpointLoadError(
            f'no key of {source!r} matches {type(model).__name__}: is it a '
            f'MorphMLP checkpoint, and is prefix={prefix!r} right? Its first '
            f'keys are {list(state)[:8]}; the model expects keys such as '
            f'{list(model.state_dict())[:4]}')
    model.load_state_dict(converted, strict=False)
    if logger is not None:
        msg = (f'load_pretrained: {len(report.loaded)} tensors from '
               f'{source} into {_model_summary(model)}')
        if report.inflated:
            msg += f'; inflated ({inflate}): {report.inflated}'
        if report.folded:
            msg += f'; folded: {report.folded}'
        print_log(msg, logger=logger)
        if report.skipped:
            print_log(
                f"temporal_weights='init': {len(report.skipped)} "
                'temporal-branch keys of the checkpoint are not loaded; the '
                "model's MorphFC_t keeps its init", logger=logger)
        if report.missing:
            temporal = [k for k in report.missing if is_temporal_key(k)]
            rest = [k for k in report.missing if not is_temporal_key(k)]
            if temporal and not report.skipped:
                print_log(
                    f'{len(temporal)} temporal-branch keys are not in the '
                    'checkpoint and keep the official init '
                    '(mlp_t = 0, proj.weight = 1)', logger=logger)
            if rest:
                print_log(f'missing keys in source state_dict: {rest}',
                          logger=logger, level=logging.WARNING)
        temporal = [k for k in report.unexpected if is_temporal_key(k)]
        heads = [k for k in report.unexpected if k.startswith(OFFICIAL_HEAD)]
        rest = [k for k in report.unexpected
                if k not in temporal and k not in heads]
        if temporal:
            print_log(
                f'{len(temporal)} temporal-branch keys of the checkpoint '
                'are dropped: the model has no MorphFC_t', logger=logger)
        if heads:
            print_log(f'classifier keys ignored (backbone only): {heads}',
                      logger=logger)
        if rest:
            print_log(f'unexpected keys in source state_dict: {rest}',
                      logger=logger, level=logging.WARNING)
    return report


__all__ = [
    'ArchInfo', 'CheckpointLoadError', 'LoadReport', 'INFLATE_MODES',
    'OFFICIAL_CHUNK_LENGTHS', 'TEMPORAL_WEIGHTS', 'check_morphmlp',
    'choose_num_frames', 'convert_to_model', 'detect_arch',
    'extract_state_dict', 'fitting_num_frames', 'fold_kernel',
    'frames_from_config_text', 'inflate_kernel', 'init_on_meta',
    'is_temporal_key', 'load_checkpoint_file', 'load_pretrained',
    'read_official_cfg', 'recorded_num_frames', 'select_prefix',
    'split_backbone_head', 'stem_frames_of'
]
