"""Write a cluttered synthetic shapes segmentation set (mmseg layout).

Five classes: ``background``, ``circle``, ``square``, ``triangle`` and
``ring``. Colour carries no class information: every shape gets a random
colour (only kept apart from what lies under it so that it is visible) with
a little shading, squares and triangles are turned up to 22.5 degrees from
upright, radii vary about 2x, two to five shapes per image may overlap (each
keeps at least 85% of its area visible), and the background is a random
two-colour gradient with a random texture, random lines and soft blobs of
any colour (all labelled background) plus pixel noise. A model therefore has
to use shape: a filled circle and a ring differ only by the hole, a square
and a triangle only by their corners.

Tree (``data_root`` = ``--out``)::

    images/train/shapes_000000.png        RGB, --size x --size
    images/val/shapes_000000.png
    annotations/train/shapes_000000.png   uint8 labels 0..4
    annotations/val/shapes_000000.png
    meta.json                             classes, palette and the settings

mmseg reads it with ``BaseSegDataset`` (``img_suffix='.png'``,
``seg_map_suffix='.png'``, ``reduce_zero_label=False``, ``metainfo`` with
:data:`CLASSES` / :data:`PALETTE`); see ``configs/demo/
shapes_upernet_morphmlp.py``. Everything is drawn from one ``numpy``
generator seeded by ``--seed``: the same command writes the same files.

Example::

    python tools/data/make_shapes_seg_dataset.py --out data/shapes_seg \
        --num-train 2000 --num-val 200 --size 64 --seed 0
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

#: Class names in label order; 0 is a real class (not ignored).
CLASSES = ('background', 'circle', 'square', 'triangle', 'ring')
#: Display colours (RGB) of the classes, for overlays and plots.
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200),
           (255, 225, 25))

#: Smallest Euclidean RGB distance between a shape's colour and the mean
#: colour of what it is painted over.
MIN_CONTRAST = 70.
#: Every shape keeps at least this fraction of its area visible when later
#: shapes overlap it.
MIN_VISIBLE = 0.85
#: Shape centres stay this many radii away from the image border (so at
#: most a sliver of a shape is cut off).
INSIDE = 0.9
#: Generator version, stored in ``meta.json``; bump it when the drawing
#: changes so that a demo does not reuse a set drawn differently.
VERSION = 1

def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random two-colour linear gradient, float32 (H, W, 3) RGB."""
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    return c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]


def _background(rng: np.random.Generator, h: int, w: int,
                texture: float = 30., clutter: bool = True) -> np.ndarray:
    """Gradient, texture and clutter: random lines and small soft blobs."""
    img = _gradient(rng, h, w)
    if texture > 0:
        # band-limited colour noise: a random texture, unlike the flat shapes
        noise = rng.normal(0, 1, size=(h, w, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(0.7, 1.5)))
        img += noise * (texture / max(float(noise.std()), 1e-6))
    if not clutter:
        return img
    for _ in range(int(rng.integers(0, 4))):
        p0 = tuple(int(v) for v in rng.integers(0, (w, h)))
        p1 = tuple(int(v) for v in rng.integers(0, (w, h)))
        color = tuple(float(v) for v in rng.uniform(0, 255, size=3))
        cv2.line(img, p0, p1, color, int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(0, 3))):
        # a soft, irregular blob: a blurred random ellipse, never a shape
        mask = np.zeros((h, w), np.float32)
        centre = tuple(int(v) for v in rng.integers(0, (w, h)))
        axes = tuple(int(v) for v in rng.integers(2, max(3, min(h, w) // 6),
                                                  size=2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    1., -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 2.)[..., None]
        img = img * (1 - mask) + rng.uniform(0, 255, size=3) * mask
    return img.astype(np.float32)


def shape_mask(kind: int, h: int, w: int, cx: float, cy: float, r: float,
               angle: float, hole: float = 0.55) -> np.ndarray:
    """The boolean mask of one shape.

    Args:
        kind (int): Class index 1..4 (circle, square, triangle, ring).
        h (int): Image height.
        w (int): Image width.
        cx (float): Centre x in pixels.
        cy (float): Centre y in pixels.
        r (float): Radius in pixels: of the circle and the ring's outer
            edge, and the centre-to-corner distance of the square and the
            triangle.
        angle (float): Rotation in radians (square and triangle).
        hole (float): Inner / outer radius of the ring.

    Returns:
        np.ndarray: bool (H, W).

    Raises:
        ValueError: ``kind`` is not 1..4.
    """
    mask = np.zeros((h, w), np.uint8)
    # draw on a 4x finer grid (cv2 shift=2) so small shapes stay round
    scale = 4

    def pt(x: float, y: float) -> List[int]:
        return [int(round(x * scale)), int(round(y * scale))]

    if kind in (1, 4):
        cv2.circle(mask, tuple(pt(cx, cy)), int(round(r * scale)), 1, -1,
                   lineType=cv2.LINE_8, shift=2)
        if kind == 4:
            cv2.circle(mask, tuple(pt(cx, cy)), int(round(r * hole * scale)),
                       0, -1, lineType=cv2.LINE_8, shift=2)
    elif kind in (2, 3):
        corners = 4 if kind == 2 else 3
        theta = angle + np.arange(corners) * 2 * np.pi / corners
        pts = np.array([pt(cx + r * np.cos(t), cy + r * np.sin(t))
                        for t in theta], np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=2)
    else:
        raise ValueError(f'kind={kind!r} is not allowed: use 1 (circle), '
                         '2 (square), 3 (triangle) or 4 (ring)')
    return mask.astype(bool)


def shapes_sample(rng: np.random.Generator, size: int,
                  max_shapes: int = 5, min_shapes: int = 2,
                  radius: Tuple[float, float] = (0.15, 0.32),
                  rotate: float = 0.5, texture: float = 30.,
                  clutter: bool = True, shading: float = 0.15,
                  noise: float = 4.) -> Tuple[np.ndarray, np.ndarray]:
    """One image and its label map.

    The defaults were tuned so that a small UperNet-MorphMLP reaches mIoU >=
    0.7 in about 2000 iterations of batch 8 at 64 x 64 (see
    ``tools/demo/shapes_seg_demo.py``): heavier occlusion, shapes cut by the
    border or unrestricted rotation slowed learning markedly.

    Args:
        rng (np.random.Generator): Randomness source.
        size (int): Image side in pixels.
        max_shapes (int): Most shapes tried per image. Defaults to 5.
        min_shapes (int): Fewest shapes tried per image (a placement that
            would hide too much of an earlier shape is dropped after 20
            tries). Defaults to 2.
        radius (tuple[float, float]): Range of the shape radius as a
            fraction of ``size``. Defaults to (0.15, 0.32).
        rotate (float): Squares and triangles turn by up to ``rotate * 45``
            degrees either way from upright. Defaults to 0.5.
        texture (float): Standard deviation of the background texture.
            Defaults to 30.
        clutter (bool): Draw random lines and blobs on the background.
            Defaults to True.
        shading (float): Weight of a random gradient mixed into each
            shape's colour. Defaults to 0.15.
        noise (float): Standard deviation of the pixel noise. Defaults to 4.

    Returns:
        tuple[np.ndarray, np.ndarray]: uint8 RGB image (S, S, 3) and uint8
        label map (S, S) with values in 0..4.
    """
    h = w = size
    img = _background(rng, h, w, texture, clutter)
    label = np.zeros((h, w), np.uint8)
    # index of the shape that owns a pixel (-1: background)
    owner = np.full((h, w), -1, np.int32)
    areas: List[int] = []
    for _ in range(int(rng.integers(min_shapes, max_shapes + 1))):
        for _attempt in range(20):
            kind = int(rng.integers(1, len(CLASSES)))
            r = rng.uniform(*radius) * size
            cx, cy = rng.uniform(r * INSIDE, size - r * INSIDE, size=2)
            angle = (np.pi / 4 if kind == 2 else -np.pi / 2) + rotate * \
                rng.uniform(-np.pi / 4, np.pi / 4)
            mask = shape_mask(kind, h, w, cx, cy, r, angle,
                              hole=rng.uniform(0.45, 0.65))
            if mask.sum() < 12:
                continue
            covered = owner[mask]
            if all((owner == i).sum() - (covered == i).sum() >=
                   MIN_VISIBLE * areas[i]
                   for i in np.unique(covered) if i >= 0):
                break
        else:
            continue
        under = img[mask].mean(0)
        for _c in range(50):
            color = rng.uniform(0, 255, size=3)
            if np.linalg.norm(color - under) >= MIN_CONTRAST:
                break
        shade = _gradient(rng, h, w) * shading + color * (1 - shading)
        img[mask] = shade[mask]
        label[mask] = kind
        owner[mask] = len(areas)
        areas.append(int(mask.sum()))
    img += rng.normal(0, noise, size=img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label


def read_settings(root: str) -> Optional[Dict[str, int]]:
    """The settings of a dataset written by this script, else ``None``."""
    path = osp.join(root, 'meta.json')
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        meta = json.load(f)
    if meta.get('generator') != 'make_shapes_seg_dataset':
        return None
    return meta.get('settings')


def make_shapes_dataset(out: str, num_train: int = 2000, num_val: int = 200,
                        size: int = 64, max_shapes: int = 5, seed: int = 0,
                        force: bool = False) -> Dict[str, object]:
    """Write the dataset; returns a summary dict.

    Args:
        out (str): ``data_root`` to create; must be new or empty unless
            ``force``.
        num_train (int): Training images (>= 1).
        num_val (int): Validation images (>= 1).
        size (int): Image side, 16..1024.
        max_shapes (int): Most shapes per image, 1..10 (at least
            ``min(2, max_shapes)`` are tried).
        seed (int): Random seed.
        force (bool): Write into a non-empty ``out``.

    Returns:
        dict: ``root``, ``classes``, ``palette``, ``settings`` (the
        arguments and the generator ``version``), the label
        ``pixel_fraction`` over both splits and ``seconds``.

    Raises:
        ValueError: a parameter is out of range or ``out`` is not empty.
    """
    for name, value, low, high in (('num_train', num_train, 1, 10**7),
                                   ('num_val', num_val, 1, 10**7),
                                   ('size', size, 16, 1024),
                                   ('max_shapes', max_shapes, 1, 10),
                                   ('seed', seed, 0, 2**63 - 1)):
        if not (isinstance(value, (int, np.integer))
                and low <= value <= high):
            raise ValueError(f'{name}={value!r} is not allowed: use an int '
                             f'in [{low}, {high}]')
    out = osp.abspath(osp.expanduser(out))
    if osp.isdir(out) and os.listdir(out) and not force:
        raise ValueError(f'out={out!r} exists and is not empty: pick a new '
                         'folder or pass force=True (--force)')
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(CLASSES), np.int64)
    for split, num in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(out, 'images', split)
        ann_dir = osp.join(out, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num):
            img, label = shapes_sample(rng, size, max_shapes,
                                       min(2, max_shapes))
            counts += np.bincount(label.ravel(), minlength=len(CLASSES))
            name = f'shapes_{i:06d}.png'
            cv2.imwrite(osp.join(img_dir, name),
                        cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            cv2.imwrite(osp.join(ann_dir, name), label)
    settings = dict(num_train=num_train, num_val=num_val, size=size,
                    max_shapes=max_shapes, seed=seed, version=VERSION)
    summary = dict(
        root=out, classes=list(CLASSES), palette=[list(p) for p in PALETTE],
        settings=settings,
        pixel_fraction=[round(float(c), 4) for c in counts / counts.sum()])
    with open(osp.join(out, 'meta.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(summary, generator='make_shapes_seg_dataset'), f,
                  indent=1)
    summary['seconds'] = round(time.perf_counter() - start, 2)
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True,
                        help='data_root to create (must be new or empty)')
    parser.add_argument('--num-train', type=int, default=2000,
                        help='training images (default 2000)')
    parser.add_argument('--num-val', type=int, default=200,
                        help='validation images (default 200)')
    parser.add_argument('--size', type=int, default=64,
                        help='image side in pixels (default 64)')
    parser.add_argument('--max-shapes', type=int, default=5,
                        help='most shapes per image (default 5)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default 0)')
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --out')
    return parser


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    """Command-line entry point: write the dataset and print a summary."""
    args = build_parser().parse_args(argv)
    try:
        summary = make_shapes_dataset(
            args.out, num_train=args.num_train, num_val=args.num_val,
            size=args.size, max_shapes=args.max_shapes, seed=args.seed,
            force=args.force)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    print(f"shapes: wrote {summary['root']} in {summary['seconds']} s")
    for key in ('classes', 'settings', 'pixel_fraction'):
        print(f'  {key}: {summary[key]}')
    return summary


if __name__ == '__main__':
    main(sys.argv[1:])
