"""The image job: UperNet-MorphMLP segments synthetic shapes on a CPU.

Steps (nothing is downloaded):

1. write the shapes segmentation set
   (``tools/data/make_shapes_seg_dataset.py``: background / circle / square /
   triangle / ring, random colours not tied to the class, clutter,
   rotations, overlaps; reused when the folder already holds it with the
   same settings, refused when it holds anything else);
2. train ``configs/demo/shapes_upernet_morphmlp.py`` with ``tools/train.py``,
   then test the last checkpoint with ``tools/test.py`` (predictions dumped);
3. score the dump (per-class IoU summed over the validation set, as mmseg's
   ``IoUMetric``; its own mIoU is read back from the test log as a check),
   print a summary and write ``summary.json`` and ``predictions.png`` (a few
   validation images, ground truth and prediction side by side).

Each run writes into a fresh ``<work-dir>/<timestamp>/``; nothing from an
earlier run is overwritten. Training and testing run as subprocesses with
``OMP_NUM_THREADS=1`` unless it is set: on a small shared CPU, oversubscribed
OpenMP threads are many times slower than one.

At the defaults (2000 training / 200 validation images of 64 x 64, 2000
iterations of batch 8) one run took about 230 s on 2 CPU cores and reached
val mIoU 0.82 (training seed 0) and 0.83 (seed 1).

Example::

    python tools/demo/shapes_seg_demo.py                  # defaults
    python tools/demo/shapes_seg_demo.py --iters 300      # quicker, lower mIoU
"""
import argparse
import glob
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'shapes_upernet_morphmlp.py')
sys.path.insert(0, osp.join(ROOT, 'tools', 'data'))

from make_shapes_seg_dataset import (CLASSES, PALETTE,  # noqa: E402
                                     VERSION, make_shapes_dataset,
                                     read_settings)

#: Image side; the config's crop_size.
SIZE = 64


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line; bad values exit with a message."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root',
                        default=osp.join(ROOT, 'data', 'shapes_seg'),
                        help='dataset folder (written if new or empty)')
    parser.add_argument('--work-dir',
                        default=osp.join(ROOT, 'work_dirs', 'shapes_seg_demo'),
                        help='runs go to <work-dir>/<timestamp>/')
    parser.add_argument('--iters', type=int, default=None,
                        help="training iterations (default: the config's "
                        'max_iters)')
    parser.add_argument('--seed', type=int, default=0,
                        help='training seed (default 0)')
    parser.add_argument('--data-seed', type=int, default=0,
                        help='seed of the generated dataset (default 0)')
    parser.add_argument('--num-train', type=int, default=2000,
                        help='training images to generate (default 2000)')
    parser.add_argument('--num-val', type=int, default=200,
                        help='validation images to generate (default 200)')
    parser.add_argument('--num-show', type=int, default=6,
                        help='validation images drawn in predictions.png '
                        '(default 6)')
    args = parser.parse_args(argv)
    for name, low in (('iters', 1), ('num_train', 1), ('num_val', 1),
                      ('num_show', 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            parser.error(f'--{name.replace("_", "-")}={value} is not '
                         f'allowed: use an int >= {low}')
    return args


def ensure_dataset(args: argparse.Namespace) -> None:
    """Write the dataset unless the same one is already there.

    Raises:
        SystemExit: ``--data-root`` holds a shapes set with other settings,
            or anything that this generator did not write.
    """
    make_args = dict(num_train=args.num_train, num_val=args.num_val,
                     size=SIZE, max_shapes=5, seed=args.data_seed)
    wanted = dict(make_args, version=VERSION)
    found = read_settings(args.data_root)
    if found is not None:
        if found == wanted:
            print(f'[shapes_seg_demo] reusing dataset {args.data_root}')
            return
        raise SystemExit(
            f'--data-root {args.data_root} holds a shapes dataset made with '
            f'other settings ({found}, wanted {wanted}); pass another '
            '--data-root or delete it')
    if osp.exists(args.data_root) and (not osp.isdir(args.data_root)
                                       or os.listdir(args.data_root)):
        raise SystemExit(
            f'--data-root {args.data_root} exists and is not a shapes '
            'dataset written by this demo; pass an empty or new folder')
    print(f'[shapes_seg_demo] writing dataset to {args.data_root}',
          flush=True)
    make_shapes_dataset(args.data_root, **make_args)


def write_config(path: str, data_root: str,
                 iters: Optional[int] = None) -> str:
    """Write a config inheriting the demo config with this run's paths.

    With ``iters`` the schedule is rescaled: warm-up of ``min(100, iters //
    10)`` iterations, poly decay to ``iters``, validation three times and
    one checkpoint at the end.
    """
    lines = [
        f'_base_ = {CONFIG!r}',
        f'data_root = {data_root!r}',
        'train_dataloader = dict(dataset=dict(data_root=data_root))',
        'val_dataloader = dict(dataset=dict(data_root=data_root))',
        'test_dataloader = val_dataloader',
    ]
    if iters is not None:
        warmup = max(1, min(100, iters // 10))
        lines += [
            f'train_cfg = dict(max_iters={iters}, '
            f'val_interval={max(1, iters // 3)})',
            'param_scheduler = [dict(type="LinearLR", start_factor=0.01, '
            f'by_epoch=False, begin=0, end={warmup}), dict(type="PolyLR", '
            f'eta_min=1e-5, power=1.0, by_epoch=False, begin={warmup}, '
            f'end={max(iters, warmup + 1)})]',
            f'default_hooks = dict(checkpoint=dict(interval={iters}), '
            f'logger=dict(interval={min(50, iters)}))',
        ]
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def run(cmd: Sequence[str]) -> None:
    """Run a tool; one OpenMP thread unless ``OMP_NUM_THREADS`` is set."""
    print('[shapes_seg_demo] $ ' + ' '.join(cmd), flush=True)
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    subprocess.run(list(cmd), check=True, cwd=ROOT, env=env)


def _mask(entry) -> np.ndarray:
    """A (H, W) int64 label map from a dumped ``PixelData`` dict."""
    data = entry['data'] if isinstance(entry, dict) else entry.data
    return np.asarray(data).reshape(np.asarray(data).shape[-2:]).astype(
        np.int64)


def score(dump: str, num_classes: int = len(CLASSES)) -> Dict[str, object]:
    """IoU per class and mIoU from a ``tools/test.py --dump`` file.

    Intersections and unions are summed over all images before dividing,
    as mmseg's ``IoUMetric``; label 255 is ignored. A class absent from
    both ground truth and prediction has IoU ``None`` and is left out of
    the mean.

    Returns:
        dict: ``mIoU``, ``aAcc`` (fractions in [0, 1]), ``per_class_iou``
        (class name -> IoU or None) and ``num_images``.
    """
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for p in preds:
        gt = _mask(p['gt_sem_seg'])
        pred = _mask(p['pred_sem_seg'])
        keep = gt != 255
        confusion += np.bincount(
            gt[keep] * num_classes + pred[keep],
            minlength=num_classes**2).reshape(num_classes, num_classes)
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    ious = [float(i / u) if u > 0 else None for i, u in zip(inter, union)]
    valid = [v for v in ious if v is not None]
    return dict(
        mIoU=float(np.mean(valid)) if valid else 0.,
        aAcc=float(inter.sum() / max(confusion.sum(), 1)),
        per_class_iou=dict(zip(CLASSES, ious)),
        num_images=len(preds))


def read_host_metrics(test_dir: str) -> Dict[str, float]:
    """mmseg ``IoUMetric`` results that mmengine wrote for the test run."""
    for path in sorted(glob.glob(osp.join(test_dir, '*', '*.json'))):
        with open(path, encoding='utf-8') as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError:
                continue
        if isinstance(record, dict) and 'mIoU' in record:
            return {k: float(v) for k, v in record.items()
                    if k in ('aAcc', 'mIoU', 'mAcc')}
    return {}


def read_losses(train_dir: str) -> Dict[str, List[float]]:
    """Training loss per logged iteration (mmengine ``LocalVisBackend``)."""
    curve = dict(iter=[], loss=[])
    for path in sorted(glob.glob(osp.join(train_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path, encoding='utf-8') as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec and 'iter' in rec:
                    curve['iter'].append(rec['iter'])
                    curve['loss'].append(rec['loss'])
    return curve


def plot_predictions(dump: str, out_png: str, num_show: int) -> str:
    """Draw validation images with ground truth and prediction side by side.

    One row per image: the image, the ground truth and the prediction in the
    class palette, and the image's own mIoU in the title.
    """
    import cv2
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    preds = sorted(preds, key=lambda p: p['img_path'])[:num_show]
    palette = np.array(PALETTE, np.uint8)
    fig, axes = plt.subplots(len(preds), 3, figsize=(6.6, 2.2 * len(preds)),
                             squeeze=False)
    for row, p in zip(axes, preds):
        img = cv2.cvtColor(cv2.imread(p['img_path']), cv2.COLOR_BGR2RGB)
        gt, pred = _mask(p['gt_sem_seg']), _mask(p['pred_sem_seg'])
        ious = []
        for c in range(len(CLASSES)):
            union = ((gt == c) | (pred == c)).sum()
            if union:
                ious.append(((gt == c) & (pred == c)).sum() / union)
        panels = [(img, osp.basename(p['img_path'])),
                  (palette[np.clip(gt, 0, len(CLASSES) - 1)], 'ground truth'),
                  (palette[np.clip(pred, 0, len(CLASSES) - 1)],
                   f'prediction (mIoU {np.mean(ious):.2f})')]
        for ax, (panel, title) in zip(row, panels):
            ax.imshow(panel, interpolation='nearest')
            ax.set_title(title, fontsize=8)
            ax.axis('off')
    handles = [Patch(color=np.array(c) / 255., label=n)
               for n, c in zip(CLASSES, PALETTE)]
    fig.legend(handles=handles, loc='lower center', ncol=len(CLASSES),
               fontsize=8, frameon=False)
    fig.suptitle('UperNet-MorphMLP on the synthetic shapes set (val)',
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    """Generate, train, test, score; returns the summary dict."""
    args = parse_args(argv)
    start = time.time()
    load_start = os.getloadavg()
    ensure_dataset(args)
    run_dir = osp.join(osp.abspath(args.work_dir),
                       time.strftime('%Y%m%d_%H%M%S'))
    while osp.exists(run_dir):  # two runs in the same second
        run_dir += '_'
    os.makedirs(run_dir)
    cfg = write_config(osp.join(run_dir, 'config.py'),
                       osp.abspath(args.data_root), args.iters)

    train_dir = osp.join(run_dir, 'train')
    t0 = time.time()
    run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg,
         '--work-dir', train_dir, '--seed', str(args.seed)])
    train_s = time.time() - t0
    with open(osp.join(train_dir, 'last_checkpoint'), encoding='utf-8') as f:
        ckpt = f.read().strip()

    test_dir = osp.join(run_dir, 'test')
    dump = osp.join(test_dir, 'predictions.pkl')
    t0 = time.time()
    run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), cfg, ckpt,
         '--work-dir', test_dir, '--dump', dump])
    test_s = time.time() - t0

    scores = score(dump)
    host = read_host_metrics(test_dir)
    losses = read_losses(train_dir)
    png = plot_predictions(dump, osp.join(run_dir, 'predictions.png'),
                           args.num_show)
    from mmengine.config import Config
    iters = Config.fromfile(cfg).train_cfg.max_iters
    summary = dict(
        scores,
        host_metrics=host,
        iters=int(iters),
        seed=args.seed,
        data_seed=args.data_seed,
        num_train=args.num_train,
        train_seconds=round(train_s, 1),
        test_seconds=round(test_s, 1),
        total_seconds=round(time.time() - start, 1),
        final_loss=losses['loss'][-1] if losses['loss'] else None,
        loadavg_start=[round(v, 2) for v in load_start],
        loadavg_end=[round(v, 2) for v in os.getloadavg()],
        omp_num_threads=os.environ.get('OMP_NUM_THREADS', '1'),
        config=cfg,
        checkpoint=ckpt,
        predictions_png=png)
    with open(osp.join(run_dir, 'summary.json'), 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=2)

    print('\n' + '=' * 60)
    print(f"UperNet-MorphMLP, shapes set: {summary['num_images']} val images,"
          f" {iters} iterations")
    print(f"{'class':12s} {'IoU':>8s}")
    for name, iou in summary['per_class_iou'].items():
        print(f"{name:12s} {'n/a' if iou is None else f'{iou:8.1%}':>8s}")
    print(f"{'mIoU':12s} {summary['mIoU']:8.1%}   (mmseg IoUMetric: "
          f"{host.get('mIoU', float('nan')):.2f}%)")
    print(f"{'aAcc':12s} {summary['aAcc']:8.1%}")
    print('=' * 60)
    print(f"train {summary['train_seconds']:.0f} s, test "
          f"{summary['test_seconds']:.0f} s, total "
          f"{summary['total_seconds']:.0f} s (OMP_NUM_THREADS="
          f"{summary['omp_num_threads']}, load average "
          f"{summary['loadavg_start'][0]:.1f} -> "
          f"{summary['loadavg_end'][0]:.1f})")
    print(f'predictions: {png}\nsummary: '
          f"{osp.join(run_dir, 'summary.json')}\ncheckpoint: {ckpt}")
    return summary


if __name__ == '__main__':
    main()
