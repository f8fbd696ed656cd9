"""Tests of tools/data/make_motion_dataset.py (synthetic temporal-order data).

Only ``mmaction.datasets`` is imported here (it does not pull in
``mmaction.models``, so the plugin's host workarounds are not needed).
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import decord
import numpy as np
import pytest
from tool_scripts import load_script


mmd = load_script('tools/data/make_motion_dataset.py')

LEFT = 'moving something from right to left'
RIGHT = 'moving something from left to right'
TOWARDS = 'moving something towards the camera'
AWAY = 'moving something away from the camera'
CW = 'turning something clockwise'
CCW = 'turning something counterclockwise'
APPEAR = 'something appearing'
DISAPPEAR = 'something disappearing'
PAIR_CLASSES = [LEFT, RIGHT, TOWARDS, AWAY, CW, CCW, APPEAR, DISAPPEAR]
N_PER_CLASS = 20  # 40 samples per pair for the statistics tests


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _decode(path: str) -> np.ndarray:
    """All frames of a video as uint8 RGB (T, H, W, 3), via decord."""
    reader = decord.VideoReader(path)
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def _object_masks(frames: np.ndarray, colour: List[int],
                  tol: float = 45.0) -> np.ndarray:
    """Pixels within ``tol`` (RGB distance) of the object colour, (T, H, W)."""
    diff = frames.astype(np.float32) - np.asarray(colour, np.float32)
    return np.linalg.norm(diff, axis=-1) < tol


def _centroids(masks: np.ndarray) -> np.ndarray:
    """(x, y) centroid of each mask's convex hull (the object with its
    orientation marker filled in), NaN where the mask is (nearly) empty."""
    out = np.full((len(masks), 2), np.nan)
    for t, mask in enumerate(masks):
        if mask.sum() < 5:
            continue
        hull = cv2.convexHull(cv2.findNonZero(mask.astype(np.uint8)))
        body = np.zeros(mask.shape, np.uint8)
        cv2.fillConvexPoly(body, hull, 1)
        ys, xs = np.nonzero(body)
        out[t] = xs.mean(), ys.mean()
    return out


def _marker_angle(mask: np.ndarray) -> float:
    """Angle of the orientation marker around the object (image coords).

    The object shapes are convex, so the marker is the largest hole of the
    object's colour mask inside its convex hull (also when compression opens
    the hole to the outside).
    """
    hull = cv2.convexHull(cv2.findNonZero(mask.astype(np.uint8)))
    body = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(body, hull, 1)
    hole = (body.astype(bool) & ~mask).astype(np.uint8)
    count, _, stats, centres = cv2.connectedComponentsWithStats(
        hole, connectivity=4)
    assert count >= 2, 'no marker found'
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    assert stats[k, cv2.CC_STAT_AREA] >= 3
    ys, xs = np.nonzero(body)
    return float(np.arctan2(centres[k][1] - ys.mean(),
                            centres[k][0] - xs.mean()))


def _clips(root: str, split: str = 'train') -> List[Dict]:
    with open(osp.join(root, 'meta', f'{split}.jsonl')) as f:
        return [json.loads(line) for line in f]


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def small_dataset(tmp_path_factory) -> Tuple[str, Dict]:
    """All 10 default classes, 2 train + 1 val clip each, 10 frames of 96."""
    out = tmp_path_factory.mktemp('motion_small')
    summary = mmd.make_motion_dataset(out, num_train_per_class=2,
                                      num_val_per_class=1, num_frames=10,
                                      size=96, seed=3)
    return str(out), summary


@pytest.fixture(scope='module')
def pair_dataset(tmp_path_factory) -> Tuple[str, Dict]:
    """The eight direction classes, 20 clips each, defaults 16 x 64 x 64."""
    out = tmp_path_factory.mktemp('motion_pairs')
    summary = mmd.make_motion_dataset(out, num_train_per_class=N_PER_CLASS,
                                      num_val_per_class=0, seed=0,
                                      classes=PAIR_CLASSES)
    clips = _clips(str(out))
    for clip in clips:
        clip['frames'] = _decode(osp.join(str(out), clip['filename']))
    return str(out), dict(summary=summary, clips=clips)


# --------------------------------------------------------------------------
# layout and annotations
# --------------------------------------------------------------------------
def test_layout_and_label_files(small_dataset):
    root, summary = small_dataset
    assert summary['num_classes'] == 10
    assert summary['classes'] == list(mmd.DEFAULT_CLASSES)
    with open(osp.join(root, 'label_map.txt')) as f:
        assert f.read().splitlines() == list(mmd.DEFAULT_CLASSES)

    for split, per_class in (('train', 2), ('val', 1)):
        with open(osp.join(root, f'{split}_list.txt')) as f:
            lines = f.read().splitlines()
        assert summary['splits'][split]['num_clips'] == len(lines) == \
            10 * per_class
        labels = []
        for line in lines:
            rel, label = line.split(' ')
            assert rel.startswith(f'videos/{split}/') and rel.endswith('.mp4')
            assert osp.getsize(osp.join(root, rel)) > 0
            labels.append(int(label))
        assert sorted(labels) == sorted(list(range(10)) * per_class)
        videos = sorted(p.name for p in Path(root, 'videos', split).iterdir())
        assert videos == sorted(osp.basename(line.split()[0])
                                for line in lines)
        metas = _clips(root, split)
        assert [m['filename'] for m in metas] == [ln.split()[0]
                                                  for ln in lines]

    with open(osp.join(root, 'class_groups.json')) as f:
        groups = json.load(f)
    assert groups['direction_labels'] == list(range(8))
    assert groups['static_labels'] == [8, 9]
    assert groups['pair_labels'] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [LEFT, RIGHT] in groups['pairs']
    assert set(groups['direction']) | set(groups['static']) == set(
        mmd.DEFAULT_CLASSES)


def test_mmaction_pipeline_decodes_clip(small_dataset):
    from mmaction.datasets import VideoDataset
    from mmengine.registry import DefaultScope
    from mmaction.datasets.transforms import (OpenCVDecode, OpenCVInit,
                                              PyAVDecode, PyAVInit,
                                              SampleFrames)
    root, _ = small_dataset
    pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=10, frame_interval=1, num_clips=1,
             test_mode=True),
        dict(type='DecordDecode'),
    ]
    # build the pipeline from config dicts, as a config would, within the
    # mmaction scope (without changing the process-wide default scope)
    with DefaultScope.overwrite_default_scope('mmaction'):
        dataset = VideoDataset(ann_file=osp.join(root, 'val_list.txt'),
                               pipeline=pipeline,
                               data_prefix=dict(video=root), test_mode=True)
    assert len(dataset) == 10
    sample = dataset[3]
    assert sample['label'] == 3
    assert sample['total_frames'] == 10
    assert len(sample['imgs']) == 10
    assert all(img.shape == (96, 96, 3) and img.dtype == np.uint8
               for img in sample['imgs'])
    assert sample['frame_inds'].tolist() == list(range(10))

    # the PyAV and OpenCV backends read the same frames
    reference = np.stack(sample['imgs'])
    info = dict(filename=dataset.get_data_info(3)['filename'], label=3,
                start_index=0, modality='RGB')
    for init, decode in ((PyAVInit(), PyAVDecode()),
                         (OpenCVInit(), OpenCVDecode())):
        results = init(dict(info))
        assert results['total_frames'] == 10
        results = SampleFrames(clip_len=10, test_mode=True)(results)
        imgs = np.stack(decode(results)['imgs'])
        assert imgs.shape == reference.shape
        assert np.abs(imgs.astype(int) - reference).mean() < 1.0


def test_deterministic_given_seed(tmp_path):
    kwargs = dict(num_train_per_class=1, num_val_per_class=1, num_frames=6,
                  size=32, classes=[RIGHT, 'something standing still'])
    first = mmd.make_motion_dataset(tmp_path / 'a', seed=7, **kwargs)
    second = mmd.make_motion_dataset(tmp_path / 'b', seed=7, **kwargs)
    other = mmd.make_motion_dataset(tmp_path / 'c', seed=8, **kwargs)
    for name in ('train_list.txt', 'val_list.txt', 'label_map.txt',
                 'class_groups.json', 'meta/train.jsonl'):
        a = Path(first['out_dir'], name).read_text()
        assert a == Path(second['out_dir'], name).read_text(), name
    assert Path(first['out_dir'], 'meta/train.jsonl').read_text() != Path(
        other['out_dir'], 'meta/train.jsonl').read_text()
    for rel in Path(first['out_dir'], 'train_list.txt').read_text().split():
        if not rel.endswith('.mp4'):
            continue
        a = _decode(osp.join(first['out_dir'], rel))
        b = _decode(osp.join(second['out_dir'], rel))
        c = _decode(osp.join(other['out_dir'], rel))
        assert np.array_equal(a[0], b[0])
        assert np.array_equal(a, b)
        assert not np.array_equal(a[0], c[0])


def test_smaller_dataset_is_a_prefix(tmp_path):
    kwargs = dict(num_val_per_class=0, num_frames=4, size=32, seed=1,
                  classes=[LEFT, RIGHT])
    small = mmd.make_motion_dataset(tmp_path / 's', num_train_per_class=1,
                                    **kwargs)
    big = mmd.make_motion_dataset(tmp_path / 'b', num_train_per_class=2,
                                  **kwargs)
    small_meta = _clips(small['out_dir'])
    big_meta = _clips(big['out_dir'])
    assert small_meta == big_meta[:len(small_meta)]


# --------------------------------------------------------------------------
# the labels need temporal order
# --------------------------------------------------------------------------
def _x_tracks(clips: List[Dict], name: str) -> List[np.ndarray]:
    tracks = []
    for clip in clips:
        if clip['class_name'] == name:
            xy = _centroids(_object_masks(clip['frames'], clip['colour']))
            assert not np.isnan(xy).any(), clip['filename']
            # the colour mask agrees with the generator's ground truth
            assert np.abs(xy[:, 0] - np.asarray(clip['cx'])).max() < 2.0
            tracks.append(xy[:, 0])
    assert len(tracks) == N_PER_CLASS
    return tracks


def test_left_right_move_monotonically_in_opposite_directions(pair_dataset):
    _, data = pair_dataset
    size = data['summary']['size']
    for name, sign in ((RIGHT, 1.0), (LEFT, -1.0)):
        for x in _x_tracks(data['clips'], name):
            steps = sign * np.diff(x)
            assert steps.min() > -0.75, (name, x)  # monotone up to noise
            assert sign * (x[-1] - x[0]) > 0.3 * size, (name, x)


def test_frame_set_statistics_do_not_separate_left_right(pair_dataset):
    _, data = pair_dataset
    left = np.stack(_x_tracks(data['clips'], LEFT))
    right = np.stack(_x_tracks(data['clips'], RIGHT))
    # order-aware statistic: the first frame tells the classes apart ...
    assert right[:, 0].mean() - left[:, 0].mean() < -10.0
    # ... order-blind statistics of the frame set do not (40 samples)
    for stat in (np.mean, np.min, np.max, np.std):
        a, b = stat(left, axis=1), stat(right, axis=1)
        pooled = np.sqrt((a.var() + b.var()) / 2) + 1e-6
        assert abs(a.mean() - b.mean()) < 0.8 * pooled + 0.5, stat.__name__
    # the pooled per-frame x distributions (spatial coverage) match
    qs = np.linspace(0.1, 0.9, 9)
    assert np.abs(np.quantile(left, qs) - np.quantile(right, qs)).max() < 5.0


def test_other_pairs_are_time_reversed(pair_dataset):
    _, data = pair_dataset
    by_class: Dict[str, List[Dict]] = {}
    for clip in data['clips']:
        by_class.setdefault(clip['class_name'], []).append(clip)

    def area(clip):
        return _object_masks(clip['frames'], clip['colour']).sum(axis=(1, 2))

    # towards the camera: the object grows; away: it shrinks
    for clip in by_class[TOWARDS][:5]:
        a = area(clip)
        assert a[-1] > 2.5 * a[0]
    for clip in by_class[AWAY][:5]:
        a = area(clip)
        assert a[0] > 2.5 * a[-1]
    # appearing: absent then present; disappearing: the reverse
    for clip in by_class[APPEAR][:5]:
        a = area(clip)
        assert a[0] < 5 and a[-1] > 30
    for clip in by_class[DISAPPEAR][:5]:
        a = area(clip)
        assert a[-1] < 5 and a[0] > 30

    # turning: the marker (a hole in the object's colour mask) goes round
    # clockwise on screen (increasing angle with y pointing down) or not
    def marker_turn(clip):
        masks = _object_masks(clip['frames'], clip['colour'])
        turn = np.unwrap([_marker_angle(mask) for mask in masks])
        # agrees with the generator's ground truth up to pixel effects
        err = np.angle(np.exp(1j * (turn - np.asarray(clip['theta']))))
        assert np.abs(err).max() < np.deg2rad(60)
        return turn

    for name, sign in ((CW, 1.0), (CCW, -1.0)):
        for clip in by_class[name]:
            turn = marker_turn(clip)
            assert sign * (turn[-1] - turn[0]) > np.deg2rad(90), name


def test_pair_members_share_the_frame_set_distribution():
    """Rendered without encoding: every pair is one sampler, time-reversed."""
    classes = {c.name: c for c in mmd.ALL_CLASSES}
    for fwd_name, rev_name in ((RIGHT, LEFT), (TOWARDS, AWAY), (CW, CCW),
                               (APPEAR, DISAPPEAR)):
        fwd, rev = classes[fwd_name], classes[rev_name]
        assert fwd.kind == rev.kind and fwd.reverse != rev.reverse
        # same random stream -> the reverse class is the exact time reversal
        a, meta_a = mmd.render_clip(fwd, np.random.default_rng(5), 8, 32)
        b, meta_b = mmd.render_clip(rev, np.random.default_rng(5), 8, 32)
        assert np.array_equal(a[::-1], b)
        assert meta_a['cx'][::-1] == meta_b['cx']


# --------------------------------------------------------------------------
# arguments and CLI
# --------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, param', [
    (dict(num_frames=2), 'num_frames'),
    (dict(size=33), 'size'),
    (dict(size=16), 'size'),
    (dict(num_train_per_class=0), 'num_train_per_class'),
    (dict(num_val_per_class=-1), 'num_val_per_class'),
    (dict(seed=-1), 'seed'),
    (dict(fps=0), 'fps'),
    (dict(ext='avi'), 'ext'),
    (dict(classes=['flying something']), 'classes'),
    (dict(classes=[LEFT, LEFT]), 'classes'),
    (dict(classes='something standing still'), 'classes'),
])
def test_bad_arguments_raise(tmp_path, kwargs, param):
    with pytest.raises(ValueError, match=param):
        mmd.make_motion_dataset(tmp_path / 'x', **kwargs)
    assert not (tmp_path / 'x').exists()


def test_size_decord_cannot_read_is_refused(tmp_path):
    # decord 0.6.0 decodes these 48 x 48 MPEG-4 files as 4-channel frames
    frames = np.zeros((2, 48, 48, 3), np.uint8)
    mmd.write_video(str(tmp_path / 'probe.mp4'), frames, 12.0)
    try:
        ok = decord.VideoReader(str(tmp_path / 'probe.mp4')).get_batch(
            [0, 1]).asnumpy().shape == (2, 48, 48, 3)
    except Exception:  # decord's own DECORDError
        ok = False
    if ok:
        pytest.skip('this decord reads 48 x 48 clips correctly')
    with pytest.raises(ValueError, match='size 48 .*decord'):
        mmd.make_motion_dataset(tmp_path / 'x', size=48)
    assert not (tmp_path / 'x').exists()


def test_existing_dataset_needs_overwrite(tmp_path):
    kwargs = dict(num_train_per_class=1, num_val_per_class=0, num_frames=4,
                  size=32, classes=['something standing still'])
    (tmp_path / 'notes.txt').write_text('not ours')
    mmd.make_motion_dataset(tmp_path, **kwargs)  # foreign files are fine
    with pytest.raises(ValueError, match='overwrite'):
        mmd.make_motion_dataset(tmp_path, **kwargs)
    (tmp_path / 'videos' / 'train' / 'stale.mp4').write_bytes(b'x')
    summary = mmd.make_motion_dataset(tmp_path, overwrite=True, **kwargs)
    assert summary['splits']['train']['num_clips'] == 1
    assert sorted(p.name for p in (tmp_path / 'videos' / 'train').iterdir()
                  ) == ['000000.mp4']
    assert (tmp_path / 'notes.txt').read_text() == 'not ours'
    # one spelling for every tool that replaces files: --force works too
    for flag in ('--overwrite', '--force'):
        assert mmd.parse_args(['--out', 'x', flag]).overwrite is True
    assert mmd.parse_args(['--out', 'x']).overwrite is False


def test_cli(tmp_path, capsys):
    code = mmd.main([
        '--out', str(tmp_path), '--train-per-class', '1', '--val-per-class',
        '1', '--frames', '5', '--size', '32', '--seed', '2', '--fps', '8',
        '--ext', 'mp4', '--classes', 'something appearing',
        'something disappearing'
    ])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['num_classes'] == 2 and summary['fps'] == 8.0
    assert (tmp_path / 'val_list.txt').read_text().splitlines() == [
        'videos/val/000000.mp4 0', 'videos/val/000001.mp4 1'
    ]
    assert len(_decode(str(tmp_path / 'videos/val/000001.mp4'))) == 5
    assert mmd.main(['--list-classes']) == 0
    assert LEFT in capsys.readouterr().out
    assert mmd.main(['--out', str(tmp_path), '--size', '31']) == 2
    assert 'size' in capsys.readouterr().err
