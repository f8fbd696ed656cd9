"""Write tiny, learnable datasets in the exact layouts the OpenMMLab hosts
read.

Each subcommand writes real encoded files (H.264 mp4, VP9 webm, JPEG, PNG)
and the annotation files that the host's own dataset class parses, so a
config written for the real dataset only needs its ``data_root`` changed:

* ``kinetics400`` - mmaction2 ``VideoDataset`` layout of Kinetics-400
  (``videos_{train,val}/<class>/<youtube_id>_<start>_<end>.mp4``,
  ``kinetics400_{train,val}_list_videos.txt``, ``label_map_k400.txt`` and the
  DeepMind-style ``annotations/kinetics_{train,val}.csv``).
* ``sthv2`` - mmaction2 ``VideoDataset`` layout of Something-Something V2
  (``videos/<id>.webm``, ``sthv2_{train,val}_list_videos.txt``,
  ``label_map_sthv2.txt`` and the original ``annotations/*.json``).
* ``ade20k`` - mmseg ``ADE20KDataset`` layout of ADEChallengeData2016
  (``images/{training,validation}/*.jpg``,
  ``annotations/{training,validation}/*.png``, labels 0..150, 0 = other).
* ``imagenet`` - mmpretrain ``ImageNet`` layout
  (``train/<wnid>/*.JPEG``, ``val/*.JPEG``, ``meta/{train,val}.txt``,
  ``meta/classes.txt``).

The content is synthetic but carries the label: video classes differ by
object colour and motion (Kinetics) or by motion alone (SSV2), segmentation
labels are the exact masks of painted shapes, and ImageNet classes differ by
colour and shape. Everything is drawn from one ``numpy`` generator seeded by
``--seed``, so the same command writes the same pixels.

The layouts follow the documentation and the list-building scripts of the
hosts (mmaction2 ``tools/data/kinetics`` and ``tools/data/sthv2``,
``tools/data/build_file_list.py``; mmseg
``docs/en/user_guides/2_dataset_prepare.md``;
mmpretrain ``ImageNet`` docstring); no code was taken from them.

Examples::

    python tools/data/make_tiny_dataset.py kinetics400 --out data/tiny_k400
    python tools/data/make_tiny_dataset.py sthv2 --out data/tiny_sthv2 \
        --num-classes 6 --frames 32
    python tools/data/make_tiny_dataset.py ade20k --out data/tiny_ade
    python tools/data/make_tiny_dataset.py imagenet --out data/tiny_in1k
"""
import argparse
import colorsys
import csv
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

# Import order matters: decord bundles an old zlib, FFmpeg and libvpx and
# loads them globally, which breaks cv2's PNG I/O and PyAV's VP8/VP9 encoders
# if decord comes first. av and cv2 first, then (lazily) decord, is safe.
import av
import cv2
import numpy as np

#: The first Kinetics-400 classes in label order (the label map is sorted).
K400_CLASSES = ('abseiling', 'air drumming', 'answering questions',
                'applauding', 'applying cream', 'archery', 'arm wrestling',
                'arranging flowers', 'assembling computer', 'auctioning')

#: Real Something-Something V2 templates with a synthetic motion each:
#: (template with [] placeholders, dx, dy, growth) in pixels per frame
#: relative to the frame size. Sorted alphabetically like the SSV2 label map.
SSV2_TEMPLATES = (
    ('Approaching [something] with your camera', 0.0, 0.0, 0.02),
    ('Holding [something]', 0.0, 0.0, 0.0),
    ('Moving [something] down', 0.0, 1.0, 0.0),
    ('Moving [something] up', 0.0, -1.0, 0.0),
    ('Moving away from [something] with your camera', 0.0, 0.0, -0.02),
    ('Pushing [something] from left to right', 1.0, 0.0, 0.0),
    ('Pushing [something] from right to left', -1.0, 0.0, 0.0),
)

#: ADE20K ids 1..10 (0 is "other", ignored with ``reduce_zero_label``).
ADE_CLASSES = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road',
               'bed', 'windowpane', 'grass')

#: The first ImageNet-1k synsets and names in label order.
IMAGENET_CLASSES = (
    ('n01440764', 'tench, Tinca tinca'),
    ('n01443537', 'goldfish, Carassius auratus'),
    ('n01484850', 'great white shark, white shark, man-eater, '
     'man-eating shark, Carcharodon carcharias'),
    ('n01491361', 'tiger shark, Galeocerdo cuvieri'),
    ('n01494475', 'hammerhead, hammerhead shark'),
    ('n01496331', 'electric ray, crampfish, numbfish, torpedo'),
    ('n01498041', 'stingray'),
    ('n01514668', 'cock'),
    ('n01514859', 'hen'),
    ('n01518878', 'ostrich, Struthio camelus'),
)

_YT_ALPHABET = np.array(
    list('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'))

#: Per subcommand defaults: classes, train per class, val per class, frames,
#: (H, W), fps, codec.
DEFAULTS = {
    'kinetics400':
    dict(num_classes=3, per_class=4, val_per_class=2, frames=48,
         size=(96, 128), fps=25, codec='libx264'),
    'sthv2':
    dict(num_classes=4, per_class=4, val_per_class=2, frames=40,
         size=(96, 128), fps=12, codec='libvpx-vp9'),
    'ade20k':
    dict(num_classes=6, per_class=3, val_per_class=1, frames=None,
         size=(96, 128)),
    'imagenet':
    dict(num_classes=4, per_class=5, val_per_class=2, frames=None,
         size=(80, 112)),
}

#: Fallback encoders when a PyAV build lacks the default one.
_CODEC_FALLBACK = {'libx264': 'mpeg4', 'libvpx-vp9': 'libvpx'}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def parse_size(text: str) -> Tuple[int, int]:
    """Parse ``'HxW'`` or ``'N'`` into ``(H, W)``.

    Args:
        text (str): Size such as ``'96x128'`` (height x width) or ``'96'``.

    Returns:
        tuple[int, int]: ``(height, width)``.

    Raises:
        argparse.ArgumentTypeError: ``text`` is not a valid size.
    """
    parts = text.lower().split('x')
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise argparse.ArgumentTypeError(
            f'--size must be "HxW" or "N" with positive integers, got '
            f'{text!r}')
    return values[0], values[1]


def _class_color(index: int, num: int) -> np.ndarray:
    """A saturated RGB colour, evenly spaced in hue over ``num`` classes."""
    r, g, b = colorsys.hsv_to_rgb((index / max(num, 1)) % 1.0, 0.85, 0.95)
    return np.array([r, g, b], dtype=np.float32) * 255.


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random two-colour gradient, float32 (H, W, 3) RGB."""
    c0, c1 = rng.uniform(40, 200, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    return c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _prepare_out(out: str, force: bool) -> str:
    """Create ``out``; refuse a non-empty directory unless ``force``."""
    out = osp.abspath(osp.expanduser(out))
    if osp.isdir(out) and os.listdir(out) and not force:
        raise SystemExit(
            f'error: --out {out} exists and is not empty; pick a new '
            'directory or pass --force to write into it (files with the '
            'same names are replaced).')
    os.makedirs(out, exist_ok=True)
    return out


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(f'{line}\n' for line in lines)


def _read_first_entry(list_file: str) -> str:
    with open(list_file, encoding='utf-8') as f:
        return f.readline().split()[0]


def _split_counts(args: argparse.Namespace) -> Dict[str, int]:
    return {'train': args.per_class, 'val': args.val_per_class}


# --------------------------------------------------------------------------
# video
# --------------------------------------------------------------------------
def video_frames(rng: np.random.Generator, num_frames: int,
                 size: Tuple[int, int], color: np.ndarray,
                 velocity: Tuple[float, float], growth: float = 0.0,
                 disc: bool = False) -> np.ndarray:
    """Draw a clip: one object moving over a drifting gradient.

    Args:
        rng (np.random.Generator): Source of the clip's randomness.
        num_frames (int): Number of frames T.
        size (tuple[int, int]): ``(H, W)``.
        color (np.ndarray): Object RGB colour, shape (3,).
        velocity (tuple[float, float]): ``(dx, dy)`` in units of
            ``min(H, W) / 64`` pixels per frame.
        growth (float): Relative change of the object size per frame.
        disc (bool): Draw a disc instead of a square.

    Returns:
        np.ndarray: uint8 RGB frames, shape (T, H, W, 3).
    """
    h, w = size
    unit = min(h, w) / 64.
    drift = rng.uniform(-0.5, 0.5, size=2) * unit
    # the background is a window sliding over a larger gradient canvas
    pad_x = int(np.ceil(abs(drift[0]) * num_frames)) + 1
    pad_y = int(np.ceil(abs(drift[1]) * num_frames)) + 1
    canvas = _background(rng, h + pad_y, w + pad_x)
    ox = 0 if drift[0] >= 0 else pad_x - 1
    oy = 0 if drift[1] >= 0 else pad_y - 1
    side0 = rng.uniform(0.22, 0.3) * min(h, w)
    dx, dy = velocity[0] * unit, velocity[1] * unit
    # start so that the object's path is centred in the frame
    span_x, span_y = dx * (num_frames - 1), dy * (num_frames - 1)
    cx0 = rng.uniform(side0, w - side0) if dx == 0 else (
        w / 2 - span_x / 2 + rng.uniform(-0.1, 0.1) * w)
    cy0 = rng.uniform(side0, h - side0) if dy == 0 else (
        h / 2 - span_y / 2 + rng.uniform(-0.1, 0.1) * h)
    noise = rng.normal(0, 4, size=(h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.empty((num_frames, h, w, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = ox + int(round(drift[0] * t))
        y = oy + int(round(drift[1] * t))
        img = canvas[y:y + h, x:x + w] + np.roll(noise, shift=t * 3, axis=1)
        side = max(side0 * (1 + growth * t), 3.)
        cx, cy = cx0 + dx * t, cy0 + dy * t
        if disc:
            mask = (xx - cx)**2 + (yy - cy)**2 <= (side / 2)**2
        else:
            mask = ((np.abs(xx - cx) <= side / 2) &
                    (np.abs(yy - cy) <= side / 2))
        img[mask] = color
        frames[t] = _to_uint8(img)
    return frames


def encode_video(path: str, frames: np.ndarray, fps: int,
                 codec: str) -> str:
    """Encode RGB frames with PyAV; returns the codec actually used.

    Args:
        path (str): Output file; the container follows the extension.
        frames (np.ndarray): uint8 (T, H, W, 3) RGB, H and W even.
        fps (int): Frame rate.
        codec (str): PyAV encoder name; a missing ``libx264`` /
            ``libvpx-vp9`` falls back to ``mpeg4`` / ``libvpx`` (VP8).

    Returns:
        str: The encoder used.
    """
    try:
        av.codec.Codec(codec, 'w')
    except Exception:  # noqa: BLE001 - PyAV raises several error types
        if codec not in _CODEC_FALLBACK:
            raise ValueError(
                f'codec={codec!r} is not available in this PyAV build')
        codec = _CODEC_FALLBACK[codec]
    _, h, w, _ = frames.shape
    # Reproducible bytes for a seed: bitexact muxing (Matroska otherwise
    # writes a random segment UID and the date), one encoder thread and
    # explicit timestamps. x264 is only reproducible here with the
    # 'ultrafast' preset (slower presets gave different bitstreams for the
    # same frames from run to run); libvpx is with any deadline.
    with av.open(path, mode='w',
                 options={'fflags': '+bitexact'}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, 'yuv420p'
        stream.codec_context.thread_count = 1
        options = {'flags': '+bitexact'}
        if codec in ('libx264', 'h264'):
            options.update(preset='ultrafast', crf='18')
        elif codec.startswith('libvpx') or codec in ('vp8', 'vp9'):
            options.update({'deadline': 'realtime', 'cpu-used': '8',
                            'crf': '10', 'b': '0' if 'vp9' in codec else
                            '2M'})
        elif codec == 'mpeg4':
            options.update(b='2M')
        stream.options = options
        for index, frame in enumerate(frames):
            vframe = av.VideoFrame.from_ndarray(frame, format='rgb24')
            vframe.pts = index
            for packet in stream.encode(vframe):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return codec


def probe_decord(path: str, num_frames: int) -> Optional[str]:
    """Check that decord reads ``path``; returns an error text or None.

    decord 0.6.0 cannot return frames of some widths (48 and 72 among
    32..256 here: "DECORDArrayCopyFromTo: The size must exactly match"),
    whatever the codec. mmaction2 configs default to ``DecordInit``, so the
    writers check their first clip. Returns None when decord is missing.
    """
    try:
        import decord
    except ImportError:
        return None
    try:
        reader = decord.VideoReader(path)
        if len(reader) != num_frames:
            return f'decord counts {len(reader)} frames, wrote {num_frames}'
        reader.get_batch([0, num_frames - 1]).asnumpy()
    except Exception as err:  # noqa: BLE001 - decord raises its own types
        return f'decord cannot decode {path}: {err}'.splitlines()[0]
    return None


def _warn_decord(path: str, args: argparse.Namespace,
                 summary: Dict[str, object]) -> None:
    problem = probe_decord(path, args.frames)
    summary['decord_ok'] = problem is None
    if problem is not None:
        h, w = args.size
        print(f'warning: {problem}; clips of size {h}x{w} will not load '
              'with mmaction2 DecordInit (use PyAVInit/OpenCVInit or another '
              '--size, e.g. a width that is a multiple of 32)',
              file=sys.stderr)


def _check_video_args(args: argparse.Namespace) -> None:
    h, w = args.size
    if h % 2 or w % 2 or min(h, w) < 32:
        raise ValueError(
            f'--size={h}x{w} is not allowed for videos: height and width '
            'must be even (yuv420p) and at least 32')
    if args.frames < 8:
        raise ValueError(f'--frames={args.frames} is too short; use >= 8')


def make_kinetics400(args: argparse.Namespace) -> Dict[str, object]:
    """Write a tiny Kinetics-400 in mmaction2's ``VideoDataset`` layout.

    Tree (``data_root`` = ``--out``)::

        kinetics400_train_list_videos.txt  "<class>/<ytid>_<s>_<e>.mp4 <label>"
        kinetics400_val_list_videos.txt
        label_map_k400.txt                  class names, one per line
        annotations/kinetics_{train,val}.csv
        videos_train/<class_with_underscores>/<ytid>_<s:06d>_<e:06d>.mp4
        videos_val/<class_with_underscores>/...

    Labels index the alphabetically sorted class names, like mmaction2's
    ``build_file_list.py``. Each class has its own object colour, shape and
    direction of motion.

    Args:
        args (argparse.Namespace): Parsed command-line options.

    Returns:
        dict: Summary of what was written.
    """
    _check_video_args(args)
    out = _prepare_out(args.out, args.force)
    rng = np.random.default_rng(args.seed)
    names = [
        K400_CLASSES[i]
        if i < len(K400_CLASSES) else f'synthetic class {i:03d}'
        for i in range(args.num_classes)
    ]
    names = sorted(names)
    _write_lines(osp.join(out, 'label_map_k400.txt'), names)
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    summary = {'root': out, 'label_map': osp.join(out, 'label_map_k400.txt')}
    codec_used = set()
    for split, per_class in _split_counts(args).items():
        lines, rows = [], []
        for label, name in enumerate(names):
            dirname = name.replace(' ', '_')
            os.makedirs(osp.join(out, f'videos_{split}', dirname),
                        exist_ok=True)
            angle = 2 * np.pi * label / args.num_classes
            for _ in range(per_class):
                ytid = ''.join(rng.choice(_YT_ALPHABET, size=11))
                start = int(rng.integers(0, 300))
                stem = f'{ytid}_{start:06d}_{start + 10:06d}'
                rel = f'{dirname}/{stem}.mp4'
                frames = video_frames(
                    rng, args.frames, args.size,
                    _class_color(label, args.num_classes),
                    (np.cos(angle), np.sin(angle)), disc=bool(label % 2))
                codec_used.add(
                    encode_video(
                        osp.join(out, f'videos_{split}', rel), frames,
                        args.fps, args.codec))
                lines.append(f'{rel} {label}')
                rows.append([name, ytid, start, start + 10, split])
        list_file = osp.join(out, f'kinetics400_{split}_list_videos.txt')
        _write_lines(list_file, lines)
        csv_name = f'kinetics_{split}.csv'
        with open(osp.join(out, 'annotations', csv_name), 'w',
                  newline='') as f:
            writer = csv.writer(f)
            writer.writerow(
                ['label', 'youtube_id', 'time_start', 'time_end', 'split'])
            writer.writerows(rows)
        summary[f'{split}_list'] = list_file
        summary[f'num_{split}'] = len(lines)
    first = _read_first_entry(summary['train_list'])
    _warn_decord(osp.join(out, 'videos_train', first), args, summary)
    summary.update(
        classes=names, codec=sorted(codec_used), frames=args.frames,
        size=tuple(args.size))
    return summary


def make_sthv2(args: argparse.Namespace) -> Dict[str, object]:
    """Write a tiny Something-Something V2 in mmaction2's layout.

    Tree (``data_root`` = ``--out``)::

        sthv2_train_list_videos.txt       "<id>.webm <label>"
        sthv2_val_list_videos.txt
        label_map_sthv2.txt              templates, one per line, label order
        annotations/something-something-v2-labels.json      {template: "idx"}
        annotations/something-something-v2-{train,validation}.json
        videos/<id>.webm                  train and val clips side by side

    The classes are motion templates (up, down, left to right, towards the
    camera, ...): every clip draws its object in a random colour, so only the
    motion tells the classes apart, as in SSV2. Clips are VP9 in WebM like
    the released dataset.

    Args:
        args (argparse.Namespace): Parsed command-line options.

    Returns:
        dict: Summary of what was written.
    """
    _check_video_args(args)
    out = _prepare_out(args.out, args.force)
    rng = np.random.default_rng(args.seed)
    templates = list(SSV2_TEMPLATES[:args.num_classes])
    for i in range(len(templates), args.num_classes):
        deg = int(round(360 * i / args.num_classes))
        angle = np.deg2rad(deg)
        templates.append((f'Sliding [something] towards {deg} degrees',
                          float(np.cos(angle)), float(np.sin(angle)), 0.0))
    templates.sort(key=lambda t: t[0].replace('[', '').replace(']', ''))
    plain = [t[0].replace('[', '').replace(']', '') for t in templates]
    ann_dir = osp.join(out, 'annotations')
    video_dir = osp.join(out, 'videos')
    os.makedirs(ann_dir, exist_ok=True)
    os.makedirs(video_dir, exist_ok=True)
    with open(osp.join(ann_dir, 'something-something-v2-labels.json'),
              'w') as f:
        json.dump({name: str(i) for i, name in enumerate(plain)}, f, indent=1)
    _write_lines(osp.join(out, 'label_map_sthv2.txt'), plain)
    summary = {'root': out, 'label_map': osp.join(out, 'label_map_sthv2.txt')}
    next_id = int(rng.integers(1000, 9000))
    codec_used = set()
    for split, per_class in _split_counts(args).items():
        lines, items = [], []
        for label, (template, dx, dy, growth) in enumerate(templates):
            for _ in range(per_class):
                vid = str(next_id)
                next_id += int(rng.integers(1, 50))
                color = rng.uniform(30, 255, size=3).astype(np.float32)
                frames = video_frames(rng, args.frames, args.size, color,
                                      (dx, dy), growth=growth,
                                      disc=bool(rng.integers(2)))
                codec_used.add(
                    encode_video(
                        osp.join(video_dir, f'{vid}.webm'), frames, args.fps,
                        args.codec))
                lines.append(f'{vid}.webm {label}')
                items.append({
                    'id': vid,
                    'label': template.replace('[something]', 'a box').lower(),
                    'template': template,
                    'placeholders': ['a box'],
                })
        list_file = osp.join(out, f'sthv2_{split}_list_videos.txt')
        _write_lines(list_file, lines)
        json_split = 'validation' if split == 'val' else split
        with open(
                osp.join(ann_dir, f'something-something-v2-{json_split}.json'),
                'w') as f:
            json.dump(items, f, indent=1)
        summary[f'{split}_list'] = list_file
        summary[f'num_{split}'] = len(lines)
    first = _read_first_entry(summary['train_list'])
    _warn_decord(osp.join(video_dir, first), args, summary)
    summary.update(
        classes=plain, codec=sorted(codec_used), frames=args.frames,
        size=tuple(args.size))
    return summary


# --------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------
def _paint_shape(rng: np.random.Generator, img: np.ndarray,
                 label_map: Optional[np.ndarray], label: int,
                 color: np.ndarray, min_frac: float, max_frac: float,
                 kind: Optional[int] = None) -> None:
    """Paint a rectangle (kind 0), ellipse (1) or triangle (2) in place.

    Position and extent are random; ``kind=None`` picks a random shape.
    """
    h, w = img.shape[:2]
    mask = np.zeros((h, w), dtype=np.uint8)
    bh = int(rng.uniform(min_frac, max_frac) * h)
    bw = int(rng.uniform(min_frac, max_frac) * w)
    y0 = int(rng.integers(0, max(h - bh, 1)))
    x0 = int(rng.integers(0, max(w - bw, 1)))
    if kind is None:
        kind = int(rng.integers(3))
    if kind == 0:
        cv2.rectangle(mask, (x0, y0), (x0 + bw, y0 + bh), 1, -1)
    elif kind == 1:
        cv2.ellipse(mask, (x0 + bw // 2, y0 + bh // 2),
                    (max(bw // 2, 1), max(bh // 2, 1)), 0, 0, 360, 1, -1)
    else:
        pts = np.array([[x0, y0 + bh], [x0 + bw, y0 + bh],
                        [x0 + bw // 2, y0]], dtype=np.int32)
        cv2.fillPoly(mask, [pts], 1)
    sel = mask.astype(bool)
    img[sel] = color
    if label_map is not None:
        label_map[sel] = label


def ade_sample(rng: np.random.Generator, size: Tuple[int, int],
               featured: int, num_classes: int) -> Tuple[np.ndarray,
                                                         np.ndarray]:
    """One ADE-style image and its label map.

    Args:
        rng (np.random.Generator): Randomness source.
        size (tuple[int, int]): ``(H, W)``.
        featured (int): ADE id (1..num_classes) painted as the largest shape.
        num_classes (int): ADE ids 1..num_classes are used; id 1 is the
            background ("wall"), id 0 ("other") marks a thin ignored band.

    Returns:
        tuple[np.ndarray, np.ndarray]: uint8 RGB image (H, W, 3) and uint8
        label map (H, W) with values in 0..num_classes.
    """
    h, w = size
    label = np.ones((h, w), dtype=np.uint8)
    img = np.empty((h, w, 3), dtype=np.float32)
    img[:] = _class_color(0, num_classes)
    # "other" (0): a band along one border with an unrelated colour
    band = max(h // 12, 2)
    if rng.integers(2):
        label[:band] = 0
        img[:band] = rng.uniform(0, 255, size=3)
    else:
        label[:, -band:] = 0
        img[:, -band:] = rng.uniform(0, 255, size=3)
    order = [featured] + list(
        rng.integers(2, num_classes + 1, size=int(rng.integers(1, 3))))
    for i, cls_id in enumerate(order):
        fracs = (0.45, 0.7) if i == 0 else (0.15, 0.35)
        _paint_shape(rng, img, label, int(cls_id),
                     _class_color(int(cls_id) - 1, num_classes), *fracs)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return _to_uint8(img), label


def make_ade20k(args: argparse.Namespace) -> Dict[str, object]:
    """Write a tiny ADEChallengeData2016 in mmseg's ``ADE20KDataset`` layout.

    Tree (``data_root`` = ``--out``)::

        images/training/ADE_train_00000001.jpg
        images/validation/ADE_val_00000001.jpg
        annotations/training/ADE_train_00000001.png      uint8, 0..150
        annotations/validation/ADE_val_00000001.png

    Label 0 is "other" (ignored: ``reduce_zero_label=True`` maps 0 -> 255 and
    k -> k - 1). ADE ids 1..``--num-classes`` are painted as shapes whose
    colour identifies the class, so a segmentation head can learn them.
    ``--per-class`` images per class go to training (each features one class
    as its largest shape), ``--val-per-class`` to validation.

    Args:
        args (argparse.Namespace): Parsed command-line options.

    Returns:
        dict: Summary of what was written.
    """
    if not 2 <= args.num_classes <= 150:
        raise ValueError(
            f'--num-classes={args.num_classes} is not allowed for ade20k: '
            'use 2..150 (ADE20K has 150 classes)')
    out = _prepare_out(args.out, args.force)
    rng = np.random.default_rng(args.seed)
    summary = {'root': out}
    for split, per_class in _split_counts(args).items():
        sub = 'training' if split == 'train' else 'validation'
        prefix = 'ADE_train' if split == 'train' else 'ADE_val'
        img_dir = osp.join(out, 'images', sub)
        ann_dir = osp.join(out, 'annotations', sub)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        index = 0
        for _ in range(per_class):
            for featured in range(1, args.num_classes + 1):
                index += 1
                img, label = ade_sample(rng, args.size, featured,
                                        args.num_classes)
                stem = f'{prefix}_{index:08d}'
                cv2.imwrite(
                    osp.join(img_dir, f'{stem}.jpg'),
                    cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imwrite(osp.join(ann_dir, f'{stem}.png'), label)
        summary[f'num_{split}'] = index
        summary[f'{split}_dirs'] = (img_dir, ann_dir)
    summary.update(
        classes=[
            ADE_CLASSES[i] if i < len(ADE_CLASSES) else f'ade id {i + 1}'
            for i in range(args.num_classes)
        ],
        size=tuple(args.size))
    return summary


def imagenet_sample(rng: np.random.Generator, size: Tuple[int, int],
                    label: int, num_classes: int) -> np.ndarray:
    """One image of class ``label``: class colour and shape on a gradient.

    Args:
        rng (np.random.Generator): Randomness source.
        size (tuple[int, int]): ``(H, W)``.
        label (int): Class index.
        num_classes (int): Number of classes (spreads the colours).

    Returns:
        np.ndarray: uint8 RGB image (H, W, 3).
    """
    h, w = size
    img = _background(rng, h, w)
    color = _class_color(label, num_classes)
    for _ in range(2):
        # two shapes of the class's kind: rectangle, ellipse or triangle
        _paint_shape(rng, img, None, label, color, 0.3, 0.55, kind=label % 3)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return _to_uint8(img)


def make_imagenet(args: argparse.Namespace) -> Dict[str, object]:
    """Write a tiny ImageNet-1k in mmpretrain's ``ImageNet`` layout.

    Tree (``data_root`` = ``--out``)::

        train/<wnid>/<wnid>_<n>.JPEG
        val/ILSVRC2012_val_<8 digits>.JPEG
        meta/train.txt      "<wnid>/<wnid>_<n>.JPEG <label>"
        meta/val.txt        "ILSVRC2012_val_<8 digits>.JPEG <label>"
        meta/classes.txt    class names in label order (pass as ``classes=``)

    Labels follow the sorted synsets, as in ImageNet-1k. With
    ``ImageNet(data_root=..., split='train')`` mmpretrain reads
    ``meta/train.txt`` and prefixes ``train/``.

    Args:
        args (argparse.Namespace): Parsed command-line options.

    Returns:
        dict: Summary of what was written.
    """
    out = _prepare_out(args.out, args.force)
    rng = np.random.default_rng(args.seed)
    classes = [
        IMAGENET_CLASSES[i] if i < len(IMAGENET_CLASSES) else
        (f'n99{i:06d}', f'synthetic class {i}')
        for i in range(args.num_classes)
    ]
    os.makedirs(osp.join(out, 'meta'), exist_ok=True)
    _write_lines(osp.join(out, 'meta', 'classes.txt'), [c[1] for c in classes])
    summary = {'root': out, 'classes_file': osp.join(out, 'meta',
                                                     'classes.txt')}
    val_index = 0
    for split, per_class in _split_counts(args).items():
        lines = []
        for label, (wnid, _) in enumerate(classes):
            for k in range(per_class):
                img = imagenet_sample(rng, args.size, label, args.num_classes)
                if split == 'train':
                    number = int(rng.integers(1, 99999)) * 100 + k
                    rel = f'{wnid}/{wnid}_{number}.JPEG'
                else:
                    val_index += int(rng.integers(1, 40))
                    rel = f'ILSVRC2012_val_{val_index:08d}.JPEG'
                path = osp.join(out, split, rel)
                os.makedirs(osp.dirname(path), exist_ok=True)
                cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 92])
                lines.append(f'{rel} {label}')
        ann = osp.join(out, 'meta', f'{split}.txt')
        _write_lines(ann, lines)
        summary[f'{split}_list'] = ann
        summary[f'num_{split}'] = len(lines)
    summary.update(classes=[c[0] for c in classes], size=tuple(args.size))
    return summary


MAKERS = {
    'kinetics400': make_kinetics400,
    'sthv2': make_sthv2,
    'ade20k': make_ade20k,
    'imagenet': make_imagenet,
}


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per dataset."""
    parser = argparse.ArgumentParser(
        description='Write a tiny dataset in an OpenMMLab host layout.')
    sub = parser.add_subparsers(dest='dataset', required=True,
                                metavar='{' + ','.join(MAKERS) + '}')
    for name, defaults in DEFAULTS.items():
        summary_line = (MAKERS[name].__doc__ or '').split('\n')[0]
        p = sub.add_parser(name, help=summary_line.replace('``', ''))
        p.add_argument('--out', required=True,
                       help='data_root to create (must be empty or new)')
        p.add_argument('--num-classes', type=int,
                       default=defaults['num_classes'],
                       help=f'number of classes (default '
                       f'{defaults["num_classes"]})')
        p.add_argument('--per-class', type=int,
                       default=defaults['per_class'],
                       help='training samples per class (default '
                       f'{defaults["per_class"]})')
        p.add_argument('--val-per-class', type=int,
                       default=defaults['val_per_class'],
                       help='validation samples per class (default '
                       f'{defaults["val_per_class"]})')
        p.add_argument('--seed', type=int, default=0,
                       help='random seed (default 0)')
        p.add_argument('--size', type=parse_size,
                       default=defaults['size'],
                       help='frame/image size "HxW" (default '
                       f'{defaults["size"][0]}x{defaults["size"][1]})')
        if defaults['frames'] is not None:
            p.add_argument('--frames', type=int, default=defaults['frames'],
                           help=f'frames per clip (default '
                           f'{defaults["frames"]})')
            p.add_argument('--fps', type=int, default=defaults['fps'],
                           help=f'frame rate (default {defaults["fps"]})')
            p.add_argument('--codec', default=defaults['codec'],
                           help=f'PyAV encoder (default {defaults["codec"]})')
        else:
            p.add_argument('--frames', type=int, default=None,
                           help='ignored for image datasets')
        p.add_argument('--force', '--overwrite', action='store_true',
                       dest='force',
                       help='write into a non-empty --out (--overwrite as '
                       'in make_motion_dataset.py and tools/train.py)')
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.num_classes < 1:
        raise ValueError(
            f'--num-classes={args.num_classes} is not allowed: use >= 1')
    if args.dataset == 'sthv2' and args.num_classes > 174:
        raise ValueError(
            f'--num-classes={args.num_classes} is not allowed for sthv2: '
            'use 1..174 (SSV2 has 174 templates)')
    if args.dataset == 'kinetics400' and args.num_classes > 400:
        raise ValueError(
            f'--num-classes={args.num_classes} is not allowed for '
            'kinetics400: use 1..400')
    if args.dataset == 'imagenet' and args.num_classes > 1000:
        raise ValueError(
            f'--num-classes={args.num_classes} is not allowed for imagenet: '
            'use 1..1000')
    if args.per_class < 1 or args.val_per_class < 0:
        raise ValueError(
            f'--per-class={args.per_class} / --val-per-class='
            f'{args.val_per_class} are not allowed: use >= 1 and >= 0')


def make_dataset(argv: Optional[List[str]] = None) -> Dict[str, object]:
    """Parse ``argv`` and write the dataset; returns the summary dict."""
    args = build_parser().parse_args(argv)
    _validate(args)
    start = time.perf_counter()
    summary = MAKERS[args.dataset](args)
    summary['seconds'] = round(time.perf_counter() - start, 2)
    summary['dataset'] = args.dataset
    return summary


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point: write the dataset and print a summary."""
    try:
        summary = make_dataset(argv)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    print(f'{summary["dataset"]}: wrote {summary["root"]} in '
          f'{summary["seconds"]} s')
    for key, value in summary.items():
        if key not in ('dataset', 'root', 'seconds'):
            print(f'  {key}: {value}')


if __name__ == '__main__':
    main(sys.argv[1:])
