"""Count the FLOPs (multiply-accumulates) and parameters of a config's model.

One tool for the three hosts the plugin serves; the task is read from the
config's ``default_scope`` (``mmpretrain`` / ``mmaction`` / ``mmseg``) or,
failing that, from the model type:

* **image classification** (mmpretrain): input ``1 x 3 x 224 x 224`` by
  default; counts the backbone (+ neck), like mmpretrain's ``get_flops.py``.
* **video recognition** (mmaction2): input ``1 x 3 x T x 224 x 224`` with T
  from ``model.backbone.num_frames`` (else the test ``SampleFrames``
  ``clip_len``); counts the backbone (+ neck) like mmaction2's
  ``get_flops.py``. The number is given **per view** and **times the test
  views** of the config (clips of ``SampleFrames`` / ``UniformSample`` /
  ``DenseSampleFrames`` x crops of ``ThreeCrop`` (3), ``TenCrop`` (10) or
  ``CenterCrop`` (1)), the form the MorphMLP paper and README tables use.
  For a ``Recognizer2D`` (TSN style) a view is one frame (``1 x 3 x 224 x
  224``) and the views are every frame the test pipeline samples.
* **semantic segmentation** (mmseg): input ``1 x 3 x 512 x 512`` by default;
  counts the whole segmentor (backbone, neck and decode head) without the
  auxiliary head, like mmseg's ``get_flops.py``.

``--with-head`` adds the head for image/video models; ``--no-head`` counts
only backbone + neck of a segmentor.

MorphMLP blocks are counted on their plain twin
(:func:`morphmlp_mm.models.plain.build_plain`: the official algorithm step by
step, sharing every weight), so the number is a property of the architecture
and does not move when the optimised forward takes shortcuts that trade
multiply-adds for memory traffic (for example the branch means of the
reweighting). ``--runtime-path`` counts the forward that actually runs.

The counter is ``mmengine.analysis`` (derived from fvcore): one fused
multiply-add counts as one FLOP, which is the convention of the MorphMLP
paper (T 3.9G, S 7.0G, B 10.2G, L 12.5G) and of the OpenMMLab model zoos.
Convolutions and linear layers are counted exactly, norm layers
approximately (mmengine: 5 per element with an affine transform, 4 without;
``--ignore-norms`` drops them), activations, pooling and element-wise ops
not at all. ``Params`` is the whole model (the number model zoos print; for
a segmentor without the auxiliary head) and the counted part.

Examples::

    python tools/analysis/get_flops.py \\
        configs/classification/morphmlp-tiny_8xb128_in1k.py
    python tools/analysis/get_flops.py <video cfg>.py --shape 1 3 32 224 224
    python tools/analysis/get_flops.py <seg cfg>.py --shape 512 2048
    python tools/analysis/get_flops.py <cfg>.py --with-head --json flops.json
"""
import argparse
import importlib
import json
import logging
import os
import os.path as osp
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TASKS = ('image', 'video', 'seg')
#: default_scope -> task
SCOPE_TASKS = {'mmpretrain': 'image', 'mmaction': 'video', 'mmseg': 'seg'}
#: task -> host package whose registry builds the model
TASK_SCOPES = {task: scope for scope, task in SCOPE_TASKS.items()}
TASK_NAMES = {
    'image': 'image classification (mmpretrain)',
    'video': 'video recognition (mmaction2)',
    'seg': 'semantic segmentation (mmseg)',
}
DEFAULT_IMAGE_SIZE = (224, 224)
DEFAULT_SEG_SIZE = (512, 512)
DEFAULT_VIDEO_SIZE = (224, 224)
#: test transforms that sample clips -> how many views each clip yields
CLIP_SAMPLERS = ('SampleFrames', 'UniformSample', 'UniformSampleFrames',
                 'DenseSampleFrames')
CROP_VIEWS = {'ThreeCrop': 3, 'TenCrop': 10, 'CenterCrop': 1}


# --------------------------------------------------------------------------
# configuration helpers
# --------------------------------------------------------------------------
def import_plugin() -> None:
    """Import ``morphmlp_mm`` (host workarounds), from a checkout if
    need be."""
    try:
        importlib.import_module('morphmlp_mm')
    except ModuleNotFoundError as err:
        if err.name != 'morphmlp_mm':
            raise
        sys.path.insert(0, REPO_ROOT)
        importlib.import_module('morphmlp_mm')


def _type_name(cfg: Any) -> str:
    """The bare class name of a config's ``type`` (scope prefix removed)."""
    value = cfg.get('type', '') if isinstance(cfg, dict) else ''
    if not isinstance(value, str):
        value = getattr(value, '__name__', str(value))
    return value.split('.')[-1]


def infer_task(cfg: Config) -> str:
    """The task of a config: ``'image'``, ``'video'`` or ``'seg'``.

    Raises:
        ValueError: neither ``default_scope`` nor the model type tells.
    """
    scope = cfg.get('default_scope', None)
    if scope in SCOPE_TASKS:
        return SCOPE_TASKS[scope]
    model_type = _type_name(cfg.get('model', {}))
    if model_type.startswith('Recognizer'):
        return 'video'
    if model_type.endswith('EncoderDecoder'):
        return 'seg'
    if model_type.endswith('Classifier'):
        return 'image'
    raise ValueError(
        f'cannot tell the task of this config: default_scope={scope!r}, '
        f'model type={model_type!r}. Pass --task with one of {TASKS}')


def find_test_pipeline(cfg: Config) -> List[dict]:
    """The transforms of the test (else val) dataloader's dataset.

    Wrapped datasets (``RepeatDataset``, ``ConcatDataset``...) are unwrapped
    to the first dataset that has a ``pipeline``. Returns ``[]`` if none.
    """
    def search(dataset: Any) -> Optional[list]:
        if isinstance(dataset, dict):
            if isinstance(dataset.get('pipeline', None), (list, tuple)):
                return list(dataset['pipeline'])
            for key in ('dataset', 'datasets'):
                if key in dataset:
                    found = search(dataset[key])
                    if found is not None:
                        return found
        elif isinstance(dataset, (list, tuple)):
            for item in dataset:
                found = search(item)
                if found is not None:
                    return found
        return None

    for loader in ('test_dataloader', 'val_dataloader'):
        dataloader = cfg.get(loader, None)
        if isinstance(dataloader, dict):
            found = search(dataloader.get('dataset', None))
            if found is not None:
                return found
    pipeline = cfg.get('test_pipeline', None)
    return list(pipeline) if isinstance(pipeline, (list, tuple)) else []


def is_frame_recognizer(cfg: Config) -> bool:
    """True for 2-D recognizers (TSN style): one view is one frame."""
    return _type_name(cfg.get('model', {})) == 'Recognizer2D'


def count_test_views(pipeline: Sequence[dict],
                     per_frame: bool = False) -> Dict[str, Any]:
    """Clips x crops that a video test pipeline feeds the model per video.

    Args:
        pipeline (Sequence[dict]): Test transforms.
        per_frame (bool): Count frames instead of clips (2-D recognizers
            run every sampled frame on its own): clips x ``clip_len``.

    Returns:
        dict: ``clips`` (frames with ``per_frame``), ``crops``, ``views``
        (their product) and ``description`` (which transforms set them).
    """
    clips, crops = 1, 1
    clip_src, crop_src = 'no clip sampler: 1 clip', 'no crop: 1 crop'
    for transform in pipeline:
        name = _type_name(transform)
        if name in CLIP_SAMPLERS:
            clips = int(transform.get('num_clips', 1))
            clip_src = f'{name} num_clips={clips}'
            if per_frame:
                clip_len = int(transform.get('clip_len', 1))
                clips *= clip_len
                clip_src += f' x clip_len={clip_len}'
            if name == 'DenseSampleFrames' and transform.get(
                    'test_mode', False):
                positions = int(transform.get('num_sample_positions', 10))
                clips *= positions
                clip_src += f' x num_sample_positions={positions}'
            if name == 'SampleFrames' and transform.get(
                    'twice_sample', False) and transform.get(
                        'test_mode', False):
                clips *= 2
                clip_src += ' x 2 (twice_sample)'
        elif name in CROP_VIEWS:
            crops = CROP_VIEWS[name]
            crop_src = name
    return dict(
        clips=clips,
        crops=crops,
        views=clips * crops,
        description=f'{clip_src}; {crop_src}')


def video_clip_len(cfg: Config) -> Optional[int]:
    """Frames per clip: the backbone's ``num_frames``, else the test
    sampler's ``clip_len``; None if neither is set."""
    backbone = cfg.model.get('backbone', None) or {}
    if isinstance(backbone, dict) and backbone.get('num_frames', None):
        return int(backbone['num_frames'])
    for transform in find_test_pipeline(cfg):
        if _type_name(transform) in CLIP_SAMPLERS and transform.get(
                'clip_len', None):
            return int(transform['clip_len'])
    return None


def resolve_shape(task: str, shape: Optional[Sequence[int]],
                  cfg: Config) -> Tuple[int, ...]:
    """The full input shape, ``(N, C, H, W)`` or ``(N, C, T, H, W)``.

    ``shape`` may give the spatial size only (``S`` or ``H W``), or add the
    leading dims: images ``C H W`` / ``N C H W``; video ``T H W`` /
    ``C T H W`` / ``N C T H W``. Missing dims default to N=1, C=3 and (video)
    T from the config. A 2-D recognizer takes image shapes (one frame).

    Raises:
        ValueError: the shape has a wrong length or non-positive entries, or
            T is not given and the config does not define it.
    """
    if shape is not None:
        shape = [int(v) for v in shape]
        if not shape or any(v < 1 for v in shape):
            raise ValueError(
                f'--shape must be positive ints, got {shape!r}')
    if task == 'video' and not is_frame_recognizer(cfg):
        if shape is not None and len(shape) not in (1, 2, 3, 4, 5):
            raise ValueError(
                f'--shape for a video model takes 1 (S), 2 (H W), 3 (T H W),'
                f' 4 (C T H W) or 5 (N C T H W) values, got {shape!r}')
        if shape is not None and len(shape) >= 3:
            full = [1, 3][:5 - len(shape)] + shape
            return tuple(full)
        frames = video_clip_len(cfg)
        if frames is None:
            raise ValueError(
                'the config defines no clip length (model.backbone.num_frames'
                ' or a test SampleFrames clip_len): pass --shape T H W')
        if shape is None:
            size = list(DEFAULT_VIDEO_SIZE)
        else:
            size = shape * 2 if len(shape) == 1 else shape
        return (1, 3, frames, *size)
    default = DEFAULT_SEG_SIZE if task == 'seg' else DEFAULT_IMAGE_SIZE
    if shape is None:
        return (1, 3, *default)
    if len(shape) == 1:
        return (1, 3, shape[0], shape[0])
    if len(shape) == 2:
        return (1, 3, *shape)
    if len(shape) == 3:
        return (1, *shape)
    if len(shape) == 4:
        return tuple(shape)
    raise ValueError(
        f'--shape for an image (or 2-D video) model takes 1 (S), 2 (H W), '
        f'3 (C H W) or 4 '
        f'(N C H W) values, got {shape!r}')


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------
def build_model(cfg: Config, task: str) -> nn.Module:
    """Build ``cfg.model`` in its host's registry, in eval mode.

    Segmentors lose their auxiliary head (a training-only branch) and SyncBN
    is reverted to BN so that a single CPU process can run them.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope', None) or TASK_SCOPES[task]
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model_cfg = cfg.model.copy()
    if task == 'seg':
        model_cfg.pop('auxiliary_head', None)
    model = registry.build(model_cfg)
    model = revert_sync_batchnorm(model)
    return model.eval()


def _flatten_tensors(value: Any) -> Tuple[torch.Tensor, ...]:
    """All tensors in a nested output, in order (the tracer needs tensors)."""
    if isinstance(value, torch.Tensor):
        return (value, )
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        out = ()
        for item in value:
            out += _flatten_tensors(item)
        return out
    return ()


class CountedPart(nn.Module):
    """The part of a host model whose FLOPs are counted.

    Args:
        model (nn.Module): The built host model.
        task (str): ``'image'``, ``'video'`` or ``'seg'``.
        with_head (bool): Include the (decode / classification) head.
    """

    def __init__(self, model: nn.Module, task: str, with_head: bool) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.with_head = with_head

    def modules_counted(self) -> List[nn.Module]:
        """The sub-modules the forward runs through."""
        names = ['backbone', 'neck']
        if self.with_head:
            names += ['head', 'cls_head', 'decode_head']
        mods = [getattr(self.model, n, None) for n in names]
        return [m for m in mods if isinstance(m, nn.Module)]

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        model = self.model
        if self.task == 'video':
            # Recognizer3D expects (N, views, C, T, H, W), Recognizer2D
            # (N, frames, C, H, W); one view (clip or frame) here.
            inputs = inputs.unsqueeze(1)
            stage = 'head' if self.with_head else 'neck'
            out = model.extract_feat(inputs, stage=stage)[0]
        elif self.with_head:
            out = model(inputs, mode='tensor')
        else:
            out = model.extract_feat(inputs)
        return _flatten_tensors(out)


def plain_twin(model: nn.Module) -> Tuple[nn.Module, bool]:
    """The plain-algorithm twin of ``model`` and whether one was built.

    Falls back to ``model`` itself when the plugin has no plain twin.
    """
    try:
        from morphmlp_mm.models.plain import build_plain
    except ImportError:
        return model, False
    return build_plain(model).eval(), True


def count_params(modules: Sequence[nn.Module]) -> int:
    """Parameters of ``modules`` (shared ones counted once)."""
    seen = {}
    for module in modules:
        for param in module.parameters():
            seen[id(param)] = param.numel()
    return sum(seen.values())


NORM_OPS = ('aten::batch_norm', 'aten::group_norm', 'aten::layer_norm',
            'aten::instance_norm')


def _zero_flops(inputs: Any, outputs: Any) -> int:
    """An operator handle that counts nothing."""
    return 0


def analyse(part: CountedPart,
            inputs: torch.Tensor,
            show_table: bool = False,
            ignore_norms: bool = False) -> Tuple[int, Optional[str]]:
    """FLOPs (MACs) of ``part`` on ``inputs`` and optionally a table.

    Unsupported-operator warnings (GELU, softmax, reshapes: not counted by
    convention) are silenced. ``ignore_norms`` stops counting norm layers.
    """
    from mmengine.analysis import FlopAnalyzer
    from mmengine.analysis.print_helper import complexity_stats_table
    logger = logging.getLogger('mmengine')
    level = logger.level
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        logger.setLevel(logging.ERROR)
        try:
            analyzer = FlopAnalyzer(part, (inputs, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            if ignore_norms:
                # A handle of None would only add the op to the ignored
                # set, which mmengine 0.10.7 consults after its handles;
                # a handle that returns 0 really stops the count.
                for op in NORM_OPS:
                    analyzer.set_op_handle(op, _zero_flops)
            total = analyzer.total()
            table = complexity_stats_table(
                analyzer, max_depth=3, show_param_shapes=False) \
                if show_table else None
        finally:
            logger.setLevel(level)
    return total, table


def get_flops(cfg: Config,
              shape: Optional[Sequence[int]] = None,
              with_head: Optional[bool] = None,
              task: Optional[str] = None,
              show_table: bool = False,
              ignore_norms: bool = False,
              runtime_path: bool = False) -> Dict[str, Any]:
    """Count the FLOPs and params of ``cfg.model``.

    Args:
        cfg (Config): A loaded config (plugins already imported).
        shape (Sequence[int], optional): See :func:`resolve_shape`.
        with_head (bool, optional): Count the head too. None: the host's
            convention (False for image/video, True for segmentation).
        task (str, optional): Force ``'image'``, ``'video'`` or ``'seg'``.
        show_table (bool): Also return mmengine's per-module table.
        ignore_norms (bool): Do not count norm layers (convolutions and
            linear layers only).
        runtime_path (bool): Count the optimised forward that runs instead
            of the plain algorithm of the MorphMLP blocks.

    Returns:
        dict: ``task``, ``input_shape``, ``with_head``, ``counted``,
        ``flops`` (MACs of one input), ``gflops``, ``params`` (whole model),
        ``params_counted``; video adds ``views``, ``clips``, ``crops``,
        ``views_description``, ``flops_all_views``, ``gflops_all_views``.

    Raises:
        ValueError: bad ``task`` or ``shape``.
    """
    if task is None:
        task = infer_task(cfg)
    elif task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    if with_head is None:
        with_head = task == 'seg'
    full_shape = resolve_shape(task, shape, cfg)
    model = build_model(cfg, task)
    counted_model, plain = (model, False) if runtime_path else \
        plain_twin(model)
    part = CountedPart(counted_model, task, with_head)
    inputs = torch.zeros(full_shape)
    flops, table = analyse(part, inputs, show_table, ignore_norms)
    counted = [n for n in ('backbone', 'neck')
               if isinstance(getattr(model, n, None), nn.Module)]
    if with_head:
        counted += [n for n in ('head', 'cls_head', 'decode_head')
                    if isinstance(getattr(model, n, None), nn.Module)]
    result = dict(
        task=task,
        input_shape=list(full_shape),
        with_head=with_head,
        ignore_norms=ignore_norms,
        implementation='plain' if plain else 'runtime',
        counted=counted,
        flops=int(flops),
        gflops=flops / 1e9,
        params=count_params([model]),
        params_counted=count_params(part.modules_counted()),
    )
    if task == 'video':
        per_frame = is_frame_recognizer(cfg)
        views = count_test_views(find_test_pipeline(cfg), per_frame)
        result.update(
            view_unit='frame' if per_frame else 'clip',
            clips=views['clips'],
            crops=views['crops'],
            views=views['views'],
            views_description=views['description'],
            flops_all_views=int(flops) * views['views'],
            gflops_all_views=flops * views['views'] / 1e9)
    if table is not None:
        result['table'] = table
    return result


def _plural(count: int, noun: str) -> str:
    return f'{count} {noun}' + ('' if count == 1 else 's')


def format_report(result: Dict[str, Any], config: str) -> str:
    """The text the command prints."""
    line = '=' * 64
    counted = ' + '.join(result['counted'])
    if result['task'] == 'seg' and result['with_head']:
        counted += ' (auxiliary head excluded)'
    elif not result['with_head']:
        counted += ' (head excluded; --with-head to include it)'
    rows = [
        line,
        f'Config:          {config}',
        f'Task:            {TASK_NAMES[result["task"]]}',
        f'Counted:         {counted}',
        f'Input shape:     {tuple(result["input_shape"])}',
        'Forward counted: ' + (
            'plain MorphMLP algorithm (--runtime-path: the optimised one)'
            if result['implementation'] == 'plain' else
            'the forward that runs (optimised MorphMLP path)'),
    ]
    if result['task'] == 'video':
        rows += [
            f'FLOPs per view:  {result["gflops"]:.2f} GMACs',
            f'Test views:      {_plural(result["clips"], result["view_unit"])}'
            ' x '
            f'{_plural(result["crops"], "crop")} = {result["views"]} '
            f'({result["views_description"]})',
            f'FLOPs x views:   {result["gflops_all_views"]:.2f} GMACs',
        ]
    else:
        rows.append(f'FLOPs:           {result["gflops"]:.2f} GMACs')
    rows += [
        f'Params:          {result["params"] / 1e6:.2f} M (whole model'
        f'{", no auxiliary head" if result["task"] == "seg" else ""})',
        f'Params counted:  {result["params_counted"] / 1e6:.2f} M',
        line,
        'FLOPs are multiply-accumulates (mmengine.analysis, fvcore '
        'convention, as in the MorphMLP paper and the OpenMMLab model zoos); '
        + ('norm layers are not counted (--ignore-norms); '
           if result.get('ignore_norms') else
           'norm layers are counted approximately; ')
        + 'activations and element-wise ops are not counted. Check the '
        'numbers before quoting them.',
    ]
    if 'table' in result:
        rows += ['', result['table']]
    return '\n'.join(rows)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``get_flops.py``."""
    parser = argparse.ArgumentParser(
        description='Count FLOPs (MACs) and params of a config\'s model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=None,
        help='input size: S or H W (defaults: 224 for images and video, 512 '
        'for segmentation), or the full shape C H W / N C H W (images), '
        'T H W / C T H W / N C T H W (video; T defaults to '
        'model.backbone.num_frames)')
    head = parser.add_mutually_exclusive_group()
    head.add_argument(
        '--with-head', dest='with_head', action='store_true', default=None,
        help='count the head too (default for segmentation)')
    head.add_argument(
        '--no-head', dest='with_head', action='store_false',
        help='count only backbone + neck (default for image and video)')
    parser.add_argument(
        '--task', choices=TASKS, default=None,
        help='force the task instead of reading default_scope')
    parser.add_argument(
        '--ignore-norms', action='store_true',
        help='do not count norm layers (only convolutions, linear layers '
        'and the like)')
    parser.add_argument(
        '--runtime-path', action='store_true',
        help='count the optimised forward that actually runs instead of the '
        'plain MorphMLP algorithm')
    parser.add_argument(
        '--show-table', action='store_true',
        help='also print mmengine\'s per-module FLOP table (depth 3)')
    parser.add_argument(
        '--json', help='also write the result to this file (its folder is '
        'created if need be)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, xxx=yyy pairs merged into the config')
    return parser


def prepare_json_path(path: str) -> None:
    """Create the folder of ``--json`` before any counting.

    Raises:
        SystemExit: ``path`` is a folder, or its folder cannot be created.
    """
    if osp.isdir(path):
        raise SystemExit(
            f'error: --json {path} is a folder; pass a file path such as '
            f'{osp.join(path, "flops.json")}')
    folder = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise SystemExit(
            f'error: --json {path}: cannot create the folder {folder}: '
            f'{err.strerror or err}') from err


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Parse the arguments, count and print; returns the result dict."""
    args = build_parser().parse_args(argv)
    import_plugin()
    from morphmlp_mm.utils.cli import read_config
    cfg = read_config(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.json:
        prepare_json_path(args.json)
    try:
        result = get_flops(cfg, args.shape, args.with_head, args.task,
                           args.show_table, args.ignore_norms,
                           args.runtime_path)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    print(format_report(result, args.config))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({k: v for k, v in result.items() if k != 'table'}, f,
                      indent=2)
    return result


if __name__ == '__main__':
    main()
