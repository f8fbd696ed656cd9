"""The shapes segmentation job end to end at tiny settings, and its data.

Accuracy is not asserted here: the job measures it at its defaults.
"""
import json
import os
import pickle

import cv2
import numpy as np
import pytest

from tools.data import make_shapes_seg_dataset as shapes
from tools.demo import shapes_seg_demo


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_demo')
    summary = shapes_seg_demo.main([
        '--data-root', str(root / 'data'), '--work-dir', str(root / 'work'),
        '--num-train', '12', '--num-val', '3', '--iters', '6',
        '--num-show', '2'])
    (run_dir, ) = os.listdir(root / 'work')
    return root, root / 'work' / run_dir, summary


def test_job_writes_summary_png_and_checkpoint(demo_run):
    _, run_dir, summary = demo_run
    with open(run_dir / 'summary.json') as f:
        assert json.load(f) == summary
    assert summary['num_images'] == 3
    assert summary['iters'] == 6
    assert 0. <= summary['mIoU'] <= 1.
    assert 0. <= summary['aAcc'] <= 1.
    assert list(summary['per_class_iou']) == list(shapes.CLASSES)
    ious = [v for v in summary['per_class_iou'].values() if v is not None]
    assert ious and all(0. <= v <= 1. for v in ious)
    assert summary['mIoU'] == pytest.approx(np.mean(ious))
    # our confusion-matrix score agrees with mmseg's IoUMetric (percent,
    # rounded to 2 decimals)
    assert summary['host_metrics']['mIoU'] == pytest.approx(
        100 * summary['mIoU'], abs=0.01)
    assert summary['host_metrics']['aAcc'] == pytest.approx(
        100 * summary['aAcc'], abs=0.01)
    assert summary['train_seconds'] > 0 and summary['test_seconds'] > 0
    assert len(summary['loadavg_start']) == 3
    assert os.path.isfile(summary['checkpoint'])
    assert summary['checkpoint'].endswith('iter_6.pth')
    png = cv2.imread(str(run_dir / 'predictions.png'))
    assert png is not None and png.shape[0] > 200 and png.shape[1] > 400
    cfg_text = (run_dir / 'config.py').read_text()
    assert 'max_iters=6' in cfg_text


def test_dump_holds_masks_of_every_val_image(demo_run):
    _, run_dir, _ = demo_run
    with open(run_dir / 'test' / 'predictions.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 3
    for p in preds:
        pred = shapes_seg_demo._mask(p['pred_sem_seg'])
        gt = shapes_seg_demo._mask(p['gt_sem_seg'])
        assert pred.shape == gt.shape == (64, 64)
        assert set(np.unique(pred)) <= set(range(len(shapes.CLASSES)))


def test_dataset_is_reused_and_foreign_data_refused(demo_run, tmp_path):
    root, _, _ = demo_run
    args = shapes_seg_demo.parse_args([
        '--data-root', str(root / 'data'), '--num-train', '12',
        '--num-val', '3'])
    before = os.path.getmtime(root / 'data' / 'meta.json')
    shapes_seg_demo.ensure_dataset(args)  # same settings: reused
    assert os.path.getmtime(root / 'data' / 'meta.json') == before
    args.num_train = 13
    with pytest.raises(SystemExit, match='other settings'):
        shapes_seg_demo.ensure_dataset(args)
    (tmp_path / 'mine.txt').write_text('user data')
    args = shapes_seg_demo.parse_args(['--data-root', str(tmp_path)])
    with pytest.raises(SystemExit, match='not a shapes dataset'):
        shapes_seg_demo.ensure_dataset(args)
    assert os.listdir(tmp_path) == ['mine.txt']


def test_demo_rejects_bad_arguments():
    for argv in (['--iters', '0'], ['--num-val', '0'], ['--num-show', '-1']):
        with pytest.raises(SystemExit):
            shapes_seg_demo.parse_args(argv)


def test_generator_layout_labels_and_determinism(tmp_path):
    a = shapes.make_shapes_dataset(str(tmp_path / 'a'), num_train=6,
                                   num_val=2, seed=3)
    b = shapes.make_shapes_dataset(str(tmp_path / 'b'), num_train=6,
                                   num_val=2, seed=3)
    assert a['settings'] == shapes.read_settings(a['root'])
    for split, num in (('train', 6), ('val', 2)):
        names = sorted(os.listdir(tmp_path / 'a' / 'images' / split))
        assert names == sorted(
            os.listdir(tmp_path / 'a' / 'annotations' / split))
        assert len(names) == num
        for name in names:
            img = cv2.imread(str(tmp_path / 'a' / 'images' / split / name))
            label = cv2.imread(
                str(tmp_path / 'a' / 'annotations' / split / name),
                cv2.IMREAD_UNCHANGED)
            assert img.shape == (64, 64, 3) and label.shape == (64, 64)
            assert label.dtype == np.uint8 and label.max() <= 4
            same = cv2.imread(str(tmp_path / 'b' / 'images' / split / name))
            same_label = cv2.imread(
                str(tmp_path / 'b' / 'annotations' / split / name),
                cv2.IMREAD_UNCHANGED)
            assert np.array_equal(img, same)
            assert np.array_equal(label, same_label)
    assert b['pixel_fraction'] == a['pixel_fraction']
    assert sum(a['pixel_fraction']) == pytest.approx(1., abs=1e-3)
    assert a['pixel_fraction'][0] < 0.9  # shapes cover a real share


def test_colour_does_not_identify_the_class():
    rng = np.random.default_rng(0)
    colours = {k: [] for k in range(1, 5)}
    for _ in range(60):
        img, label = shapes.shapes_sample(rng, 64)
        for k in colours:
            if (label == k).sum() > 20:
                colours[k].append(img[label == k].mean(0))
    means = np.array([np.mean(v, 0) for v in colours.values()])
    spreads = np.array([np.std(v, 0) for v in colours.values()])
    # every class spans a wide range of colours and their mean colours are
    # close: a per-class colour would give small spreads and far means
    assert (spreads > 40).all()
    assert np.ptp(means, axis=0).max() < 60


def test_shape_masks_and_bad_inputs(tmp_path):
    circle = shapes.shape_mask(1, 64, 64, 32, 32, 12, 0.)
    ring = shapes.shape_mask(4, 64, 64, 32, 32, 12, 0., hole=0.5)
    square = shapes.shape_mask(2, 64, 64, 32, 32, 12, np.pi / 4)
    triangle = shapes.shape_mask(3, 64, 64, 32, 32, 12, -np.pi / 2)
    assert circle[32, 32] and not ring[32, 32]
    # cv2 fills boundary pixels: areas match the radius plus half a pixel
    r = 12.5
    assert circle.sum() == pytest.approx(np.pi * r**2, rel=0.05)
    assert ring.sum() == pytest.approx(np.pi * (r**2 - 6.5**2), rel=0.05)
    assert square.sum() == pytest.approx(2 * r**2, rel=0.1)
    assert triangle.sum() == pytest.approx(3**1.5 / 4 * r**2, rel=0.1)
    assert (ring & ~circle).sum() == 0
    with pytest.raises(ValueError, match='kind=5'):
        shapes.shape_mask(5, 64, 64, 32, 32, 12, 0.)
    with pytest.raises(ValueError, match='size=8'):
        shapes.make_shapes_dataset(str(tmp_path / 'x'), size=8)
    with pytest.raises(ValueError, match='num_train=0'):
        shapes.make_shapes_dataset(str(tmp_path / 'x'), num_train=0)
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'keep.txt').write_text('x')
    with pytest.raises(ValueError, match='not empty'):
        shapes.make_shapes_dataset(str(tmp_path / 'full'))
    assert shapes.read_settings(str(tmp_path / 'full')) is None
