"""Segment one image with a MorphMLP segmentation config and save an overlay.

The model is built with mmseg's inference API (:func:`mmseg.apis.init_model`,
:func:`mmseg.apis.inference_model`), so the config's ``test_pipeline`` and
``model.test_cfg`` (whole or slide inference) are used exactly as in
``tools/test.py``. A checkpoint must fit the model key for key, as in
``tools/test.py``: one of another architecture is refused (``error: ...``)
instead of being loaded partly into a mostly random model. The prediction
is drawn over the image with mmseg's ``SegLocalVisualizer`` (class colours
of the dataset's palette, class names at the segment centres) and written
as a PNG of the input's size.

Examples::

    python tools/demo/seg_demo.py \
        configs/segmentation/morphmlp-tiny_fpn_4xb4-80k_ade20k-512x512.py \
        demo.jpg --checkpoint work_dirs/fpn_t/iter_80000.pth --out out.png
    # no checkpoint: random weights (a warning is printed), useful to check
    # that a config runs end to end
    python tools/demo/seg_demo.py <config> demo.jpg --out out.png
    # slide inference on a CPU with smaller windows
    python tools/demo/seg_demo.py <config> demo.jpg --device cpu \
        --cfg-options model.test_cfg.mode=slide \
        "model.test_cfg.crop_size=(256,256)" "model.test_cfg.stride=(171,171)"
"""
import argparse
import importlib
import os
import os.path as osp
import pickle
import sys
import warnings
from typing import Any, List, Optional

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def import_plugin() -> None:
    """Import ``morphmlp_mm`` (host workarounds + registration) first.

    Falls back to the repository root on ``sys.path`` for a source checkout
    that is not pip-installed.
    """
    try:
        importlib.import_module('morphmlp_mm')
    except ModuleNotFoundError as err:
        if err.name != 'morphmlp_mm':
            raise
        sys.path.insert(0, REPO_ROOT)
        importlib.import_module('morphmlp_mm')


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tools/demo/seg_demo.py``."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Segment an image and save a colour overlay PNG')
    parser.add_argument('config', help='segmentation config file')
    parser.add_argument('image', help='input image file')
    parser.add_argument(
        '--checkpoint', default=None,
        help='trained checkpoint; without it the model keeps random '
        'weights and a warning is printed')
    parser.add_argument(
        '--out', default=None,
        help='output PNG (default: <image stem>_seg.png in the current '
        'directory)')
    parser.add_argument(
        '--device', default=None,
        help='device, e.g. cpu or cuda:0 (default: cuda:0 if available)')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='opacity of the class colours over the image, in (0, 1] '
        '(default 0.5)')
    parser.add_argument(
        '--no-labels', action='store_true',
        help='do not write class names on the segments')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, xxx=yyy pairs; no white space '
        'inside a pair')
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Raise ValueError for arguments that cannot work."""
    if not osp.isfile(args.config):
        raise ValueError(f'config={args.config!r}: no such file')
    if not osp.isfile(args.image):
        raise ValueError(f'image={args.image!r}: no such file')
    if args.checkpoint is not None and '://' not in args.checkpoint \
            and not osp.isfile(args.checkpoint):
        raise ValueError(f'checkpoint={args.checkpoint!r}: no such file')
    if not 0. < args.opacity <= 1.:
        raise ValueError(
            f'opacity={args.opacity!r} is not allowed: use a value in (0, 1]')
    if args.out is not None and not args.out.lower().endswith('.png'):
        raise ValueError(f'out={args.out!r}: the overlay is written as PNG, '
                         'use a name ending in .png')


def default_out(image: str) -> str:
    """``<image stem>_seg.png`` in the current directory."""
    return f'{osp.splitext(osp.basename(image))[0]}_seg.png'


def dataset_meta_from_config(cfg, num_classes: int) -> dict:
    """Class names and palette for a model without checkpoint metadata.

    Taken from the ``METAINFO`` of the config's test (or val) dataset class
    when its class count matches the head; otherwise numbered classes with
    a random but fixed palette.

    Args:
        cfg (mmengine.Config): The loaded config.
        num_classes (int): Classes predicted by the decode head.

    Returns:
        dict: ``classes`` (tuple of str) and ``palette`` (list of RGB).
    """
    from mmseg.registry import DATASETS
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        loader = cfg.get(key, None) or {}
        dataset_type = (loader.get('dataset', None) or {}).get('type', None)
        if not isinstance(dataset_type, str):
            continue
        dataset_cls = DATASETS.get(dataset_type)
        meta = getattr(dataset_cls, 'METAINFO', None) or {}
        if len(meta.get('classes', ())) == num_classes and 'palette' in meta:
            return dict(classes=tuple(meta['classes']),
                        palette=[list(c) for c in meta['palette']])
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(num_classes, 3)).tolist()
    return dict(classes=tuple(f'class {i}' for i in range(num_classes)),
                palette=palette)


def build_model(cfg: Any, checkpoint: Optional[str] = None,
                device: str = 'cpu') -> Any:
    """The segmentor of ``cfg``, with ``checkpoint`` if it fits the model.

    The model is built by :func:`mmseg.apis.init_model` without weights;
    the checkpoint is read with the package's safe loader, compared with it
    by :func:`morphmlp_mm.engine.hooks.check_checkpoint_matches` (mode
    ``'test'``: missing or shape-mismatched keys are refused, keys the
    model does not use only give a warning) and only then loaded. Its
    ``meta['dataset_meta']`` (class names and palette) is kept as the
    model's ``dataset_meta`` when it has both.

    Raises:
        ValueError: ``checkpoint`` cannot be read, or does not fit the model
            (:class:`CheckpointMismatchError`).
    """
    from mmseg.apis import init_model

    from morphmlp_mm.engine.hooks import load_matching_checkpoint
    model = init_model(cfg, None, device=device)
    if checkpoint is None:
        return model
    try:
        ckpt = load_matching_checkpoint(model, checkpoint)
    except (RuntimeError, OSError, pickle.UnpicklingError) as err:
        raise ValueError(f'checkpoint={checkpoint!r}: {err}') from err
    meta = ckpt.get('meta', None) or {}
    dataset_meta = meta.get('dataset_meta', None) or {}
    if dataset_meta.get('classes') and dataset_meta.get('palette'):
        model.dataset_meta = dataset_meta
    elif meta.get('CLASSES', None) and meta.get('PALETTE', None):
        model.dataset_meta = dict(classes=meta['CLASSES'],
                                  palette=meta['PALETTE'])
    return model


def run_demo(args: argparse.Namespace) -> dict:
    """Build the model, segment ``args.image`` and write the overlay.

    Returns:
        dict: ``out`` (path written), ``shape`` (H, W), ``classes`` (names
        of the predicted classes, largest area first) and ``fractions``
        (their pixel fractions).

    Raises:
        SystemExit: the checkpoint cannot be read or does not fit the
            model (``error: <message>``).
    """
    import mmcv
    import torch
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmseg.apis import inference_model
    from mmseg.visualization import SegLocalVisualizer

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    device = args.device or ('cuda:0' if torch.cuda.is_available() else
                             'cpu')
    if args.checkpoint is None:
        warnings.warn(
            'no --checkpoint given: the model keeps its random '
            'initialisation, so the overlay shows meaningless classes. Pass '
            'a trained checkpoint for real predictions.')
    try:
        model = build_model(cfg, args.checkpoint, device)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    # A single process has no SyncBN group: use plain BatchNorm.
    model = revert_sync_batchnorm(model)
    if not getattr(model, 'dataset_meta', None):
        model.dataset_meta = dataset_meta_from_config(
            cfg, model.decode_head.num_classes)

    result = inference_model(model, args.image)
    image = mmcv.imread(args.image, channel_order='rgb')
    out = args.out or default_out(args.image)
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    visualizer = SegLocalVisualizer(
        name=f'seg_demo_{id(model)}', alpha=args.opacity)
    visualizer.dataset_meta = dict(
        classes=model.dataset_meta['classes'],
        palette=model.dataset_meta['palette'])
    visualizer.add_datasample(
        name=osp.basename(args.image),
        image=image,
        data_sample=result,
        draw_gt=False,
        draw_pred=True,
        show=False,
        with_labels=not args.no_labels,
        out_file=out)

    pred = result.pred_sem_seg.data.squeeze(0).cpu().numpy()
    ids, counts = np.unique(pred, return_counts=True)
    order = np.argsort(-counts)
    names = model.dataset_meta['classes']
    return dict(
        out=out,
        shape=tuple(image.shape[:2]),
        classes=[names[int(ids[i])] for i in order],
        fractions=[float(counts[i]) / pred.size for i in order])


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    import_plugin()
    parser = build_parser()
    args = parser.parse_args(argv)
    from morphmlp_mm.utils import same_file
    if args.out is not None and same_file(args.out, args.image):
        parser.error(f'--out {args.out!r} is the input image {args.image!r}:'
                     ' it would be overwritten; pass another --out')
    try:
        _check_args(args)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    summary = run_demo(args)
    h, w = summary['shape']
    print(f'wrote {summary["out"]} ({w}x{h})')
    for name, frac in list(zip(summary['classes'],
                               summary['fractions']))[:10]:
        print(f'  {name}: {100 * frac:.1f}%')


if __name__ == '__main__':
    main(sys.argv[1:])
