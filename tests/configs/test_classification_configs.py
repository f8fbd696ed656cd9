"""The ImageNet-1k configs of MorphMLP-T/S/B/L (configs/classification/).

* every config loads, carries the paper's DeiT recipe and builds a model
  with the expected parameter count that classifies a small batch;
* the T config trains for 2 iterations, validates and tests on a tiny
  ImageNet-layout folder (tools/data/make_tiny_dataset.py imagenet) through
  tools/train.py and tools/test.py in subprocesses, at a 64-pixel crop;
* tools/demo/image_demo.py classifies a real scikit-image photo and prints
  the top-5 ImageNet classes;
* tools/analysis/get_flops.py prints the paper's FLOPs for MorphMLP-T.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from mmengine.config import Config
from tool_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs' / 'classification'

#: arch -> (drop path, head channels, measured params (M), paper top-1)
VARIANTS = {
    'tiny': (0.1, 588, 23.39, 81.6),
    'small': (0.1, 784, 40.55, 82.6),
    'base': (0.3, 784, 57.98, 83.2),
    'large': (0.4, 784, 76.19, 83.4),
}


def _config_path(arch: str) -> Path:
    return CONFIG_DIR / f'morphmlp-{arch}_8xb128_in1k.py'


def _run(args, cwd, timeout=900) -> str:
    """Run a repo tool with the venv's python; return stdout+stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='2')
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _types(pipeline):
    return [t['type'] for t in pipeline]


# --------------------------------------------------------------------------
# load + build
# --------------------------------------------------------------------------
@pytest.mark.parametrize('arch', list(VARIANTS))
def test_config_recipe_and_build(arch):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    drop_path, channels, params_m, _ = VARIANTS[arch]
    cfg = Config.fromfile(str(_config_path(arch)))

    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports.imports == ['morphmlp_mm']
    assert not cfg.custom_imports.allow_failed_imports
    backbone, head = cfg.model.backbone, cfg.model.head
    assert backbone.type == 'MorphMLP' and backbone.arch == arch
    assert backbone.drop_path_rate == drop_path
    assert backbone.out_type == 'avg_featmap'
    assert head.type == 'LinearClsHead' and head.in_channels == channels
    assert head.num_classes == 1000
    assert head.loss.type == 'LabelSmoothLoss'
    assert head.loss.label_smooth_val == 0.1
    augments = {a.type: a.alpha for a in cfg.model.train_cfg.augments}
    assert augments == {'Mixup': 0.8, 'CutMix': 1.0}

    # DeiT recipe: batch 1024 = 8 x 128, AdamW lr 1e-3 (not the paper's
    # misprinted 0.01), wd .05, 300 epochs, 20 warm-up epochs + cosine.
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.auto_scale_lr.base_batch_size == 1024
    optim = cfg.optim_wrapper.optimizer
    assert optim.type == 'AdamW'
    assert optim.lr == pytest.approx(1e-3)
    assert optim.weight_decay == 0.05
    assert cfg.optim_wrapper.paramwise_cfg == dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0)
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 20
    assert cosine.type == 'CosineAnnealingLR' and cosine.begin == 20

    train = cfg.train_dataloader.dataset.pipeline
    assert _types(train) == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip',
        'RandAugment', 'RandomErasing', 'PackInputs'
    ]
    assert train[1].interpolation == 'bicubic' and train[1].scale == 224
    rand_aug = train[3]
    assert (rand_aug.policies, rand_aug.num_policies,
            rand_aug.magnitude_level, rand_aug.magnitude_std) == (
                'timm_increasing', 2, 9, 0.5)
    assert train[4].erase_prob == 0.25
    test = cfg.test_dataloader.dataset.pipeline
    assert test[1].interpolation == 'bicubic' and test[2].crop_size == 224
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor.std == [58.395, 57.12, 57.375]

    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(params_m, abs=0.01)
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()


# --------------------------------------------------------------------------
# train / val / test on a tiny ImageNet folder
# --------------------------------------------------------------------------
TINY_OVERRIDES = '''
_base_ = [{base!r}]
data_root = {root!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=[103.53, 116.28, 123.675],
         fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=73, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=10, num_workers=0,
                        persistent_workers=False,
                        dataset=dict(data_root=data_root,
                                     pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=True,
                        end=1, convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1))
'''


def test_train_val_test_tiny_imagenet(tmp_path):
    data_root = tmp_path / 'in1k'
    out = _run([ROOT / 'tools/data/make_tiny_dataset.py', 'imagenet',
                '--out', data_root, '--num-classes', 4, '--per-class', 5,
                '--val-per-class', 2], cwd=tmp_path)
    assert 'num_train: 20' in out
    cfg_file = tmp_path / 'morphmlp-tiny_tiny-in1k.py'
    cfg_file.write_text(
        TINY_OVERRIDES.format(
            base=str(_config_path('tiny')), root=str(data_root)))

    work_dir = tmp_path / 'work'
    log = _run([ROOT / 'tools/train.py', cfg_file, '--work-dir', work_dir,
                '--seed', 0], cwd=tmp_path)
    # 20 images / batch 10 = 2 iterations, then validation on 8 images
    assert 'Epoch(train) [1][2/2]' in log
    assert 'Epoch(train) [1][3/' not in log
    val = re.search(r'Epoch\(val\) \[1\]\[1/1\].*accuracy/top1: ([\d.]+)',
                    log)
    assert val is not None, log[-3000:]
    assert 0 <= float(val.group(1)) <= 100
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()

    log = _run([ROOT / 'tools/test.py', cfg_file, ckpt, '--work-dir',
                work_dir], cwd=tmp_path)
    test = re.search(r'Epoch\(test\) \[1/1\].*accuracy/top1: ([\d.]+)'
                     r'\s+accuracy/top5: ([\d.]+)', log)
    assert test is not None, log[-3000:]
    # the test run reloads the trained weights: same accuracy as val
    assert float(test.group(1)) == float(val.group(1))


# --------------------------------------------------------------------------
# demo on a real photo
# --------------------------------------------------------------------------
def test_image_demo_real_photo_top5(tmp_path, capsys):
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    demo = load_script('tools/demo/image_demo.py')
    out_file = tmp_path / 'chelsea_top5.jpg'
    rows = demo.main(['skimage:chelsea', str(_config_path('tiny')),
                      '--out-file', str(out_file)])
    captured = capsys.readouterr()
    assert 'RANDOM' in captured.err
    assert 'meaningless' in captured.err.lower()

    assert [r['rank'] for r in rows] == [1, 2, 3, 4, 5]
    scores = [r['score'] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s < 1 for s in scores)
    printed = [line for line in captured.out.splitlines()
               if re.match(r'\s+[1-5]\. ', line)]
    assert len(printed) == 5
    for row, line in zip(rows, printed):
        assert row['name'] == IMAGENET_CATEGORIES[row['label']]
        assert row['name'] in line

    written = cv2.imread(str(out_file))
    assert written is not None and written.shape == (300, 451, 3)
    # the label box darkens the top-left corner of the photo
    original = demo.load_rgb('skimage:chelsea')[..., ::-1]
    assert written[:20, :100].mean() < original[:20, :100].mean() - 20


def test_image_demo_rejects_bad_input(tmp_path):
    demo = load_script('tools/demo/image_demo.py')
    with pytest.raises(ValueError, match='no photo'):
        demo.load_rgb('skimage:not_a_photo')
    with pytest.raises(ValueError, match='no such file'):
        demo.load_rgb(str(tmp_path / 'missing.jpg'))


# --------------------------------------------------------------------------
# FLOPs of the paper table (MorphMLP-T only: the others take minutes here)
# --------------------------------------------------------------------------
def test_get_flops_tiny_matches_paper_table(capsys):
    tool = load_script('tools/analysis/get_flops.py')
    result = tool.main([str(_config_path('tiny'))])
    text = capsys.readouterr().out
    assert result['input_shape'] == [1, 3, 224, 224]
    assert result['counted'] == ['backbone']
    # paper table / reference: 3.96 GMACs (conv + linear); mmengine also
    # counts the norm layers (+0.5%)
    assert result['gflops'] == pytest.approx(3.96, rel=0.01)
    assert result['params'] / 1e6 == pytest.approx(23.39, abs=0.01)
    assert f"FLOPs:           {result['gflops']:.2f} GMACs" in text
    assert 'Params:          23.39 M' in text


def test_metafile_lists_every_config():
    import yaml
    meta = yaml.safe_load((CONFIG_DIR / 'metafile.yml').read_text())
    models = {m['Name']: m for m in meta['Models']}
    assert set(models) == {
        f'morphmlp-{arch}_8xb128_in1k' for arch in VARIANTS}
    for arch, (_, _, params_m, top1) in VARIANTS.items():
        entry = models[f'morphmlp-{arch}_8xb128_in1k']
        assert (ROOT / entry['Config']) == _config_path(arch)
        assert entry['Metadata']['Parameters'] == round(params_m * 1e6)
        assert entry['Metadata']['Batch Size'] == 1024
        metrics = entry['Results'][0]['Metrics']
        assert metrics['Top 1 Accuracy'] == top1
