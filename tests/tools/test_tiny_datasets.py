"""Tests of tools/data/make_tiny_dataset.py.

Every subcommand writes into ``tmp_path`` and is then read back with the
host's real dataset class and real decode pipelines: mmaction2
``VideoDataset`` with the Decord, PyAV and OpenCV backends, mmseg
``ADE20KDataset`` with ``LoadImageFromFile``/``LoadAnnotations`` and mmpretrain
``ImageNet``. Besides layout, lengths, labels and shapes, the tests check that
the pixels carry the labels (class colours, exact masks, motion direction).
"""
import json
import os
import os.path as osp
import re
from typing import Dict, List

# cv2 before decord: decord's bundled zlib breaks cv2's PNG I/O otherwise
import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope
from tool_scripts import load_script



mtd = load_script('tools/data/make_tiny_dataset.py')
BACKENDS = ('Decord', 'PyAV', 'OpenCV')


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _read_list(path: str) -> List[List[str]]:
    with open(path) as f:
        return [line.split() for line in f.read().splitlines() if line]


def _colour_fraction(img: np.ndarray, colour: np.ndarray,
                     tol: float = 25.) -> float:
    """Fraction of pixels within ``tol`` (RGB distance) of ``colour``."""
    diff = img.astype(np.float32) - np.asarray(colour, np.float32)
    return float((np.linalg.norm(diff, axis=-1) < tol).mean())


def _video_dataset(ann_file: str, prefix: str, backend: str):
    """mmaction2 VideoDataset with a deterministic 8x2 clip and NCTHW."""
    from mmaction.datasets import VideoDataset
    pipeline = [
        dict(type=f'{backend}Init'),
        dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1,
             test_mode=True),
        dict(type=f'{backend}Decode'),
        dict(type='FormatShape', input_format='NCTHW'),
    ]
    with DefaultScope.overwrite_default_scope('mmaction'):
        return VideoDataset(
            ann_file=ann_file, pipeline=pipeline,
            data_prefix=dict(video=prefix), test_mode=True)


def _packed_video_dataset(ann_file: str, prefix: str, backend: str):
    """The same with ``PackActionInputs`` (what a dataloader yields)."""
    from mmaction.datasets import VideoDataset
    pipeline = [
        dict(type=f'{backend}Init'),
        dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
        dict(type=f'{backend}Decode'),
        dict(type='Resize', scale=(-1, 64)),
        dict(type='CenterCrop', crop_size=64),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmaction'):
        return VideoDataset(
            ann_file=ann_file, pipeline=pipeline,
            data_prefix=dict(video=prefix))


@pytest.fixture(scope='module')
def k400(tmp_path_factory) -> Dict[str, object]:
    out = tmp_path_factory.mktemp('tiny') / 'kinetics400'
    return mtd.make_dataset(['kinetics400', '--out', str(out)])


@pytest.fixture(scope='module')
def sthv2(tmp_path_factory) -> Dict[str, object]:
    out = tmp_path_factory.mktemp('tiny') / 'sthv2'
    return mtd.make_dataset(['sthv2', '--out', str(out)])


@pytest.fixture(scope='module')
def ade(tmp_path_factory) -> Dict[str, object]:
    out = tmp_path_factory.mktemp('tiny') / 'ADEChallengeData2016'
    return mtd.make_dataset(['ade20k', '--out', str(out)])


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory) -> Dict[str, object]:
    out = tmp_path_factory.mktemp('tiny') / 'imagenet'
    return mtd.make_dataset(['imagenet', '--out', str(out)])


# --------------------------------------------------------------------------
# kinetics400
# --------------------------------------------------------------------------
def test_kinetics400_layout(k400):
    root = k400['root']
    assert k400['num_train'] == 3 * 4 and k400['num_val'] == 3 * 2
    assert k400['seconds'] < 10
    names = open(osp.join(root, 'label_map_k400.txt')).read().splitlines()
    assert names == sorted(names) == k400['classes']
    assert names[:3] == ['abseiling', 'air drumming', 'answering questions']
    for split, n in (('train', 12), ('val', 6)):
        lines = _read_list(
            osp.join(root, f'kinetics400_{split}_list_videos.txt'))
        assert len(lines) == n
        for rel, label in lines:
            # "<class_with_underscores>/<11-char id>_<start>_<end>.mp4 label"
            m = re.fullmatch(r'([a-z_]+)/[\w-]{11}_(\d{6})_(\d{6})\.mp4', rel)
            assert m, rel
            assert m.group(1) == names[int(label)].replace(' ', '_')
            assert int(m.group(3)) - int(m.group(2)) == 10
            assert osp.isfile(osp.join(root, f'videos_{split}', rel))
        csv_path = osp.join(root, 'annotations', f'kinetics_{split}.csv')
        rows = open(csv_path).read().splitlines()
        assert rows[0] == 'label,youtube_id,time_start,time_end,split'
        assert len(rows) == n + 1


@pytest.mark.parametrize('backend', BACKENDS)
def test_kinetics400_decodes_with_every_backend(k400, backend):
    root = k400['root']
    ds = _video_dataset(
        osp.join(root, 'kinetics400_train_list_videos.txt'),
        osp.join(root, 'videos_train'), backend)
    assert len(ds) == 12
    assert [ds.get_data_info(i)['label'] for i in range(len(ds))] == [
        int(label) for _, label in _read_list(
            osp.join(root, 'kinetics400_train_list_videos.txt'))
    ]
    for idx in (0, 5, 11):
        results = ds[idx]
        assert results['total_frames'] == 48
        assert list(results['frame_inds']) == list(range(16, 32, 2))
        imgs = results['imgs']
        assert imgs.shape == (1, 3, 8, 96, 128) and imgs.dtype == np.uint8
        # the label is visible: the object has its class colour
        frames = imgs[0].transpose(1, 2, 3, 0)  # T, H, W, C
        fractions = [
            _colour_fraction(frames, mtd._class_color(c, 3))
            for c in range(3)
        ]
        assert int(np.argmax(fractions)) == results['label']
        assert fractions[results['label']] > 0.02


def test_kinetics400_backends_agree_and_pack(k400):
    root = k400['root']
    ann = osp.join(root, 'kinetics400_val_list_videos.txt')
    prefix = osp.join(root, 'videos_val')
    clips = [_video_dataset(ann, prefix, b)[3]['imgs'] for b in BACKENDS]
    for other in clips[1:]:
        assert np.abs(other.astype(np.int16) - clips[0]).mean() < 2.0
    packed = _packed_video_dataset(ann, prefix, 'Decord')[0]
    assert tuple(packed['inputs'].shape) == (1, 3, 8, 64, 64)
    assert packed['data_samples'].gt_label.item() == 0


# --------------------------------------------------------------------------
# sthv2
# --------------------------------------------------------------------------
def test_sthv2_layout_matches_the_original_annotations(sthv2):
    root = sthv2['root']
    labels = json.load(
        open(osp.join(root, 'annotations',
                      'something-something-v2-labels.json')))
    label_map = open(osp.join(root, 'label_map_sthv2.txt')).read().splitlines()
    assert label_map == sorted(label_map) == sthv2['classes']
    assert labels == {name: str(i) for i, name in enumerate(label_map)}
    for split, json_split, n in (('train', 'train', 16),
                                 ('val', 'validation', 8)):
        lines = _read_list(osp.join(root, f'sthv2_{split}_list_videos.txt'))
        items = json.load(
            open(osp.join(root, 'annotations',
                          f'something-something-v2-{json_split}.json')))
        assert len(lines) == len(items) == n
        by_id = {item['id']: item for item in items}
        for rel, label in lines:
            assert re.fullmatch(r'\d+\.webm', rel)
            assert osp.isfile(osp.join(root, 'videos', rel))
            # what mmaction2's parse_sthv2_splits derives from the json
            template = by_id[rel[:-5]]['template']
            plain = template.replace('[', '').replace(']', '')
            assert int(labels[plain]) == int(label)
    ids = [line[0] for s in ('train', 'val') for line in _read_list(
        osp.join(root, f'sthv2_{s}_list_videos.txt'))]
    assert len(set(ids)) == len(ids) == 24


@pytest.mark.parametrize('backend', ('Decord', 'OpenCV'))
def test_sthv2_webm_decodes(sthv2, backend):
    root = sthv2['root']
    ds = _video_dataset(
        osp.join(root, 'sthv2_val_list_videos.txt'),
        osp.join(root, 'videos'), backend)
    assert len(ds) == 8
    results = ds[0]
    assert results['total_frames'] == 40
    assert list(results['frame_inds']) == list(range(12, 28, 2))
    assert results['imgs'].shape == (1, 3, 8, 96, 128)
    # the clip is moving: consecutive sampled frames differ
    imgs = results['imgs'][0].astype(np.int16)
    assert np.abs(imgs[:, 1:] - imgs[:, :-1]).mean() > 0.5


@pytest.mark.filterwarnings('ignore:divide by zero:RuntimeWarning')
def test_sthv2_webm_with_pyav(sthv2):
    """PyAV decodes every frame, but mmaction2's PyAVInit cannot count them.

    ``PyAVInit`` takes ``total_frames`` from ``stream.frames``, which is 0 for
    every Matroska/WebM file (the container stores no frame count), so
    ``SampleFrames`` then picks frame 0 for the whole clip. That is a host
    limitation, documented in docs/data_preparation.md (use Decord or
    OpenCV for SSV2). If this test fails on ``total_frames == 0`` the host
    fixed it: update the doc.
    """
    import av
    import decord
    root = sthv2['root']
    rel = _read_list(osp.join(root, 'sthv2_val_list_videos.txt'))[0][0]
    path = osp.join(root, 'videos', rel)
    with av.open(path) as container:
        assert container.streams.video[0].codec_context.name in ('vp9',
                                                                 'vp8')
        frames = np.stack([
            f.to_ndarray(format='rgb24') for f in container.decode(video=0)
        ])
    assert frames.shape == (40, 96, 128, 3)
    reference = decord.VideoReader(path).get_batch(list(range(40))).asnumpy()
    assert np.abs(frames.astype(np.int16) - reference).mean() < 2.0

    results = _video_dataset(
        osp.join(root, 'sthv2_val_list_videos.txt'), osp.join(root, 'videos'),
        'PyAV')[0]
    assert results['total_frames'] == 0, (
        'mmaction2 PyAVInit now reports WebM frame counts; update '
        'docs/data_preparation.md and this test')
    assert set(results['frame_inds']) == {0}


def test_sthv2_classes_are_motions():
    """The object moves along the template's direction, whatever its colour."""
    rng = np.random.default_rng(3)
    colour = np.array([255., 0., 255.], np.float32)
    expected = {
        'Moving [something] up': (0, -1),
        'Moving [something] down': (0, 1),
        'Pushing [something] from left to right': (1, 0),
        'Pushing [something] from right to left': (-1, 0),
    }
    for template, dx, dy, growth in mtd.SSV2_TEMPLATES:
        frames = mtd.video_frames(rng, 24, (96, 128), colour, (dx, dy),
                                  growth=growth)
        masks = np.linalg.norm(
            frames.astype(np.float32) - colour, axis=-1) < 30
        ys, xs = np.nonzero(masks[0])
        ye, xe = np.nonzero(masks[-1])
        move = (xe.mean() - xs.mean(), ye.mean() - ys.mean())
        growth_seen = masks[-1].sum() / masks[0].sum()
        if template in expected:
            ex, ey = expected[template]
            assert np.sign(round(move[0] / 10)) == ex, template
            assert np.sign(round(move[1] / 10)) == ey, template
        elif growth > 0:
            assert growth_seen > 1.5, template
        elif growth < 0:
            assert growth_seen < 0.7, template
        else:
            assert abs(move[0]) < 3 and abs(move[1]) < 3, template


def test_sthv2_more_classes_than_templates(tmp_path):
    summary = mtd.make_dataset([
        'sthv2', '--out', str(tmp_path / 's'), '--num-classes', '9',
        '--per-class', '1', '--val-per-class', '0', '--frames', '8',
        '--size', '32x64'
    ])
    assert len(summary['classes']) == 9 == summary['num_train']
    assert summary['num_val'] == 0 and summary['decord_ok'] is True
    assert sum('Sliding' in c for c in summary['classes']) == 2


def test_warns_when_decord_cannot_read_the_size(tmp_path, capsys):
    """decord 0.6.0 fails on some widths (48 here); the writer says so."""
    summary = mtd.make_dataset([
        'kinetics400', '--out', str(tmp_path / 'k'), '--num-classes', '1',
        '--per-class', '1', '--val-per-class', '0', '--frames', '8',
        '--size', '32x48'
    ])
    assert summary['decord_ok'] is False
    err = capsys.readouterr().err
    assert 'will not load with mmaction2 DecordInit' in err
    # the other backends read it
    root = summary['root']
    results = _video_dataset(
        osp.join(root, 'kinetics400_train_list_videos.txt'),
        osp.join(root, 'videos_train'), 'OpenCV')[0]
    assert results['imgs'].shape == (1, 3, 8, 32, 48)


# --------------------------------------------------------------------------
# ade20k
# --------------------------------------------------------------------------
def test_ade20k_loads_with_mmseg(ade):
    from mmseg.datasets import ADE20KDataset
    root = ade['root']
    assert ade['num_train'] == 6 * 3 and ade['num_val'] == 6
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    with DefaultScope.overwrite_default_scope('mmseg'):
        train = ADE20KDataset(
            data_root=root, pipeline=pipeline,
            data_prefix=dict(
                img_path='images/training',
                seg_map_path='annotations/training'))
        val = ADE20KDataset(
            data_root=root, pipeline=pipeline + [dict(type='PackSegInputs')],
            data_prefix=dict(
                img_path='images/validation',
                seg_map_path='annotations/validation'))
    assert len(train) == 18 and len(val) == 6
    assert osp.basename(train[0]['img_path']) == 'ADE_train_00000001.jpg'
    assert osp.basename(val[0]['data_samples'].img_path) == (
        'ADE_val_00000001.jpg')
    assert tuple(val[0]['inputs'].shape) == (3, 96, 128)
    assert tuple(val[0]['data_samples'].gt_sem_seg.data.shape) == (1, 96,
                                                                    128)
    seen = set()
    for idx in range(len(train)):
        results = train[idx]
        img, seg = results['img'], results['gt_seg_map']
        assert results['reduce_zero_label'] is True
        assert img.shape == (96, 128, 3) and seg.shape == (96, 128)
        values = set(np.unique(seg).tolist())
        # 0 ("other") became 255; ADE ids 1..6 became 0..5
        assert 255 in values and values <= {255, 0, 1, 2, 3, 4, 5}
        seen |= values
        # the featured class (largest shape) is present
        assert (idx % 6) in values
        # pixels of class k have class k's colour (BGR from mmcv)
        for k in values - {255}:
            mask = seg == k
            inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5)))
            if inner.sum() < 20:
                continue
            mean = img[inner.astype(bool)][:, ::-1].mean(0)
            assert np.abs(mean - mtd._class_color(k, 6)).max() < 25
    assert seen == {255, 0, 1, 2, 3, 4, 5}


# --------------------------------------------------------------------------
# imagenet
# --------------------------------------------------------------------------
def test_imagenet_loads_with_mmpretrain(imagenet):
    from mmpretrain.datasets import ImageNet
    root = imagenet['root']
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        train = ImageNet(
            data_root=root, split='train', pipeline=pipeline,
            classes=osp.join(root, 'meta', 'classes.txt'))
        val = ImageNet(
            data_root=root, split='val', pipeline=pipeline[:1])
    assert len(train) == 4 * 5 and len(val) == 4 * 2
    assert train.metainfo['classes'][:2] == ('tench, Tinca tinca',
                                             'goldfish, Carassius auratus')
    assert len(train.metainfo['classes']) == 4
    assert len(val.metainfo['classes']) == 1000  # the built-in ImageNet list
    assert list(val.get_gt_labels()) == [0, 0, 1, 1, 2, 2, 3, 3]
    sample = train[7]
    assert tuple(sample['inputs'].shape) == (3, 80, 112)
    assert sample['data_samples'].gt_label.item() == 1
    assert re.fullmatch(r'.*/train/n01443537/n01443537_\d+\.JPEG',
                        sample['data_samples'].img_path)
    for idx in range(len(val)):
        results = val[idx]
        assert re.fullmatch(r'ILSVRC2012_val_\d{8}\.JPEG',
                            osp.basename(results['img_path']))
        rgb = results['img'][..., ::-1]
        fractions = [
            _colour_fraction(rgb, mtd._class_color(c, 4)) for c in range(4)
        ]
        assert int(np.argmax(fractions)) == results['gt_label']


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
@pytest.mark.parametrize('dataset', ['kinetics400', 'sthv2', 'ade20k'])
def test_same_seed_same_bytes(tmp_path, dataset):
    args = [dataset, '--num-classes', '2', '--per-class', '2',
            '--val-per-class', '1']
    if dataset != 'ade20k':
        args += ['--frames', '12', '--size', '48x64']
    runs = []
    for name, seed in (('a', '1'), ('b', '1'), ('c', '2')):
        root = tmp_path / name
        mtd.make_dataset(args + ['--out', str(root), '--seed', seed])
        files = sorted(
            p.relative_to(root) for p in root.rglob('*') if p.is_file())
        runs.append({f: (root / f).read_bytes() for f in files})
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_cli_prints_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / 'in1k'
    mtd.main(['imagenet', '--out', str(out), '--num-classes', '2',
              '--per-class', '1', '--val-per-class', '1', '--size', '40x56'])
    printed = capsys.readouterr().out
    assert f'imagenet: wrote {out}' in printed and 'num_train: 2' in printed
    assert (out / 'meta' / 'train.txt').is_file()
    # a non-empty --out is refused unless --force
    with pytest.raises(SystemExit, match='not empty'):
        mtd.main(['imagenet', '--out', str(out)])
    mtd.main(['imagenet', '--out', str(out), '--force', '--num-classes', '2',
              '--per-class', '1', '--val-per-class', '0', '--size', '40x56'])
    mtd.main(['imagenet', '--out', str(out), '--overwrite', '--num-classes',
              '2', '--per-class', '1', '--val-per-class', '0', '--size',
              '40x56'])
    with pytest.raises(SystemExit, match='--size=95x128'):
        mtd.main(['kinetics400', '--out', str(tmp_path / 'k'), '--size',
                  '95x128'])
    with pytest.raises(SystemExit, match='--num-classes=0'):
        mtd.main(['ade20k', '--out', str(tmp_path / 'a'), '--num-classes',
                  '0'])
    with pytest.raises(SystemExit, match='--num-classes=200'):
        mtd.main(['ade20k', '--out', str(tmp_path / 'a'), '--num-classes',
                  '200'])
    with pytest.raises(SystemExit):
        mtd.main(['kinetics400', '--out', str(tmp_path / 'k'), '--size',
                  'big'])
    assert 'must be "HxW"' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'k')
