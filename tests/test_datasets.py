"""RobustVideoDataset and RobustRepeatAugDataset (wrong paths, unreadable
videos), ShuffleFrames and ReverseFrames."""
import cv2
import numpy as np
import pytest

from morphmlp_mm.datasets import (ReverseFrames, RobustRepeatAugDataset,
                                  RobustVideoDataset, ShuffleFrames)

PIPELINE = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]


def write_video(path, frames=8, size=(32, 24)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10,
                             size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), i * 20, np.uint8)
        writer.write(img)
    writer.release()


@pytest.fixture
def video_root(tmp_path):
    (tmp_path / 'videos').mkdir()
    write_video(tmp_path / 'videos' / 'good.mp4')
    (tmp_path / 'videos' / 'corrupt.mp4').write_bytes(b'not a video' * 10)
    (tmp_path / 'ann.txt').write_text(
        'good.mp4 0\ncorrupt.mp4 1\nmissing.mp4 1\n')
    return tmp_path


def build(root, cls=RobustVideoDataset, **kwargs):
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmaction'):
        return cls(
            ann_file=str(root / 'ann.txt'),
            data_prefix=dict(video=str(root / 'videos')),
            pipeline=PIPELINE, **kwargs)


def test_training_skips_unreadable_videos_with_a_warning(video_root):
    dataset = build(video_root)
    for idx in (1, 2):
        sample = dataset[idx]  # redrawn until the good video comes up
        assert sample['inputs'].shape == (1, 3, 4, 32, 32)
    assert set(dataset.skipped) <= {
        str(video_root / 'videos' / 'corrupt.mp4'),
        str(video_root / 'videos' / 'missing.mp4')}
    assert dataset.skipped
    assert dataset.prepare_data(2) is None
    assert dataset.skipped[str(video_root / 'videos' / 'missing.mp4')] == \
        'file does not exist'


def test_repeat_aug_training_skips_unreadable_videos(video_root):
    """The recognition configs' decord training set: one decode, two
    augmented clips; an unreadable video is skipped as in
    RobustVideoDataset, where mmaction2's RepeatAugDataset raises decord's
    error, which does not name the file."""
    from mmaction.datasets import RepeatAugDataset
    plain = build(video_root, cls=RepeatAugDataset, num_repeats=2,
                  sample_once=True)
    with pytest.raises(Exception) as info:
        plain.prepare_data(1)
    assert 'corrupt.mp4' not in str(info.value)

    dataset = build(video_root, cls=RobustRepeatAugDataset, num_repeats=2,
                    sample_once=True)
    for idx in (1, 2):
        clips = dataset[idx]  # redrawn until the good video comes up
        assert [c['inputs'].shape for c in clips] == [(1, 3, 4, 32, 32)] * 2
    assert dataset.prepare_data(1) is None
    assert str(video_root / 'videos' / 'corrupt.mp4') in dataset.skipped
    strict = build(video_root, cls=RobustRepeatAugDataset, num_repeats=2,
                   skip_corrupt=False)
    with pytest.raises(RuntimeError, match=r"corrupt\.mp4.*skip_corrupt"):
        strict.prepare_data(1)


@pytest.mark.parametrize('kwargs', [dict(test_mode=True),
                                    dict(skip_corrupt=False)])
def test_test_mode_or_no_skip_names_the_file(video_root, kwargs):
    dataset = build(video_root, **kwargs)
    with pytest.raises(RuntimeError, match=r"corrupt\.mp4.*skip_corrupt"):
        dataset.prepare_data(1)
    with pytest.raises(RuntimeError, match='missing.mp4.*does not exist'):
        dataset.prepare_data(2)


def test_wrong_data_root_and_ann_file(tmp_path, video_root):
    with pytest.raises(FileNotFoundError, match='ann_file .*does not exist'):
        build(tmp_path / 'nowhere')
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmaction'):
        with pytest.raises(FileNotFoundError, match='is not a directory'):
            RobustVideoDataset(ann_file=str(video_root / 'ann.txt'),
                               data_prefix=dict(video=str(tmp_path / 'x')),
                               pipeline=PIPELINE)


def test_shuffle_frames_permutes_each_clip():
    inds = np.arange(12)
    out = ShuffleFrames(seed=0)(dict(frame_inds=inds.copy(), clip_len=4))
    clips = out['frame_inds'].reshape(3, 4)
    for k, clip in enumerate(clips):
        assert sorted(clip) == list(range(4 * k, 4 * k + 4))
    assert not np.array_equal(out['frame_inds'], inds)
    with pytest.raises(ValueError, match='clip_len=5'):
        ShuffleFrames()(dict(frame_inds=inds, clip_len=5))


def test_reverse_frames_swaps_pair_labels():
    t = ReverseFrames(label_pairs=[(0, 1), (2, 3)], symmetric_labels=[4],
                      prob=1.)
    inds = np.arange(8)
    out = t(dict(frame_inds=inds.copy(), clip_len=4, label=1))
    assert out['label'] == 0
    assert out['frame_inds'].tolist() == [3, 2, 1, 0, 7, 6, 5, 4]
    assert t(dict(frame_inds=inds.copy(), clip_len=8, label=2))['label'] == 3
    out = t(dict(frame_inds=inds.copy(), clip_len=8, label=4))
    assert out['label'] == 4 and out['frame_inds'].tolist() == inds[::-1].tolist()
    out = t(dict(frame_inds=inds.copy(), clip_len=8, label=5))  # not listed
    assert out['label'] == 5 and out['frame_inds'].tolist() == inds.tolist()
    # after the decoder: the decoded frames are reversed, not the indices
    imgs = [np.full((2, 2, 3), i, np.uint8) for i in range(8)]
    out = t(dict(frame_inds=inds.copy(), imgs=imgs, clip_len=4, label=0))
    assert out['label'] == 1 and out['frame_inds'].tolist() == inds.tolist()
    assert [int(f[0, 0, 0]) for f in out['imgs']] == [3, 2, 1, 0, 7, 6, 5, 4]


def test_reverse_frames_probability_and_errors():
    t = ReverseFrames(label_pairs=[(0, 1)], prob=.5, seed=0)
    labels = [t(dict(frame_inds=np.arange(4), clip_len=4, label=0))['label']
              for _ in range(400)]
    assert 150 < sum(labels) < 250
    assert all(ReverseFrames([(0, 1)], prob=0.)(dict(
        frame_inds=np.arange(4), clip_len=4, label=0))['label'] == 0
        for _ in range(20))
    with pytest.raises(ValueError, match=r'more than one pair'):
        ReverseFrames(label_pairs=[(0, 1), (1, 2)])
    with pytest.raises(ValueError, match=r'two different labels'):
        ReverseFrames(label_pairs=[(3, 3)])
    with pytest.raises(ValueError, match=r'both in label_pairs'):
        ReverseFrames(label_pairs=[(0, 1)], symmetric_labels=[1])
    with pytest.raises(ValueError,
                       match=r'imgs in whole clips of clip_len=4, got 6 frames'):
        ReverseFrames([(0, 1)], prob=1.)(dict(
            imgs=[np.zeros((2, 2, 3))] * 6, clip_len=4, label=0))
    with pytest.raises(ValueError, match=r'prob must be in \[0, 1\], got 2'):
        ReverseFrames(label_pairs=[(0, 1)], prob=2)
