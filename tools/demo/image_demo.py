"""Classify one photo with a MorphMLP (or any mmpretrain) config.

Runs mmpretrain's ``ImageClassificationInferencer`` (the config's test
pipeline and data preprocessor), prints the top-k ImageNet classes and writes
a copy of the image with the labels drawn on it.

The image is a file path or ``skimage:<name>`` for a photo that ships with
scikit-image (``chelsea``, ``astronaut``, ``coffee``, ``cat``, ``rocket``,
...), so the demo runs without downloading anything. Without
``--checkpoint`` the model keeps its random initialisation and a warning
says that the predictions are meaningless.

Examples::

    python tools/demo/image_demo.py skimage:chelsea \\
        configs/classification/morphmlp-tiny_8xb128_in1k.py
    python tools/demo/image_demo.py photo.jpg \\
        configs/classification/morphmlp-small_8xb128_in1k.py \\
        --checkpoint morphmlp-small_in1k.pth --out-file out.jpg --topk 5
"""
import argparse
import importlib
import os
import os.path as osp
import pickle
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SKIMAGE_PREFIX = 'skimage:'
RANDOM_INIT_WARNING = (
    'no --checkpoint given: the model keeps its RANDOM initialisation, so '
    'the predictions below are MEANINGLESS. Pass --checkpoint <file.pth> '
    'with trained weights for real predictions.')


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


def load_rgb(image: str) -> np.ndarray:
    """Read ``image`` (a path or ``skimage:<name>``) as uint8 RGB (H, W, 3).

    Raises:
        ValueError: the scikit-image photo does not exist, the file cannot
            be read, or the image is not a colour or grey image.
    """
    if image.startswith(SKIMAGE_PREFIX):
        import skimage.data
        name = image[len(SKIMAGE_PREFIX):]
        loader = getattr(skimage.data, name, None)
        if name.startswith('_') or not callable(loader):
            raise ValueError(
                f'image={image!r}: scikit-image has no photo {name!r}; try '
                'skimage:chelsea, skimage:astronaut or skimage:coffee')
        img = np.asarray(loader())
    else:
        import cv2
        if not osp.isfile(image):
            raise ValueError(f'image={image!r}: no such file')
        bgr = cv2.imread(image, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'image={image!r}: not an image OpenCV can read')
        img = bgr[..., ::-1]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f'image={image!r}: expected a colour or grey image, '
                         f'got an array of shape {img.shape}')
    if img.dtype != np.uint8:
        img = np.clip(img * (255. if img.max() <= 1 else 1.), 0, 255)
        img = img.astype(np.uint8)
    return np.ascontiguousarray(img[..., :3])


def imagenet_classes() -> Sequence[str]:
    """The 1000 ImageNet-1k class names in label order (from mmpretrain)."""
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    return IMAGENET_CATEGORIES


def build_inferencer(config: str,
                     checkpoint: Optional[str] = None,
                     device: str = 'cpu',
                     cfg_options: Optional[dict] = None):
    """An ``ImageClassificationInferencer`` for ``config``.

    The checkpoint is read with the package's safe loader and compared with
    the model built from the config before any weight is copied
    (:func:`morphmlp_mm.engine.hooks.check_checkpoint_matches`, mode
    ``'test'``, as ``tools/test.py``): missing or shape-mismatched keys are
    refused, keys the model does not use only give a warning. mmpretrain's
    own loader would load such a checkpoint partly and predict with a
    mostly random model.

    Class names come from the checkpoint's ``dataset_meta`` when it has
    them, otherwise from ImageNet-1k when the head has 1000 classes.

    Raises:
        ValueError: ``checkpoint`` does not exist, is not a readable
            checkpoint, or does not fit the model
            (:class:`CheckpointMismatchError`).
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.apis import ImageClassificationInferencer

    from morphmlp_mm.engine.hooks import load_matching_checkpoint
    from morphmlp_mm.utils.cli import read_config
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise ValueError(f'checkpoint={checkpoint!r}: no such file')
    cfg = read_config(config)  # a missing config: one error: line
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # The inferencer builds the test pipeline in the current default scope;
    # make it the config's (a process may have switched to another host).
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    # Built without weights: the checkpoint is checked, then loaded, below.
    inferencer = ImageClassificationInferencer(
        model=cfg, pretrained=False, device=device)
    if checkpoint is not None:
        try:
            ckpt = load_matching_checkpoint(inferencer.model, checkpoint)
        except (RuntimeError, pickle.UnpicklingError) as err:
            raise ValueError(f'checkpoint={checkpoint!r}: {err}') from err
        meta = ckpt.get('meta', None) or {}
        classes = (meta.get('dataset_meta', None) or {}).get(
            'classes', meta.get('CLASSES', None))
        num_classes = getattr(getattr(inferencer.model, 'head', None),
                              'num_classes', None)
        if classes is not None and num_classes not in (None, len(classes)):
            print(f'WARNING: checkpoint {checkpoint!r} names {len(classes)} '
                  f'classes, the head predicts {num_classes}: class names '
                  'not used', file=sys.stderr, flush=True)
        elif classes is not None:
            inferencer.classes = list(classes)
    head = cfg.model.get('head', None) or {}
    if inferencer.classes is None and head.get('num_classes') == 1000:
        inferencer.classes = list(imagenet_classes())
    return inferencer


def predict_topk(inferencer: Any, rgb: np.ndarray,
                 topk: int = 5) -> List[Dict[str, Any]]:
    """Top-``topk`` predictions for one RGB image.

    Returns:
        list[dict]: ``rank`` (1-based), ``label`` (index), ``score`` and
        ``name`` (class name, or ``class <label>`` without names).

    Raises:
        ValueError: ``topk`` is not a positive int.
    """
    if not isinstance(topk, int) or topk < 1:
        raise ValueError(f'topk must be a positive int, got {topk!r}')
    # The config's data preprocessor converts BGR to RGB, as for images
    # read from files by LoadImageFromFile.
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    result = inferencer(bgr)[0]
    scores = np.asarray(result['pred_scores'], dtype=np.float64)
    order = np.argsort(-scores, kind='stable')[:topk]
    classes = inferencer.classes
    rows = []
    for rank, label in enumerate(order, 1):
        label = int(label)
        name = classes[label] if classes is not None and label < len(
            classes) else f'class {label}'
        rows.append(
            dict(rank=rank, label=label, score=float(scores[label]),
                 name=name))
    return rows


def draw_predictions(rgb: np.ndarray, rows: Sequence[Dict[str, Any]],
                     random_init: bool = False) -> np.ndarray:
    """A copy of ``rgb`` with one text line per prediction (top-left)."""
    import cv2
    img = rgb.copy()
    h, w = img.shape[:2]
    scale = max(0.4, min(1.0, w / 640.))
    thickness = 1 if scale < 0.8 else 2
    lines = [f"{r['rank']}. {r['name']} ({r['score']:.3f})" for r in rows]
    if random_init:
        lines.append('random weights: meaningless')
    line_h = int(24 * scale) + 6
    width = max(
        cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
        for t in lines) + 12
    box = img[:min(h, line_h * len(lines) + 8), :min(w, width)]
    box[:] = (box * 0.35).astype(np.uint8)   # darken behind the text
    for i, text in enumerate(lines):
        color = (255, 80, 80) if random_init and i == len(lines) - 1 else \
            (255, 255, 255)
        cv2.putText(img, text, (6, line_h * (i + 1)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness,
                    cv2.LINE_AA)
    return img


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``image_demo.py``."""
    parser = argparse.ArgumentParser(
        description='Classify one image with an mmpretrain config')
    parser.add_argument(
        'image', help='image file, or skimage:<name> (e.g. skimage:chelsea)')
    parser.add_argument('config', help='mmpretrain config file')
    parser.add_argument(
        '--checkpoint', default=None,
        help='trained weights (.pth); without it the model is randomly '
        'initialised and its predictions are meaningless')
    parser.add_argument(
        '--out-file', default='image_demo_out.jpg',
        help='where to write the image with the labels '
        '(default image_demo_out.jpg)')
    parser.add_argument('--topk', type=int, default=5,
                        help='number of classes to print (default 5)')
    parser.add_argument('--device', default='cpu',
                        help='device, e.g. cpu or cuda:0 (default cpu)')
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, xxx=yyy pairs merged into the config')
    return parser


def main(argv: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """Run the demo; returns the top-k rows."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import_plugin()
    from morphmlp_mm.utils import same_file
    if not args.image.startswith(SKIMAGE_PREFIX) and same_file(
            args.out_file, args.image):
        parser.error(f'--out-file {args.out_file!r} is the input image '
                     f'{args.image!r}: it would be overwritten; pass another '
                     '--out-file')
    try:
        rgb = load_rgb(args.image)
        if args.topk < 1:
            raise ValueError(f'--topk must be >= 1, got {args.topk}')
        if args.checkpoint is None:
            print(f'WARNING: {RANDOM_INIT_WARNING}', file=sys.stderr,
                  flush=True)
        inferencer = build_inferencer(args.config, args.checkpoint,
                                      args.device, args.cfg_options)
        rows = predict_topk(inferencer, rgb, args.topk)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    random_init = args.checkpoint is None
    print(f'image: {args.image} ({rgb.shape[1]}x{rgb.shape[0]})')
    print(f'top-{len(rows)} predictions'
          f'{" (RANDOM WEIGHTS, meaningless)" if random_init else ""}:')
    for row in rows:
        print(f"  {row['rank']}. {row['name']:40s} {row['score']:.4f} "
              f"(label {row['label']})")
    import cv2
    out_dir = osp.dirname(osp.abspath(args.out_file))
    os.makedirs(out_dir, exist_ok=True)
    drawn = draw_predictions(rgb, rows, random_init)
    if not cv2.imwrite(args.out_file, np.ascontiguousarray(drawn[..., ::-1])):
        raise SystemExit(f'error: could not write {args.out_file!r}')
    print(f'wrote {args.out_file}')
    return rows


if __name__ == '__main__':
    main()
