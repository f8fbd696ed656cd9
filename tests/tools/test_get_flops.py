"""tools/analysis/get_flops.py on video, segmentation and image configs.

Configs are written to tmp_path with tiny custom MorphMLP archs so that the
counts run in seconds; the numbers are checked against independent
``mmengine.analysis`` counts of the bare backbones (their plain-algorithm
twins, which the tool counts by default) and against exact MAC formulas (a
linear head adds in_channels x classes).
"""
import json
import logging
import warnings
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from morphmlp_mm.models.plain import build_plain
from tool_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
gf = load_script('tools/analysis/get_flops.py')

ARCH = ("dict(depths=[1, 1, 1, 1], channels=[16, 32, 56, 112], "
        "chunk_lengths=[4, 8, 8, 16])")

VIDEO_CFG = '''
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)
default_scope = 'mmaction'
model = dict(
    type='Recognizer3D',
    backbone=dict(type='MorphMLP3D', arch={arch}, num_frames={frames}),
    cls_head=dict(type='I3DHead', in_channels=112, num_classes={classes},
                  dropout_ratio=0.),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           format_shape='NCTHW'))
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len={frames}, frame_interval=2,
         num_clips={clips}, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='{crop}', crop_size=64),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_dataloader = dict(
    batch_size=1,
    dataset=dict(type='VideoDataset', ann_file='list.txt',
                 data_prefix=dict(video='videos'), pipeline=test_pipeline,
                 test_mode=True))
'''

SEG_CFG = '''
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', size=(64, 64)),
    backbone=dict(type='MorphMLP', arch={arch}, out_indices=(0, 1, 2, 3),
                  out_type='featmap'),
    neck=dict(type='FPN', in_channels=[16, 32, 56, 112], out_channels=32,
              num_outs=4),
    decode_head=dict(type='FPNHead', in_channels=[32, 32, 32, 32],
                     in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
                     channels=32, dropout_ratio=0.1, num_classes=150,
                     norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss')),
    auxiliary_head=dict(type='FCNHead', in_channels=56, in_index=2,
                        channels=64, num_convs=1, num_classes=150,
                        norm_cfg=norm_cfg,
                        loss_decode=dict(type='CrossEntropyLoss',
                                         loss_weight=0.4)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
'''

IMAGE_CFG = '''
_base_ = [{base!r}]
# a dict arch replaces the base's string arch: the backbone is redefined
model = dict(
    backbone=dict(_delete_=True, type='MorphMLP', arch={arch},
                  out_type='avg_featmap'),
    head=dict(in_channels=112))
'''


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _video_cfg(tmp_path, frames=4, clips=2, crop='ThreeCrop', classes=7):
    return _write(tmp_path, 'video.py', VIDEO_CFG.format(
        arch=ARCH, frames=frames, clips=clips, crop=crop, classes=classes))


def _macs(module: torch.nn.Module, inputs: torch.Tensor) -> int:
    """An independent mmengine count of a bare module."""
    from mmengine.analysis import FlopAnalyzer
    logger = logging.getLogger('mmengine')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            analyzer = FlopAnalyzer(module.eval(), (inputs, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            return analyzer.total()
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------
# video
# --------------------------------------------------------------------------
def test_video_per_view_times_views(tmp_path, capsys):
    from morphmlp_mm import MorphMLP3D
    cfg = _video_cfg(tmp_path, frames=4, clips=2, crop='ThreeCrop')
    out_json = tmp_path / 'flops.json'
    result = gf.main([cfg, '--shape', '64', '--json', str(out_json)])
    text = capsys.readouterr().out

    # T comes from model.backbone.num_frames, the size from --shape
    assert result['task'] == 'video'
    assert result['input_shape'] == [1, 3, 4, 64, 64]
    assert (result['clips'], result['crops'], result['views']) == (2, 3, 6)
    assert result['flops_all_views'] == 6 * result['flops']
    assert result['counted'] == ['backbone']

    # equals a count of the bare backbone (plain algorithm) on one view
    backbone = MorphMLP3D(eval(ARCH), num_frames=4)
    assert result['implementation'] == 'plain'
    assert result['flops'] == _macs(build_plain(backbone),
                                    torch.zeros(1, 3, 4, 64, 64))
    assert result['params_counted'] == sum(
        p.numel() for p in backbone.parameters())
    assert result['params'] == result['params_counted'] + 112 * 7 + 7

    assert 'FLOPs per view:' in text
    assert '2 clips x 3 crops = 6' in text
    assert f"FLOPs x views:   {result['gflops_all_views']:.2f} GMACs" in text
    saved = json.loads(out_json.read_text())
    assert saved['flops_all_views'] == result['flops_all_views']


def test_video_with_head_adds_the_linear_classifier(tmp_path, capsys):
    cfg = _video_cfg(tmp_path, frames=4, clips=1, crop='CenterCrop',
                     classes=9)
    plain = gf.main([cfg, '--shape', '4', '48', '48'])
    head = gf.main([cfg, '--shape', '4', '48', '48', '--with-head'])
    capsys.readouterr()
    assert head['counted'] == ['backbone', 'cls_head']
    # I3DHead: pooling (not counted) + Linear(112, 9)
    assert head['flops'] - plain['flops'] == 112 * 9
    assert head['views'] == plain['views'] == 1


def test_video_shape_forms(tmp_path):
    cfg = Config.fromfile(_video_cfg(tmp_path, frames=6))
    assert gf.resolve_shape('video', None, cfg) == (1, 3, 6, 224, 224)
    assert gf.resolve_shape('video', [96], cfg) == (1, 3, 6, 96, 96)
    assert gf.resolve_shape('video', [64, 80], cfg) == (1, 3, 6, 64, 80)
    assert gf.resolve_shape('video', [32, 224, 224],
                            cfg) == (1, 3, 32, 224, 224)
    assert gf.resolve_shape('video', [3, 8, 64, 64], cfg) == (1, 3, 8, 64, 64)
    assert gf.resolve_shape('video', [2, 3, 8, 64, 64],
                            cfg) == (2, 3, 8, 64, 64)
    with pytest.raises(ValueError, match='--shape for a video model'):
        gf.resolve_shape('video', [1, 2, 3, 8, 64, 64], cfg)
    with pytest.raises(ValueError, match='positive'):
        gf.resolve_shape('video', [0, 64], cfg)
    # without num_frames the test sampler's clip_len is used
    del cfg.model.backbone['num_frames']
    assert gf.resolve_shape('video', None, cfg) == (1, 3, 6, 224, 224)
    cfg.test_dataloader.dataset.pipeline = []
    with pytest.raises(ValueError, match='clip length'):
        gf.resolve_shape('video', None, cfg)


@pytest.mark.parametrize('pipeline, expected', [
    ([dict(type='SampleFrames', clip_len=16, num_clips=4, test_mode=True),
      dict(type='CenterCrop', crop_size=224)], (4, 1)),
    ([dict(type='SampleFrames', clip_len=32, num_clips=10, test_mode=True),
      dict(type='TenCrop', crop_size=224)], (10, 10)),
    ([dict(type='UniformSample', clip_len=16, num_clips=1, test_mode=True),
      dict(type='ThreeCrop', crop_size=224)], (1, 3)),
    ([dict(type='mmaction.DenseSampleFrames', clip_len=8, num_clips=1,
           test_mode=True),
      dict(type='ThreeCrop', crop_size=256)], (10, 3)),
    ([dict(type='SampleFrames', clip_len=8, num_clips=2, twice_sample=True,
           test_mode=True)], (4, 1)),
    ([], (1, 1)),
])
def test_count_test_views(pipeline, expected):
    views = gf.count_test_views(pipeline)
    assert (views['clips'], views['crops']) == expected
    assert views['views'] == expected[0] * expected[1]


def test_test_pipeline_found_through_dataset_wrappers():
    pipeline = [dict(type='SampleFrames', clip_len=8, num_clips=3),
                dict(type='ThreeCrop', crop_size=64)]
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2,
        dataset=dict(type='VideoDataset', pipeline=pipeline)))))
    assert gf.count_test_views(gf.find_test_pipeline(cfg))['views'] == 9


# --------------------------------------------------------------------------
# segmentation
# --------------------------------------------------------------------------
def test_seg_default_is_whole_segmentor_at_512(tmp_path, capsys):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg_file = _write(tmp_path, 'seg.py', SEG_CFG.format(arch=ARCH))
    result = gf.main([cfg_file])
    text = capsys.readouterr().out
    assert result['task'] == 'seg'
    assert result['input_shape'] == [1, 3, 512, 512]
    assert result['counted'] == ['backbone', 'neck', 'decode_head']
    assert 'auxiliary head excluded' in text
    assert 'views' not in result

    # params: the segmentor without its auxiliary head
    cfg = Config.fromfile(cfg_file)
    init_default_scope('mmseg')
    full = MODELS.build(cfg.model)
    aux = sum(p.numel() for p in full.auxiliary_head.parameters())
    assert aux > 0
    assert result['params'] == sum(p.numel()
                                   for p in full.parameters()) - aux


def test_seg_no_head_counts_backbone_and_neck(tmp_path, capsys):
    from morphmlp_mm import MorphMLP
    cfg_file = _write(tmp_path, 'seg.py', SEG_CFG.format(arch=ARCH))
    whole = gf.main([cfg_file, '--shape', '96', '128'])
    plain = gf.main([cfg_file, '--shape', '96', '128', '--no-head'])
    capsys.readouterr()
    assert whole['input_shape'] == plain['input_shape'] == [1, 3, 96, 128]
    assert plain['counted'] == ['backbone', 'neck']
    assert 0 < plain['flops'] < whole['flops']
    backbone = MorphMLP(eval(ARCH), out_indices=(0, 1, 2, 3),
                        out_type='featmap')
    assert plain['flops'] > _macs(build_plain(backbone),
                                  torch.zeros(1, 3, 96, 128))


# --------------------------------------------------------------------------
# image
# --------------------------------------------------------------------------
def test_image_custom_arch_and_cfg_options(tmp_path, capsys):
    from morphmlp_mm import MorphMLP
    base = ROOT / 'configs/classification/morphmlp-tiny_8xb128_in1k.py'
    cfg = _write(tmp_path, 'img.py',
                 IMAGE_CFG.format(base=str(base), arch=ARCH))
    plain = gf.main([cfg, '--shape', '64'])
    head = gf.main([cfg, '--shape', '64', '--with-head', '--cfg-options',
                    'model.head.num_classes=10'])
    capsys.readouterr()
    assert plain['task'] == 'image'
    assert plain['input_shape'] == [1, 3, 64, 64]
    backbone = MorphMLP(eval(ARCH))
    assert plain['flops'] == _macs(build_plain(backbone),
                                   torch.zeros(1, 3, 64, 64))
    # LinearClsHead with 10 classes on 112 channels
    assert head['flops'] - plain['flops'] == 112 * 10
    assert head['params'] == head['params_counted']


def test_ignore_norms_counts_less(tmp_path, capsys):
    base = ROOT / 'configs/classification/morphmlp-tiny_8xb128_in1k.py'
    cfg = _write(tmp_path, 'img.py',
                 IMAGE_CFG.format(base=str(base), arch=ARCH))
    counted = gf.main([cfg, '--shape', '64'])
    ignored = gf.main([cfg, '--shape', '64', '--ignore-norms'])
    assert 'norm layers are not counted' in capsys.readouterr().out
    assert 0 < ignored['flops'] < counted['flops']


def test_image_shape_forms_and_errors(tmp_path, capsys):
    cfg = Config(dict(model=dict(type='ImageClassifier')))
    assert gf.infer_task(cfg) == 'image'
    assert gf.resolve_shape('image', None, cfg) == (1, 3, 224, 224)
    assert gf.resolve_shape('seg', None, cfg) == (1, 3, 512, 512)
    assert gf.resolve_shape('image', [3, 96, 64], cfg) == (1, 3, 96, 64)
    assert gf.infer_task(Config(dict(model=dict(
        type='mmseg.EncoderDecoder')))) == 'seg'
    with pytest.raises(ValueError, match='cannot tell the task'):
        gf.infer_task(Config(dict(model=dict(type='Detector'))))
    base = ROOT / 'configs/classification/morphmlp-tiny_8xb128_in1k.py'
    with pytest.raises(SystemExit, match='--shape for an image'):
        gf.main([str(base), '--shape', '1', '2', '3', '4', '5'])


def test_runtime_path_counts_the_forward_that_runs(tmp_path, capsys):
    from morphmlp_mm import MorphMLP
    base = ROOT / 'configs/classification/morphmlp-tiny_8xb128_in1k.py'
    cfg = _write(tmp_path, 'img.py',
                 IMAGE_CFG.format(base=str(base), arch=ARCH))
    result = gf.main([cfg, '--shape', '64', '--runtime-path'])
    assert 'optimised MorphMLP path' in capsys.readouterr().out
    assert result['implementation'] == 'runtime'
    backbone = MorphMLP(eval(ARCH))
    assert result['flops'] == _macs(backbone, torch.zeros(1, 3, 64, 64))


TSN_CFG = '''
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)
default_scope = 'mmaction'
model = dict(
    type='Recognizer2D',
    backbone=dict(type='mmpretrain.MorphMLP', arch={arch},
                  out_type='featmap'),
    cls_head=dict(type='TSNHead', num_classes=5, in_channels=112,
                  average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           format_shape='NCHW'))
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=8,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='TenCrop', crop_size=64),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs'),
]
test_dataloader = dict(dataset=dict(type='VideoDataset', ann_file='a.txt',
                                    pipeline=test_pipeline))
'''


def test_2d_recognizer_counts_frames(tmp_path, capsys):
    from morphmlp_mm import MorphMLP
    cfg = _write(tmp_path, 'tsn.py', TSN_CFG.format(arch=ARCH))
    result = gf.main([cfg, '--shape', '64'])
    text = capsys.readouterr().out
    # one view = one frame; 8 sampled frames x 10 crops
    assert result['input_shape'] == [1, 3, 64, 64]
    assert (result['clips'], result['crops'], result['views']) == (8, 10, 80)
    assert '8 frames x 10 crops = 80' in text
    backbone = MorphMLP(eval(ARCH), out_type='featmap')
    assert result['flops'] == _macs(build_plain(backbone),
                                    torch.zeros(1, 3, 64, 64))
    assert result['flops_all_views'] == 80 * result['flops']


# --------------------------------------------------------------------------
# user errors
# --------------------------------------------------------------------------
def _image_cfg(tmp_path) -> str:
    base = ROOT / 'configs/classification/morphmlp-tiny_8xb128_in1k.py'
    return _write(tmp_path, 'img.py',
                  IMAGE_CFG.format(base=str(base), arch=ARCH))


def test_missing_config_is_named(tmp_path):
    missing = tmp_path / 'configs' / 'morphmlp_typo.py'
    with pytest.raises(SystemExit) as info:
        gf.main([str(missing)])
    text = str(info.value.code)
    assert text.startswith(f'error: config {missing}: no such file')
    assert 'Pass the path of a config' in text


def test_json_into_a_new_folder(tmp_path, capsys):
    out_json = tmp_path / 'reports' / 'tiny' / 'flops.json'
    result = gf.main([_image_cfg(tmp_path), '--shape', '32', '--json',
                      str(out_json)])
    capsys.readouterr()
    assert json.loads(out_json.read_text())['flops'] == result['flops']


def test_json_problems_stop_before_counting(tmp_path, monkeypatch):
    def no_count(*args, **kwargs):
        raise AssertionError('counted before checking --json')

    monkeypatch.setattr(gf, 'get_flops', no_count)
    cfg = _image_cfg(tmp_path)
    with pytest.raises(SystemExit, match='--json .* is a folder'):
        gf.main([cfg, '--json', str(tmp_path)])
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(SystemExit, match='cannot create the folder'):
        gf.main([cfg, '--json', str(blocker / 'sub' / 'flops.json')])


def test_wrong_channel_count_prints_a_plain_shape(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        gf.main([_image_cfg(tmp_path), '--shape', '1', '64', '64'])
    text = str(info.value.code)
    assert text == ('error: MorphMLP was built with in_channels=3, got an '
                    'input with 1 channels (shape (1, 1, 64, 64))')


# --------------------------------------------------------------------------
# tools/analysis/model_table.py --only
# --------------------------------------------------------------------------
@pytest.mark.parametrize('only, expected', [
    (['tiny'], ['MorphMLP-T']),
    (['T'], ['MorphMLP-T']),
    (['morphmlp-t'], ['MorphMLP-T']),
    (['L', 'Base'], ['MorphMLP-B', 'MorphMLP-L', 'MorphMLP3D-B16',
                     'MorphMLP3D-B32']),
    (['s16', 'SMALL32', 'MorphMLP3D-B16'],
     ['MorphMLP3D-S16', 'MorphMLP3D-S32', 'MorphMLP3D-B16']),
])
def test_model_table_only_accepts_arch_names_and_aliases(only, expected):
    mt = load_script('tools/analysis/model_table.py')
    assert [v[0] for v in mt.select_variants(only)] == expected
    assert len(mt.select_variants(None)) == len(mt.VARIANTS)


def test_model_table_only_tiny_prints_a_row(capsys):
    mt = load_script('tools/analysis/model_table.py')
    rows = mt.main(['--quick', '--only', 'tiny'])
    assert [r['variant'] for r in rows] == ['MorphMLP-T']
    assert 'MorphMLP-T' in capsys.readouterr().out
    assert torch.is_grad_enabled()  # no global state left behind
    with pytest.raises(SystemExit, match="'xl' matches no variant.*'tiny'"):
        mt.main(['--quick', '--only', 'tiny', 'xl'])
