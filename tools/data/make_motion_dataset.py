#!/usr/bin/env python
"""Generate a small synthetic video dataset whose labels need temporal order.

The dataset imitates the idea behind Something-Something (Goyal et al., ICCV
2017, "The 'something something' video database for learning and evaluating
visual common sense"): most classes come in pairs that differ only in the
direction of time (moving left / moving right, growing / shrinking, turning
clockwise / counter-clockwise, appearing / disappearing). A model that looks at
the frames as an unordered set cannot tell the two members of a pair apart,
while a model that mixes information along time can.

How the pairs are made indistinguishable without order: for every pair one
member is rendered "forward" from a randomly sampled scene and the other member
is an independently sampled scene from *the same* sampler, rendered forward and
then reversed in time. The multiset of frames of a "right to left" clip
therefore has exactly the same distribution as that of a "left to right" clip
(same positions, sizes, angles and opacities, only visited in opposite order),
so any statistic of a single frame or of the unordered set of frames has the
same distribution for both classes. Per-frame noise is i.i.d. over frames, so
it cannot break this symmetry either. This holds for the whole clip and for
any subset of frames that reversal (t -> T - 1 - t) maps onto itself, e.g.
every second frame of an odd-length clip; every second frame of an
even-length clip is not such a subset (see tools/demo/motion_demo.py).

Two further classes need no temporal order at all ("static" group): an object
standing still, and an object standing still while the camera shakes.

Clutter: a random background (flat colour, gradient, stripes, checkerboard or
smooth noise), one to three static distractor shapes, random object shape
(circle, square, triangle), colour, size, speed and motion timing, a
clock-hand orientation marker on the object (so that rotation of a circle is
visible), and light Gaussian noise on every frame. Turning objects are large
and near the centre of the frame (see :data:`GENERATOR_VERSION` for why).

Output, in mmaction2's ``VideoDataset`` layout::

    out/videos/train/000000.mp4 ...
    out/videos/val/000000.mp4 ...
    out/train_list.txt         # "videos/train/000000.mp4 <label>" per line
    out/val_list.txt
    out/label_map.txt          # one class name per line, line index = label
    out/class_groups.json      # direction / static classes and reverse pairs
    out/meta/train.jsonl       # per-clip ground truth (colours, trajectories)
    out/meta/val.jsonl

Use with ``VideoDataset(ann_file='out/train_list.txt',
data_prefix=dict(video='out'), ...)``.

Every clip is drawn from its own random stream, seeded by ``(seed, split,
class id, clip index)``: the output is deterministic given the seed, and a
smaller dataset is a prefix (per class) of a larger one with the same seed.

Example:
    python tools/data/make_motion_dataset.py --out data/motion --seed 0
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np


@dataclass(frozen=True)
class MotionClass:
    """One class of the synthetic dataset.

    Attributes:
        name: Class name written to ``label_map.txt``.
        kind: Which scene sampler renders it (``translate_x``,
            ``translate_y``, ``scale``, ``rotate``, ``fade``, ``static``,
            ``jitter``).
        reverse: Whether the rendered clip is reversed in time.
        uid: Stable id used to seed the clip random streams, independent of
            which classes are selected.
    """
    name: str
    kind: str
    reverse: bool
    uid: int


#: Every class the generator knows, in default label order. The first ten
#: are the default selection; the vertical pair is optional.
ALL_CLASSES: Tuple[MotionClass, ...] = (
    MotionClass('moving something from right to left', 'translate_x', True,
                0),
    MotionClass('moving something from left to right', 'translate_x', False,
                1),
    MotionClass('moving something towards the camera', 'scale', False, 2),
    MotionClass('moving something away from the camera', 'scale', True, 3),
    MotionClass('turning something clockwise', 'rotate', False, 4),
    MotionClass('turning something counterclockwise', 'rotate', True, 5),
    MotionClass('something appearing', 'fade', False, 6),
    MotionClass('something disappearing', 'fade', True, 7),
    MotionClass('something standing still', 'static', False, 8),
    MotionClass('camera shaking around something standing still', 'jitter',
                False, 9),
    MotionClass('moving something up', 'translate_y', True, 10),
    MotionClass('moving something down', 'translate_y', False, 11),
)

#: Names of the classes generated when ``classes`` is not given.
DEFAULT_CLASSES: Tuple[str, ...] = tuple(c.name for c in ALL_CLASSES[:10])

#: Kinds whose two classes differ only by the direction of time.
DIRECTION_KINDS = ('translate_x', 'translate_y', 'scale', 'rotate', 'fade')

SHAPES = ('circle', 'square', 'triangle')
BACKGROUNDS = ('flat', 'gradient', 'stripes', 'checker', 'noise')
EXTENSIONS = {'mp4': 'mp4v'}
SPLITS = {'train': 0, 'val': 1}

_BY_NAME = {c.name: c for c in ALL_CLASSES}
# Minimum RGB distance between the object colour and any background pixel or
# distractor colour, so that a colour mask finds the object reliably.
_MIN_OBJECT_CONTRAST = 80.0
# Minimum RGB distance between the object colour and any blend of a
# distractor with the background or with another distractor.
_MIN_BLEND_CONTRAST = 60.0
_SUBPIXEL_SHIFT = 4  # cv2 drawing with 4 fractional bits (1/16 pixel)
# Orientation marker per shape: a clock hand from the centre towards angle
# theta (a vertex of the square and the triangle), (length, half width) in
# units of the circumradius; it stays inside the shape with a margin of
# object colour. A hand sweeps a large part of the object when it turns,
# which a small dot at 32 px (about one pixel) did not.
_MARKER = {'circle': (0.75, 0.14), 'square': (0.75, 0.14),
           'triangle': (0.62, 0.12)}
#: Bumped whenever the clips a seed produces change, so that tools reusing a
#: written dataset (tools/demo/motion_demo.py) can tell it is stale.
#: 2: a clock-hand marker instead of a dot (at 32 px the dot of a small
#: object was about one pixel); turning objects are large (0.25-0.32 of the
#: frame), near the centre (+-8%) and turn 110-200 degrees; larger starting
#: sizes of the scale pair. Why centred: the sense of a turn is a spatial
#: conjunction (moving right above the pivot, left below it), and
#: MorphFC's chunk weights are tied to positions within fixed windows; the
#: small demo model learned it (100% val on the two turning classes) when
#: the pivot sits at the centre, while with randomly placed objects it
#: memorised 800 clips (train loss 0.004, val 59%) or, with 4000, stayed
#: at chance.
GENERATOR_VERSION = 2


# --------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------
def _check_int(name: str, value, minimum: int, extra: str = '') -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f'{name} must be an integer >= {minimum}{extra}, '
                         f'got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}{extra}, '
                         f'got {value!r}')
    return int(value)


def _resolve_classes(classes: Optional[Sequence[str]]) -> List[MotionClass]:
    if classes is None:
        classes = DEFAULT_CLASSES
    if isinstance(classes, str) or len(classes) == 0:
        raise ValueError('classes must be a non-empty sequence of class '
                         f'names, got {classes!r}; allowed names: '
                         f'{[c.name for c in ALL_CLASSES]}')
    resolved = []
    for name in classes:
        if name not in _BY_NAME:
            raise ValueError(f'classes contains unknown class {name!r}; '
                             'allowed names: '
                             f'{[c.name for c in ALL_CLASSES]}')
        resolved.append(_BY_NAME[name])
    if len(set(classes)) != len(classes):
        raise ValueError(f'classes must not repeat a name, got {classes!r}')
    return resolved


# --------------------------------------------------------------------------
# scene sampling
# --------------------------------------------------------------------------
def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] to an RGB float vector in [0, 255]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
           (v, p, q)][i]
    return np.array(rgb, dtype=np.float64) * 255.0


def _make_background(rng: np.random.Generator,
                     side: int) -> Tuple[np.ndarray, Dict]:
    """A textured background of shape (side, side, 3), float in [0, 255]."""
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    base = _hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.35),
                       rng.uniform(0.25, 0.8))
    amp = 0.0 if kind == 'flat' else float(rng.uniform(8.0, 30.0))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64) / side
    if kind == 'flat':
        pattern = np.zeros((side, side))
    elif kind == 'gradient':
        ang = rng.uniform(0, 2 * np.pi)
        pattern = 2.0 * ((xx - 0.5) * np.cos(ang) + (yy - 0.5) * np.sin(ang))
    elif kind == 'stripes':
        ang = rng.uniform(0, np.pi)
        freq = rng.uniform(2.0, 6.0)
        phase = rng.uniform(0, 2 * np.pi)
        pattern = np.sin(2 * np.pi * freq *
                         (xx * np.cos(ang) + yy * np.sin(ang)) + phase)
    elif kind == 'checker':
        cell = int(rng.integers(4, 13))
        ox, oy = rng.integers(0, cell, size=2)
        iy, ix = np.mgrid[0:side, 0:side]
        pattern = ((((ix + ox) // cell) + ((iy + oy) // cell)) % 2) * 2.0 - 1
    else:  # smooth noise: a coarse random grid upsampled
        grid = int(rng.integers(3, 8))
        coarse = rng.uniform(-1, 1, size=(grid, grid)).astype(np.float32)
        pattern = cv2.resize(coarse, (side, side),
                             interpolation=cv2.INTER_CUBIC).astype(np.float64)
        pattern = np.clip(pattern, -1, 1)
    tint = 1.0 + rng.uniform(-0.2, 0.2, size=3)  # slightly coloured texture
    img = base[None, None, :] + amp * pattern[..., None] * tint[None, None]
    info = dict(type=kind, base=[round(float(c), 1) for c in base],
                amplitude=round(amp, 2))
    return np.clip(img, 0, 255), info


def _vivid_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv_to_rgb(rng.random(), rng.uniform(0.6, 1.0),
                       rng.uniform(0.6, 1.0))


def _segment_distance(point: np.ndarray, a: np.ndarray,
                      b: np.ndarray) -> np.ndarray:
    """RGB distance from ``point`` to the segments ``a[i]``-``b[i]``.

    Anti-aliased edges and the encoder's chroma subsampling produce mixtures
    of neighbouring colours; a colour on such a segment can look like the
    object even though neither end does.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    ab = b - a
    denom = np.maximum((ab * ab).sum(axis=1), 1e-9)
    t = np.clip(((point - a) * ab).sum(axis=1) / denom, 0.0, 1.0)
    return np.linalg.norm(a + t[:, None] * ab - point, axis=1)


def _pick_colour(rng: np.random.Generator,
                 margin: Callable[[np.ndarray], float],
                 tries: int = 64) -> np.ndarray:
    """A vivid colour whose ``margin`` is >= 0.

    Falls back to the candidate with the largest margin after ``tries``.
    """
    best, best_margin = None, -np.inf
    for _ in range(tries):
        cand = _vivid_colour(rng)
        value = margin(cand)
        if value >= 0:
            return cand
        if value > best_margin:
            best, best_margin = cand, value
    return best


def _object_margin(background: np.ndarray) -> Callable[[np.ndarray], float]:
    """Object colours must stay away from every background pixel."""
    pixels = background[::2, ::2].reshape(-1, 3)

    def margin(cand: np.ndarray) -> float:
        return float(np.linalg.norm(pixels - cand, axis=1).min()) - \
            _MIN_OBJECT_CONTRAST

    return margin


def _distractor_margin(obj: np.ndarray, background: np.ndarray,
                       others: Sequence[np.ndarray]
                       ) -> Callable[[np.ndarray], float]:
    """Distractor colours must not look like the object, nor blend into it.

    The blends considered are distractor/background and distractor/other
    distractor edges.
    """
    ends = np.concatenate([background[::4, ::4].reshape(-1, 3)] +
                          [np.atleast_2d(o) for o in others])

    def margin(cand: np.ndarray) -> float:
        direct = float(np.linalg.norm(cand - obj)) - _MIN_OBJECT_CONTRAST
        blend = float(_segment_distance(obj, ends, cand[None]).min()) - \
            _MIN_BLEND_CONTRAST
        return min(direct, blend)

    return margin


def _progress(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Monotone progress 0 -> 1 over the clip with random timing.

    The motion starts within the first fifth of the clip and ends within the
    last fifth; the speed profile is linear or smooth (ease in/out).
    """
    last = num_frames - 1
    t_s = int(rng.integers(0, int(0.2 * last) + 1))
    t_e = last - int(rng.integers(0, int(0.2 * last) + 1))
    t = np.arange(num_frames, dtype=np.float64)
    p = np.clip((t - t_s) / max(t_e - t_s, 1), 0.0, 1.0)
    if rng.random() < 0.5:
        p = p * p * (3.0 - 2.0 * p)
    return p


def _sample_motion(kind: str, rng: np.random.Generator, num_frames: int,
                   size: int) -> Dict[str, np.ndarray]:
    """Per-frame object centre, radius, angle and opacity (forward time).

    Positions are in frame pixels (before any camera offset). The radius is
    the circumradius of the shape. Angles are in radians in image
    coordinates (y down), so an increasing angle turns clockwise on screen.
    """
    T, S = num_frames, float(size)
    margin = 0.03 * S
    theta0 = rng.uniform(0, 2 * np.pi)
    ones = np.ones(T)
    if kind in ('translate_x', 'translate_y'):
        r = rng.uniform(0.09, 0.14) * S
        travel_max = S - 2 * (r + margin)
        d = rng.uniform(0.35, 0.6) * S
        d = min(d, travel_max)
        a = rng.uniform(r + margin, S - r - margin - d)  # along the motion
        drift = rng.uniform(-0.08, 0.08) * S  # across the motion, symmetric
        b = rng.uniform(r + margin + max(0.0, -drift),
                        S - r - margin - max(0.0, drift))
        p = _progress(rng, T)
        along, across = a + d * p, b + drift * p
        cx, cy = (along, across) if kind == 'translate_x' else (across, along)
        return dict(cx=cx, cy=cy, r=r * ones, theta=theta0 * ones,
                    alpha=ones.copy())
    if kind == 'scale':
        r0 = rng.uniform(0.07, 0.1) * S
        factor = rng.uniform(2.0, 3.0)
        r1 = min(r0 * factor, 0.26 * S)
        cx, cy = rng.uniform(r1 + margin, S - r1 - margin, size=2)
        p = _progress(rng, T)
        r = r0 * (r1 / r0)**p  # geometric, like an object approaching
        return dict(cx=cx * ones, cy=cy * ones, r=r, theta=theta0 * ones,
                    alpha=ones.copy())
    if kind == 'rotate':
        r = rng.uniform(0.25, 0.32) * S
        cx, cy = S / 2 + rng.uniform(-0.08, 0.08, size=2) * S
        total = np.deg2rad(rng.uniform(110.0, 200.0))
        p = _progress(rng, T)
        return dict(cx=cx * ones, cy=cy * ones, r=r * ones,
                    theta=theta0 + total * p, alpha=ones.copy())
    r = rng.uniform(0.1, 0.16) * S
    cx, cy = rng.uniform(r + margin, S - r - margin, size=2)
    alpha = ones.copy()
    if kind == 'fade':
        # invisible at the first frame, fully visible at the last one
        if rng.random() < 0.5:  # pop in
            t_pop = int(rng.integers(max(1, T // 4), max(2, (3 * T) // 4)))
            alpha = (np.arange(T) >= t_pop).astype(np.float64)
        else:  # fade in over a few frames
            length = int(rng.integers(2, max(3, T // 2 + 1)))
            start = int(rng.integers(0, T - length))
            alpha = np.clip((np.arange(T) - start) / length, 0.0, 1.0)
    elif kind not in ('static', 'jitter'):
        raise ValueError(f'unknown motion kind {kind!r}')
    return dict(cx=cx * ones, cy=cy * ones, r=r * ones, theta=theta0 * ones,
                alpha=alpha)


# --------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------
def _polygon(shape: str, cx: float, cy: float, r: float,
             theta: float) -> np.ndarray:
    n = {'circle': 40, 'square': 4, 'triangle': 3}[shape]
    ang = theta + 2 * np.pi * np.arange(n) / n
    pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
    return np.round(pts * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)


def _draw_shape(img: np.ndarray, shape: str, cx: float, cy: float, r: float,
                theta: float, colour: np.ndarray,
                marker: Optional[np.ndarray]) -> None:
    """Draw a filled shape (and its orientation marker) in place."""
    cv2.fillPoly(img, [_polygon(shape, cx, cy, r, theta)],
                 tuple(float(c) for c in colour), lineType=cv2.LINE_AA,
                 shift=_SUBPIXEL_SHIFT)
    if marker is not None:
        length, half = _MARKER[shape]
        half = max(half * r, 0.75)
        d = np.array([np.cos(theta), np.sin(theta)])
        n = np.array([-d[1], d[0]]) * half
        c = np.array([cx, cy]) - d * half  # a little past the centre
        tip = np.array([cx, cy]) + d * length * r
        hand = np.stack([c + n, tip + n, tip - n, c - n])
        cv2.fillPoly(img, [np.round(hand * (1 << _SUBPIXEL_SHIFT)).astype(
            np.int32)], tuple(float(v) for v in marker),
                     lineType=cv2.LINE_AA, shift=_SUBPIXEL_SHIFT)


def render_clip(motion_class: MotionClass, rng: np.random.Generator,
                num_frames: int, size: int) -> Tuple[np.ndarray, Dict]:
    """Render one clip of ``motion_class``.

    Args:
        motion_class: The class to render.
        rng: Random stream of this clip (consumed).
        num_frames: Number of frames T.
        size: Frame height and width S.

    Returns:
        tuple: ``(frames, meta)``, frames a uint8 RGB array (T, S, S, 3),
        meta the ground truth of the clip: object shape and colour, per-frame
        centre/radius/angle/opacity in frame pixels, camera offsets,
        distractors and background.
    """
    T, S = num_frames, size
    jitter = max(1, int(round(0.05 * S)))
    side = S + 2 * jitter  # world canvas, cropped at the camera offset
    background, bg_info = _make_background(rng, side)

    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = _pick_colour(rng, _object_margin(background))
    marker = np.zeros(3) if colour.mean() > 110 else np.full(3, 255.0)

    world = background.astype(np.uint8)
    distractors, d_colours = [], []
    for _ in range(int(rng.integers(1, 4))):
        d_colour = _pick_colour(
            rng, _distractor_margin(colour, background, d_colours))
        d_colours.append(d_colour)
        d_shape = SHAPES[rng.integers(len(SHAPES))]
        d_r = rng.uniform(0.05, 0.11) * S
        d_x, d_y = rng.uniform(0, side, size=2)
        d_theta = rng.uniform(0, 2 * np.pi)
        _draw_shape(world, d_shape, d_x, d_y, d_r, d_theta, d_colour, None)
        distractors.append(
            dict(shape=d_shape, colour=[int(round(c)) for c in d_colour],
                 x=round(float(d_x - jitter), 2),
                 y=round(float(d_y - jitter), 2), r=round(float(d_r), 2)))

    motion = _sample_motion(motion_class.kind, rng, T, S)
    if motion_class.kind == 'jitter':
        offsets = rng.integers(-jitter, jitter + 1, size=(T, 2))
    else:
        offsets = np.zeros((T, 2), dtype=np.int64)
    noise_sigma = float(rng.uniform(2.0, 6.0))

    frames = np.empty((T, S, S, 3), dtype=np.uint8)
    for t in range(T):
        canvas = world.copy()
        alpha = float(motion['alpha'][t])
        if alpha > 0:
            layer = canvas.copy() if alpha < 1 else canvas
            _draw_shape(layer, shape, motion['cx'][t] + jitter,
                        motion['cy'][t] + jitter, motion['r'][t],
                        motion['theta'][t], colour, marker)
            if alpha < 1:
                canvas = cv2.addWeighted(layer, alpha, canvas, 1.0 - alpha, 0)
        ox, oy = offsets[t]
        crop = canvas[jitter + oy:jitter + oy + S, jitter + ox:jitter + ox + S]
        noisy = crop.astype(np.float32) + rng.normal(
            0.0, noise_sigma, size=crop.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    # camera offset (ox, oy) shifts the scene by (-ox, -oy) in the frame
    track = dict(cx=motion['cx'] - offsets[:, 0],
                 cy=motion['cy'] - offsets[:, 1], r=motion['r'],
                 theta=motion['theta'], alpha=motion['alpha'])
    if motion_class.reverse:
        frames = frames[::-1].copy()
        track = {k: v[::-1] for k, v in track.items()}
        offsets = offsets[::-1]

    def _r(values: np.ndarray, nd: int = 3) -> List[float]:
        return [round(float(v), nd) for v in values]

    meta = dict(
        shape=shape, colour=[int(round(c)) for c in colour],
        marker_colour=[int(c) for c in marker], cx=_r(track['cx']),
        cy=_r(track['cy']), radius=_r(track['r']),
        theta=_r(track['theta'], 4), alpha=_r(track['alpha']),
        camera_offset=[[int(o[0]), int(o[1])] for o in offsets],
        distractors=distractors, background=bg_info,
        noise_sigma=round(noise_sigma, 3))
    return frames, meta


def write_video(path: str, frames: np.ndarray, fps: float,
                ext: str = 'mp4') -> None:
    """Encode RGB uint8 frames (T, H, W, 3) to a video file with OpenCV.

    Args:
        path: Output file.
        frames: RGB frames.
        fps: Frame rate stored in the container.
        ext: Container; only ``'mp4'`` (MPEG-4 Part 2, fourcc ``mp4v``).

    Raises:
        RuntimeError: if OpenCV cannot open a writer or the file is empty.
    """
    T, H, W, _ = frames.shape
    fourcc = cv2.VideoWriter_fourcc(*EXTENSIONS[ext])
    writer = cv2.VideoWriter(path, fourcc, float(fps), (W, H))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV could not open a {EXTENSIONS[ext]!r} '
                           f'writer for {path} (no FFmpeg backend?)')
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    if not osp.isfile(path) or osp.getsize(path) == 0:
        raise RuntimeError(f'OpenCV wrote no data to {path}')


def _decord_defect(size: int, fps: float, ext: str) -> Optional[str]:
    """Why decord cannot read ``size`` x ``size`` clips, or None if it can.

    decord 0.6.0 returns 4-channel frames (and ``get_batch`` fails with
    ``DECORDArrayCopyFromTo: The size must exactly match``) for some frame
    sizes of these MPEG-4 files, e.g. 48 and 72, while PyAV and OpenCV read
    them fine. mmaction2's ``DecordDecode`` would then fail in the middle of
    training, so the size is refused up front. Returns None when decord is
    not installed.
    """
    try:
        import decord
    except ImportError:
        return None
    probe = np.zeros((2, size, size, 3), dtype=np.uint8)
    probe[1] = 255
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, f'probe.{ext}')
        write_video(path, probe, fps, ext)
        try:
            reader = decord.VideoReader(path)
            shape = tuple(reader.get_batch([0, 1]).asnumpy().shape)
        except Exception as err:  # decord raises its own DECORDError
            return f'decord {decord.__version__} fails: {err}'.splitlines()[0]
    if shape != (2, size, size, 3):
        return (f'decord {decord.__version__} decodes frames of shape '
                f'{shape[1:]} instead of {(size, size, 3)}')
    return None


def _clip_rng(seed: int, split: str, uid: int,
              index: int) -> np.random.Generator:
    """The random stream of one clip, independent of all other clips."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, SPLITS[split], uid, index]))


# --------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------
def make_motion_dataset(out_dir: str,
                        num_train_per_class: int = 60,
                        num_val_per_class: int = 15,
                        num_frames: int = 16,
                        size: int = 64,
                        seed: int = 0,
                        fps: float = 12.0,
                        ext: str = 'mp4',
                        classes: Optional[Sequence[str]] = None,
                        overwrite: bool = False) -> Dict:
    """Write the synthetic temporal-order dataset to ``out_dir``.

    Args:
        out_dir: Output folder (created). See the module docstring for its
            layout.
        num_train_per_class: Training clips per class (>= 1).
        num_val_per_class: Validation clips per class (>= 0).
        num_frames: Frames per clip (>= 4).
        size: Frame height and width in pixels (even, >= 32).
        seed: Seed (>= 0); equal seeds give equal annotation files and
            frames.
        fps: Frame rate stored in the videos (> 0).
        ext: Video container; only ``'mp4'`` (OpenCV fourcc ``mp4v``).
        classes: Class names to generate, in label order. Defaults to
            :data:`DEFAULT_CLASSES` (10 classes); see :data:`ALL_CLASSES`.
        overwrite: Replace an existing dataset in ``out_dir`` (only the
            files and folders listed above are removed). Without it, an
            ``out_dir`` that already holds any of them is an error.

    Returns:
        dict: Summary with ``out_dir``, ``classes``, ``num_classes``,
        ``num_frames``, ``size``, ``fps``, ``seed``, ``ext``, ``splits``
        (per split: ``list_file``, ``meta_file``, ``num_clips``),
        ``label_map``, ``class_groups`` (file paths) and ``seconds``.

    Raises:
        ValueError: on an invalid argument (the message names it).
        RuntimeError: if OpenCV cannot encode the videos.
    """
    num_train_per_class = _check_int('num_train_per_class',
                                     num_train_per_class, 1)
    num_val_per_class = _check_int('num_val_per_class', num_val_per_class, 0)
    num_frames = _check_int('num_frames', num_frames, 4)
    size = _check_int('size', size, 32, ' and even')
    if size % 2:
        raise ValueError(f'size must be an even integer >= 32 (the MPEG-4 '
                         f'encoder needs even frame sides), got {size!r}')
    seed = _check_int('seed', seed, 0)
    if isinstance(fps, bool) or not isinstance(
            fps, (int, float, np.integer, np.floating)) or not fps > 0:
        raise ValueError(f'fps must be a number > 0, got {fps!r}')
    if ext not in EXTENSIONS:
        raise ValueError(f'ext must be one of {sorted(EXTENSIONS)}, '
                         f'got {ext!r}')
    if not isinstance(out_dir, (str, os.PathLike)) or str(out_dir) == '':
        raise ValueError(f'out_dir must be a non-empty path, got {out_dir!r}')
    selected = _resolve_classes(classes)
    out_dir = osp.abspath(os.fspath(out_dir))
    ours = [osp.join(out_dir, name) for name in (
        'train_list.txt', 'val_list.txt', 'label_map.txt', 'class_groups.json',
        'meta', osp.join('videos', 'train'), osp.join('videos', 'val'))]
    present = [p for p in ours if osp.exists(p)]
    if present and not overwrite:
        listed = ', '.join(osp.relpath(p, out_dir) for p in present)
        raise ValueError(f'out_dir {out_dir!r} already holds dataset files '
                         f'({listed}); pass overwrite=True (CLI: '
                         '--overwrite) to replace them')
    defect = _decord_defect(size, fps, ext)
    if defect is not None:
        raise ValueError(f'size {size} gives videos that decord (mmaction2 '
                         f'DecordDecode) cannot read: {defect}; choose '
                         'another size, e.g. 32, 64 or 96')

    start = time.perf_counter()
    for path in present:  # only with overwrite: our own files and folders
        if osp.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    counts = {'train': num_train_per_class, 'val': num_val_per_class}
    summary_splits = {}
    for split, per_class in counts.items():
        os.makedirs(osp.join(out_dir, 'videos', split))
        lines, metas = [], []
        # interleave the classes so that any prefix of the list is balanced
        for index in range(per_class):
            for label, cls in enumerate(selected):
                rng = _clip_rng(seed, split, cls.uid, index)
                frames, meta = render_clip(cls, rng, num_frames, size)
                rel = f'videos/{split}/{len(lines):06d}.{ext}'
                write_video(osp.join(out_dir, rel), frames, fps, ext)
                lines.append(f'{rel} {label}')
                metas.append(dict(filename=rel, label=label,
                                  class_name=cls.name, index=index, **meta))
        list_file = osp.join(out_dir, f'{split}_list.txt')
        with open(list_file, 'w') as f:
            f.write(''.join(line + '\n' for line in lines))
        meta_file = osp.join(out_dir, 'meta', f'{split}.jsonl')
        with open(meta_file, 'w') as f:
            f.write(''.join(json.dumps(m) + '\n' for m in metas))
        summary_splits[split] = dict(list_file=list_file,
                                     meta_file=meta_file,
                                     num_clips=len(lines))

    label_map = osp.join(out_dir, 'label_map.txt')
    with open(label_map, 'w') as f:
        f.write(''.join(c.name + '\n' for c in selected))
    groups_file = osp.join(out_dir, 'class_groups.json')
    with open(groups_file, 'w') as f:
        json.dump(class_groups(selected), f, indent=2)
        f.write('\n')

    return dict(out_dir=out_dir, classes=[c.name for c in selected],
                num_classes=len(selected), num_frames=num_frames, size=size,
                fps=float(fps), seed=seed, ext=ext, splits=summary_splits,
                label_map=label_map, class_groups=groups_file,
                seconds=round(time.perf_counter() - start, 3))


def class_groups(selected: Sequence[MotionClass]) -> Dict:
    """Describe which selected classes need temporal order.

    Args:
        selected: The classes in label order.

    Returns:
        dict: ``direction`` / ``static`` (class names), ``direction_labels``
        / ``static_labels`` (labels), ``pairs`` / ``pair_labels`` (the two
        members of each time-reversed pair present in ``selected``),
        ``kinds`` (class name -> motion kind) and a ``note``. A class is a
        direction class when its kind is a time-reversal pair kind, even if
        its partner is not selected.
    """
    direction, static, by_kind = [], [], {}
    for label, cls in enumerate(selected):
        if cls.kind in DIRECTION_KINDS:
            direction.append((label, cls.name))
            by_kind.setdefault(cls.kind, []).append((label, cls.name))
        else:
            static.append((label, cls.name))
    pairs = [members for members in by_kind.values() if len(members) == 2]
    return dict(
        direction=[n for _, n in direction],
        direction_labels=[i for i, _ in direction],
        static=[n for _, n in static],
        static_labels=[i for i, _ in static],
        pairs=[[a[1], b[1]] for a, b in pairs],
        pair_labels=[[a[0], b[0]] for a, b in pairs],
        kinds={c.name: c.kind for c in selected},
        note=('The members of a pair are time reversals of scenes drawn from '
              'one distribution: an order-blind model can reach at best 50% '
              'within a pair (chance), a temporal model close to 100%.'))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command line of :func:`make_motion_dataset`."""
    parser = argparse.ArgumentParser(
        description='Generate a Something-Something-style synthetic video '
        'dataset whose labels need temporal order (mmaction2 VideoDataset '
        'layout).')
    parser.add_argument('--out', help='output folder (required unless '
                        '--list-classes)')
    parser.add_argument('--train-per-class', type=int, default=60)
    parser.add_argument('--val-per-class', type=int, default=15)
    parser.add_argument('--frames', type=int, default=16,
                        help='frames per clip')
    parser.add_argument('--size', type=int, default=64,
                        help='frame height and width')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--fps', type=float, default=12.0)
    parser.add_argument('--ext', default='mp4', choices=sorted(EXTENSIONS))
    parser.add_argument('--classes', nargs='+', default=None,
                        metavar='NAME',
                        help='class names in label order (quote each); '
                        'default: the 10 default classes')
    parser.add_argument('--list-classes', action='store_true',
                        help='print every known class and exit')
    parser.add_argument('--overwrite', '--force', action='store_true',
                        dest='overwrite',
                        help='replace an existing dataset in --out (--force '
                        'as in make_tiny_dataset.py and the converter)')
    args = parser.parse_args(argv)
    if args.out is None and not args.list_classes:
        parser.error('the following arguments are required: --out')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; prints the summary as JSON."""
    args = parse_args(argv)
    if args.list_classes:
        for cls in ALL_CLASSES:
            default = ' (default)' if cls.name in DEFAULT_CLASSES else ''
            print(f'{cls.name}\t[{cls.kind}]{default}')
        return 0
    try:
        summary = make_motion_dataset(
            args.out, num_train_per_class=args.train_per_class,
            num_val_per_class=args.val_per_class, num_frames=args.frames,
            size=args.size, seed=args.seed, fps=args.fps, ext=args.ext,
            classes=args.classes, overwrite=args.overwrite)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
