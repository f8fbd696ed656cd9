"""User-facing behaviour of tools/demo/{video,image,seg}_demo.py.

Every demo runs in-process on a tiny MorphMLP model (a few thousand
parameters, 32x32 inputs) built from a config written under ``tmp_path``,
with checkpoints written by ``torch.save`` of a model's ``state_dict``:

* a checkpoint that does not fit the config is refused before predicting,
  with the message of ``tools/test.py`` (``CheckpointMatchHook('test')``),
  not loaded partly into a mostly random model;
* a fitting checkpoint is loaded (predictions follow its weights);
* video_demo reads the test dataloader's pipeline, takes ``--cfg-options``,
  prints softmax probabilities and names an unreadable video;
* image_demo / seg_demo refuse to write their output over the input image.
"""
import os
import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from tool_scripts import load_script

from morphmlp_mm.engine.hooks import (CheckpointMatchHook,
                                      CheckpointMismatchError,
                                      check_checkpoint_matches)

video_demo = load_script('tools/demo/video_demo.py')
image_demo = load_script('tools/demo/image_demo.py')
seg_demo = load_script('tools/demo/seg_demo.py')

# 32x32 input -> stage maps 8, 4, 2, 1 (as configs/demo/motion_morphmlp3d.py)
ARCH = dict(depths=[1, 1, 1, 1], channels=[8, 16, 16, 16],
            chunk_lengths=[4, (2, 4), (2, 2), (1, 1)], mlp_ratio=1.)
MISMATCH = 'does not match the model built from the config'

VIDEO_CFG = '''
_base_ = ['mmaction::_base_/default_runtime.py']
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)
model = dict(
    type='Recognizer3D',
    backbone=dict(type='MorphMLP3D', arch={arch!r}, num_frames={frames}),
    cls_head=dict(type='I3DHead', num_classes={classes}, in_channels=16,
                  dropout_ratio=0., average_clips={average!r}),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           mean=[114.75] * 3, std=[57.375] * 3,
                           format_shape='NCTHW'))


def pipeline(clip_len):
    return [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=clip_len, frame_interval=1,
             num_clips=1, test_mode=True),
        dict(type='DecordDecode'),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ]


test_pipeline = pipeline({top_clip})
test_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', ann_file='unused.txt',
                 pipeline=pipeline({loader_clip}), test_mode=True))
'''

IMAGE_CFG = '''
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MorphMLP', arch={arch!r}, out_indices=(3, ),
                  out_type='avg_featmap'),
    neck=None,
    head=dict(type='LinearClsHead', num_classes={classes}, in_channels=16),
    data_preprocessor=dict(num_classes={classes}, mean=[127.5] * 3,
                           std=[64.] * 3, to_rgb=True))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root='unused',
                 pipeline=test_pipeline))
'''

SEG_CFG = '''
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3,
                           std=[64.] * 3, bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255),
    backbone=dict(type='MorphMLP', arch={arch!r}, out_indices=(3, ),
                  out_type='featmap'),
    decode_head=dict(type='FCNHead', in_channels=16, channels=8,
                     num_convs=1, concat_input=False, dropout_ratio=0.,
                     num_classes=3, in_index=0, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='PackSegInputs'),
]
'''


def _build(config, registry_scope):
    """The model of ``config`` built in its host's registry."""
    from mmengine.registry import init_default_scope
    import importlib
    cfg = Config.fromfile(str(config))
    init_default_scope(registry_scope)
    registry = importlib.import_module(f'{registry_scope}.registry').MODELS
    return registry.build(cfg.model).eval()


def _save(model, path, **meta):
    state = model.state_dict()
    torch.save(dict(state_dict=state, meta=meta), str(path))
    return str(path)


def _bias_head(model, linear, bias):
    """Zero weight, fixed bias: the logits are ``bias`` for any input."""
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return model


def _video(path, frames=8, size=32):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (size, size))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    writer.release()
    assert osp.getsize(path) > 0
    return str(path)


def _image(path, size=32):
    img = np.random.default_rng(1).integers(0, 255, (size, size, 3),
                                            dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return str(path)


# --------------------------------------------------------------------------
# the shared check (morphmlp_mm/engine/hooks.py)
# --------------------------------------------------------------------------
def _net():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    return net


def test_check_checkpoint_matches_modes():
    net = _net()
    state = net.state_dict()
    # DataParallel prefix removed; the returned state loads strictly
    loaded = check_checkpoint_matches(
        net, {'state_dict': {'module.' + k: v for k, v in state.items()}})
    assert list(loaded) == list(state)
    _net().load_state_dict(loaded, strict=True)
    extra = dict(state, aux=torch.zeros(2))
    assert list(check_checkpoint_matches(net, extra, 'test')) == list(state)
    with pytest.raises(CheckpointMismatchError, match='not in the model: aux'):
        check_checkpoint_matches(net, extra, 'resume', source='e.pth')
    missing = {k: v for k, v in state.items() if k != '1.bias'}
    with pytest.raises(CheckpointMismatchError,
                       match=r'checkpoint m\.pth .*missing in the checkpoint'
                       r': 1\.bias'):
        check_checkpoint_matches(net, missing, 'test', source='m.pth')
    wrong = dict(state)
    wrong['0.weight'] = torch.zeros(4, 2)
    with pytest.raises(CheckpointMismatchError,
                       match=r'0\.weight: checkpoint \[4, 2\] vs model '
                       r'\[3, 2\]'):
        check_checkpoint_matches(net, wrong)
    with pytest.raises(CheckpointMismatchError, match='is a list'):
        check_checkpoint_matches(net, [state])
    with pytest.raises(ValueError, match=r"mode='eval' is not supported"):
        check_checkpoint_matches(net, state, 'eval')


def test_hook_uses_the_check():
    net = _net()
    runner = SimpleNamespace(model=SimpleNamespace(module=net))
    ckpt = {'state_dict': {'0.weight': torch.zeros(3, 2)}}
    with pytest.raises(CheckpointMismatchError, match='missing in the '
                       'checkpoint: 0.bias, 1.weight, 1.bias'):
        CheckpointMatchHook('test', 'x.pth').after_load_checkpoint(runner,
                                                                   ckpt)
    CheckpointMatchHook('test').after_load_checkpoint(
        runner, {'state_dict': dict(net.state_dict(), aux=torch.zeros(1))})


# --------------------------------------------------------------------------
# video_demo.py
# --------------------------------------------------------------------------
def _video_cfg(tmp_path, name='video_cfg.py', frames=4, classes=3,
               average='score', top_clip=4, loader_clip=4):
    path = tmp_path / name
    path.write_text(VIDEO_CFG.format(
        arch=ARCH, frames=frames, classes=classes, average=average,
        top_clip=top_clip, loader_clip=loader_clip))
    return str(path)


@pytest.fixture
def video(tmp_path):
    return _video(tmp_path / 'clip.mp4')


def test_video_demo_refuses_checkpoint_of_another_model(tmp_path, video):
    config = _video_cfg(tmp_path)
    other = _build(_video_cfg(tmp_path, 'other.py', classes=5), 'mmaction')
    ckpt = _save(other, tmp_path / 'other.pth')
    with pytest.raises(SystemExit) as exc:
        video_demo.main([config, ckpt, video, '--out-dir',
                         str(tmp_path / 'out')])
    msg = str(exc.value.code)
    assert msg.startswith(f'error: checkpoint {ckpt} ' + MISMATCH)
    assert 'cls_head.fc_cls.weight: checkpoint [5, 16] vs model [3, 16]' \
        in msg
    assert not (tmp_path / 'out').exists()  # nothing predicted or drawn


def _softmax(x):
    e = np.exp(np.asarray(x, np.float64) - max(x))
    return e / e.sum()


@pytest.mark.parametrize('average', ['score', 'prob', None])
def test_video_demo_prints_probabilities(tmp_path, video, capsys, average):
    """The head's logits are [3, 0, -3] for any clip: the demo prints their
    softmax, once (``average_clips='prob'`` already returns it)."""
    config = _video_cfg(tmp_path, average=average)
    model = _build(config, 'mmaction')
    _bias_head(model, model.cls_head.fc_cls, [0., 3., -3.])
    ckpt = _save(model, tmp_path / 'fit.pth')
    top = video_demo.main([config, ckpt, video, '--topk', '3', '--out-dir',
                           str(tmp_path / 'out')])
    assert [name for name, _ in top] == ['class 1', 'class 0', 'class 2']
    np.testing.assert_allclose([p for _, p in top],
                               _softmax([3., 0., -3.]), rtol=1e-4)
    out = capsys.readouterr().out
    assert 'softmax probabilities' in out
    assert '1. 0.95 class 1' in out
    assert (tmp_path / 'out' / 'clip_top3.png').is_file()


def test_video_demo_reads_test_dataloader_pipeline(tmp_path, video):
    # test_pipeline samples 8 frames, the test dataloader 4 (as trained)
    config = _video_cfg(tmp_path, frames=4, top_clip=8, loader_clip=4)
    top = video_demo.main([config, 'none', video, '--topk', '2',
                           '--out-dir', str(tmp_path / 'out')])
    assert len(top) == 2
    # --cfg-options is merged before the model and the pipeline are built
    config = _video_cfg(tmp_path, 'eight.py', frames=8, top_clip=8,
                        loader_clip=8)
    top = video_demo.main([
        config, 'none', video, '--topk', '1', '--out-dir',
        str(tmp_path / 'out'), '--cfg-options', 'model.backbone.num_frames=2',
        'test_dataloader.dataset.pipeline.1.clip_len=2',
        'model.cls_head.num_classes=4'])
    assert len(top) == 1 and top[0][0] in {f'class {i}' for i in range(4)}


def test_video_demo_names_unreadable_video(tmp_path):
    config = _video_cfg(tmp_path)
    bad = tmp_path / 'broken.mp4'
    bad.write_bytes(b'\x00\x00\x00\x18ftypmp42' + b'\x01' * 64)
    with pytest.raises(SystemExit) as exc:
        video_demo.main([config, 'none', str(bad), '--out-dir',
                         str(tmp_path / 'out')])
    assert str(exc.value.code).startswith(
        f'error: cannot read video {str(bad)!r}: ')


def test_demos_name_a_missing_config(tmp_path, video):
    """One ``error:`` line (``morphmlp_mm.utils.cli.read_config``), not a
    ``FileNotFoundError`` traceback."""
    missing = str(tmp_path / 'configs' / 'typo.py')
    image = _image(tmp_path / 'in.png')
    for call in (lambda: video_demo.main([missing, 'none', video]),
                 lambda: image_demo.main([image, missing])):
        with pytest.raises(SystemExit) as exc:
            call()
        assert str(exc.value.code).startswith(
            f'error: config {missing}: no such file')


# --------------------------------------------------------------------------
# image_demo.py
# --------------------------------------------------------------------------
def _image_cfg(tmp_path, name='image_cfg.py', classes=3):
    path = tmp_path / name
    path.write_text(IMAGE_CFG.format(arch=ARCH, classes=classes))
    return str(path)


def _seg_cfg(tmp_path, name='seg_cfg.py'):
    path = tmp_path / name
    path.write_text(SEG_CFG.format(arch=ARCH))
    return str(path)


def test_image_demo_loads_a_fitting_checkpoint(tmp_path, capsys):
    config = _image_cfg(tmp_path)
    model = _build(config, 'mmpretrain')
    _bias_head(model, model.head.fc, [0., 6., 0.])
    ckpt = _save(model, tmp_path / 'fit.pth',
                 dataset_meta=dict(classes=('cat', 'dog', 'owl')))
    image = _image(tmp_path / 'in.png')
    out = tmp_path / 'drawn.png'
    rows = image_demo.main([image, config, '--checkpoint', ckpt,
                            '--out-file', str(out), '--topk', '2'])
    assert [r['name'] for r in rows] == ['dog', 'cat']
    assert rows[0]['score'] == pytest.approx(_softmax([0, 6, 0])[1],
                                             rel=1e-4)
    assert f'wrote {out}' in capsys.readouterr().out
    assert cv2.imread(str(out)) is not None
    # class names that do not fit the head are not used (mmpretrain would
    # index past them)
    ckpt = _save(model, tmp_path / 'two_names.pth',
                 dataset_meta=dict(classes=('cat', 'dog')))
    rows = image_demo.main([image, config, '--checkpoint', ckpt,
                            '--out-file', str(out), '--topk', '1'])
    assert [r['name'] for r in rows] == ['class 1']
    assert 'names 2 classes, the head predicts 3' in capsys.readouterr().err


@pytest.mark.parametrize('kind', ['head', 'segmentation'])
def test_image_demo_refuses_checkpoint_of_another_model(tmp_path, kind):
    config = _image_cfg(tmp_path)
    if kind == 'head':
        other = _build(_image_cfg(tmp_path, 'five.py', classes=5),
                       'mmpretrain')
        detail = 'head.fc.weight: checkpoint [5, 16] vs model [3, 16]'
    else:  # its backbone fits: was loaded partly, with a random head
        other = _build(_seg_cfg(tmp_path), 'mmseg')
        detail = 'missing in the checkpoint: head.fc.weight, head.fc.bias'
    ckpt = _save(other, tmp_path / 'other.pth')
    out = tmp_path / 'drawn.png'
    with pytest.raises(SystemExit) as exc:
        image_demo.main([_image(tmp_path / 'in.png'), config,
                         '--checkpoint', ckpt, '--out-file', str(out)])
    msg = str(exc.value.code)
    assert msg.startswith(f'error: checkpoint {ckpt} ' + MISMATCH)
    assert detail in msg
    assert not out.exists()


def test_image_demo_refuses_to_overwrite_its_input(tmp_path, monkeypatch,
                                                   capsys):
    config = _image_cfg(tmp_path)
    image = _image(tmp_path / 'photo.png')
    original = open(image, 'rb').read()
    os.symlink(image, tmp_path / 'link.png')
    monkeypatch.chdir(tmp_path)
    for out in (image, './photo.png', str(tmp_path / 'link.png')):
        with pytest.raises(SystemExit) as exc:
            image_demo.main([image, config, '--out-file', out])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f'--out-file {out!r} is the input image' in err
    assert open(image, 'rb').read() == original


# --------------------------------------------------------------------------
# seg_demo.py
# --------------------------------------------------------------------------
def test_seg_demo_loads_a_fitting_checkpoint(tmp_path, capsys):
    config = _seg_cfg(tmp_path)
    model = _build(config, 'mmseg')
    _bias_head(model, model.decode_head.conv_seg, [0., 0., 5.])
    ckpt = _save(model, tmp_path / 'fit.pth', dataset_meta=dict(
        classes=('sky', 'road', 'tree'),
        palette=[[0, 0, 255], [128, 128, 128], [0, 255, 0]]))
    out = tmp_path / 'overlay.png'
    seg_demo.main([config, _image(tmp_path / 'in.png'), '--checkpoint', ckpt,
                   '--out', str(out), '--device', 'cpu'])
    printed = capsys.readouterr().out
    assert f'wrote {out} (32x32)' in printed
    assert 'tree: 100.0%' in printed
    assert cv2.imread(str(out)) is not None


def test_seg_demo_refuses_checkpoint_of_another_model(tmp_path):
    config = _seg_cfg(tmp_path)
    other = _build(_image_cfg(tmp_path), 'mmpretrain')
    ckpt = _save(other, tmp_path / 'cls.pth')
    out = tmp_path / 'overlay.png'
    with pytest.raises(SystemExit) as exc:
        seg_demo.main([config, _image(tmp_path / 'in.png'), '--checkpoint',
                       ckpt, '--out', str(out), '--device', 'cpu'])
    msg = str(exc.value.code)
    assert msg.startswith(f'error: checkpoint {ckpt} ' + MISMATCH)
    assert 'missing in the checkpoint: decode_head.' in msg
    assert not out.exists()


def test_seg_demo_refuses_to_overwrite_its_input(tmp_path, monkeypatch,
                                                 capsys):
    config = _seg_cfg(tmp_path)
    image = _image(tmp_path / 'shot_seg.png')
    original = open(image, 'rb').read()
    monkeypatch.chdir(tmp_path)
    for out in (image, 'shot_seg.png', './shot_seg.png'):
        with pytest.raises(SystemExit) as exc:
            seg_demo.main([config, 'shot_seg.png', '--device', 'cpu',
                           '--out', out])
        assert exc.value.code == 2
        assert f"--out {out!r} is the input image 'shot_seg.png'" in \
            capsys.readouterr().err
    assert open(image, 'rb').read() == original
    # the default output, <stem>_seg.png in the current directory, is
    # another file: written, and the path printed
    seg_demo.main([config, 'shot_seg.png', '--device', 'cpu'])
    assert 'wrote shot_seg_seg.png (32x32)' in capsys.readouterr().out
    assert open(image, 'rb').read() == original
