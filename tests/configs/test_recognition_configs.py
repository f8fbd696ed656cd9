"""The video recognition configs (MorphMLP-S/B, 16/32 frames, K400 / SSV2).

What is checked:

* every config in ``configs/recognition`` loads with ``Config.fromfile``;
  every full (long-name) config builds its model from mmaction2's
  ``MODELS`` (on the meta device: shapes only, no random init), with the
  parameter count of the official model; every short name resolves to the
  same config as its long name;
* the official recipe is in the configs: AdamW without decay on norms and
  biases, warm-up + cosine, the epochs / learning rates / drop path per
  config, mixup 0.8 / cutmix 1.0, label smoothing 0.1, RandAugment,
  random erasing 0.25, clipping at 20, AMP, 0.45/0.225 normalisation,
  dense 16x4 / 32x4 sampling with 4 clips x 1 crop (K400), uniform
  sampling without flip and 1 clip x 3 crops (SSV2); the optimizer built
  from the config really has weight decay 0 on exactly the 1-D parameters;
* the full MorphMLP-S model of a config computes a loss (with mixup /
  cutmix and label smoothing) and gradients on a small clip;
* the decoder switch: ``MORPHMLP_DECODER`` = decord / pyav / opencv changes
  every pipeline and the training dataset, and each backend decodes real
  files through the config's test pipeline into the configured views;
* end to end, as subprocesses on tiny datasets written by
  ``tools/data/make_tiny_dataset.py``: ``tools/train.py`` on the headline
  ``morphmlp_b_ssv2.py`` and on the K400 S16 config trains 2 iterations,
  validates, saves; ``tools/test.py`` reports top-1 / top-5 / mean class
  accuracy from mmaction2's AccMetric; ``--resume`` continues at epoch 2;
  ``tools/dist_train.sh`` trains 2 iterations with 2 CPU processes (gloo).

Cost control (2 shared CPU cores): the end-to-end runs keep each config as
it is (pipelines, sampling, clip length 32 / 16, augmentations, datasets,
optimizer, schedules, hooks, evaluator) and override only what cannot run
on a CPU in seconds, with ``--cfg-options``:

* the data roots, batch sizes and ``num_workers`` (tiny data);
* the crop size 224 -> 32 (the Resize / CenterCrop / ThreeCrop entries);
* ``optim_wrapper.type=OptimWrapper`` (AMP needs a GPU);
* the backbone arch: MorphMLP-B with AdamW state makes every checkpoint
  ~0.8 GB and a 32-frame step takes many seconds on 2 cores, so
  ``model.backbone.arch`` becomes depths (1, 1, 1, 1), channels
  (28, 56, 112, 196) with the official chunk lengths 14/28/28/49 (the same
  MorphFC windows and padding as every official variant) and
  ``cls_head.in_channels`` 196. The real S/B models are built in
  ``test_config_loads_and_builds`` and run in ``test_full_model_loss``.
* one torch thread per process (thread oversubscription on a loaded 2-core
  machine makes tiny models 100x slower).
"""
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from tool_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
CFG_DIR = ROOT / 'configs' / 'recognition'
K400 = 'kinetics400'
SSV2 = 'sthv2'

#: full config -> (arch, frames, dataset, drop path, lr, warm-up, epochs,
#: parameters in millions with the head). Recipes: MTLab/MorphMLP
#: configs/{K400,SSV2}/*.yaml; parameter counts: shared/reference.
RECIPES = {
    'morphmlp-small_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py':
    ('small', 16, K400, 0.1, 2e-4, 10, 60, 47.04),
    'morphmlp-small_in1k-pre_8xb8-amp-32x4x1-60e_kinetics400-rgb.py':
    ('small', 32, K400, 0.1, 2e-4, 10, 60, 47.46),
    'morphmlp-base_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py':
    ('base', 16, K400, 0.3, 2e-4, 10, 60, 67.78),
    'morphmlp-base_in1k-pre_8xb8-amp-32x4x1-60e_kinetics400-rgb.py':
    ('base', 32, K400, 0.3, 2e-4, 30, 60, 68.49),
    'morphmlp-small_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py':
    ('small', 16, SSV2, 0.3, 4e-4, 5, 60, 46.86),
    'morphmlp-small_in1k-pre_8xb8-amp-u32-60e_sthv2-rgb.py':
    ('small', 32, SSV2, 0.3, 4e-4, 5, 60, 47.29),
    'morphmlp-base_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py':
    ('base', 16, SSV2, 0.6, 4e-4, 5, 60, 67.61),
    'morphmlp-base_in1k-pre_8xb8-amp-u32-64e_sthv2-rgb.py':
    ('base', 32, SSV2, 0.6, 4e-4, 5, 64, 68.31),
}
#: short name -> full config
SHORT_NAMES = {
    'morphmlp_s_k400_16f.py':
    'morphmlp-small_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py',
    'morphmlp_s_k400.py':
    'morphmlp-small_in1k-pre_8xb8-amp-32x4x1-60e_kinetics400-rgb.py',
    'morphmlp_b_k400_16f.py':
    'morphmlp-base_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py',
    'morphmlp_b_k400.py':
    'morphmlp-base_in1k-pre_8xb8-amp-32x4x1-60e_kinetics400-rgb.py',
    'morphmlp_s_ssv2_16f.py':
    'morphmlp-small_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py',
    'morphmlp_s_ssv2.py':
    'morphmlp-small_in1k-pre_8xb8-amp-u32-60e_sthv2-rgb.py',
    'morphmlp_b_ssv2_16f.py':
    'morphmlp-base_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py',
    'morphmlp_b_ssv2.py':
    'morphmlp-base_in1k-pre_8xb8-amp-u32-64e_sthv2-rgb.py',
}
NUM_CLASSES = {K400: 400, SSV2: 174}
#: (clips, crops) of the test pipeline: the paper's views.
TEST_VIEWS = {K400: (4, 1), SSV2: (1, 3)}
HEADLINE = 'morphmlp_b_ssv2.py'
K400_S16 = 'morphmlp-small_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py'
SSV2_S16 = 'morphmlp-small_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py'
TINY_ARCH = dict(
    depths=[1, 1, 1, 1],
    channels=[28, 56, 112, 196],
    chunk_lengths=[14, 28, 28, 49])
CROP = 32
DECODERS = {
    'decord': ('DecordInit', 'DecordDecode'),
    'pyav': ('PyAVInitCounted', 'PyAVDecode'),
    'opencv': ('OpenCVInit', 'OpenCVDecode'),
}


@pytest.fixture(autouse=True)
def _default_decoder(monkeypatch):
    """Every test reads the configs with the default decoder."""
    monkeypatch.delenv('MORPHMLP_DECODER', raising=False)


def load(name: str) -> Config:
    return Config.fromfile(str(CFG_DIR / name))


def samplers(cfg: Config):
    """The frame sampler of the train / val / test pipelines."""
    out = {}
    for split in ('train', 'val', 'test'):
        pipeline = cfg[f'{split}_dataloader'].dataset.pipeline
        found = [
            t for t in pipeline if t.type in ('SampleFrames', 'UniformSample')
        ]
        assert len(found) == 1, (split, pipeline)
        out[split] = found[0]
    return out


def types(pipeline):
    return [t.type for t in pipeline]


def build_model(model_cfg):
    """Build with mmaction2's MODELS in its default scope (as Runner does)."""
    from mmaction.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmaction'):
        return MODELS.build(model_cfg)


def dataset_of(name: str) -> str:
    return RECIPES[SHORT_NAMES.get(name, name)][2]


# --------------------------------------------------------------------------
# every config loads and builds
# --------------------------------------------------------------------------
def test_the_config_set_is_complete():
    found = {p.name for p in CFG_DIR.glob('*.py')}
    assert found == set(RECIPES) | set(SHORT_NAMES)
    assert SHORT_NAMES[HEADLINE] in RECIPES


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_config_loads_and_builds(name):
    arch, frames, dataset, *_, millions = RECIPES[name]
    cfg = load(name)
    assert cfg.custom_imports == dict(
        imports=['morphmlp_mm'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmaction'
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.num_frames) == (
        'MorphMLP3D', arch, frames)
    # MorphMLP3D needs exactly num_frames frames per clip
    for split, sampler in samplers(cfg).items():
        assert sampler.clip_len == frames, split
    classes = NUM_CLASSES[dataset]
    assert cfg.model.cls_head.num_classes == classes
    assert [a.num_classes for a in
            cfg.model.data_preprocessor.blending.augments] == [classes] * 2
    # ImageNet-1k initialisation of the backbone, through init_cfg
    init = backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    assert init.checkpoint == f'pretrained/morphmlp-{arch}_8xb128_in1k.pth'

    # The real modules on the meta device (shapes, no random init: seconds
    # instead of minutes for the B models); the data preprocessor is built
    # on the CPU because its Beta distributions validate their parameters.
    preprocessor = build_model(cfg.model.data_preprocessor)
    assert len(preprocessor.blending.augments) == 2
    meta_cfg = cfg.model.copy()
    meta_cfg.data_preprocessor = dict(type='ActionDataPreprocessor')
    with torch.device('meta'):
        model = build_model(meta_cfg)
    assert type(model).__name__ == 'Recognizer3D'
    assert type(model.backbone).__name__ == 'MorphMLP3D'
    assert model.backbone.num_frames == frames
    assert model.cls_head.fc_cls.out_features == classes
    assert model.cls_head.fc_cls.in_features == model.backbone.channels[-1]
    params = sum(p.numel() for p in model.parameters())
    assert params / 1e6 == pytest.approx(millions, abs=0.01)


@pytest.mark.parametrize('alias', sorted(SHORT_NAMES))
def test_short_names_are_the_long_configs(alias):
    short, full = load(alias), load(SHORT_NAMES[alias])
    assert short.to_dict() == full.to_dict()


def test_headline_is_base_32_frames_ssv2():
    cfg = load(HEADLINE)
    assert cfg.model.backbone.arch == 'base'
    assert cfg.model.backbone.num_frames == 32
    assert cfg.model.cls_head.num_classes == 174
    assert cfg.train_cfg.max_epochs == 64
    assert 'ThreeCrop' in types(cfg.test_dataloader.dataset.pipeline)


def test_metafile_and_model_index():
    """metafile.yml: one entry per full config with its short name, the
    paper's results and views, FLOPs per view and over all views."""
    import yaml
    meta = yaml.safe_load((CFG_DIR / 'metafile.yml').read_text())
    models = {m['Name']: m for m in meta['Models']}
    assert set(models) == {name[:-3] for name in RECIPES}
    for name, recipe in RECIPES.items():
        _, frames, dataset, _, _, _, epochs, millions = recipe
        entry = models[name[:-3]]
        assert entry['Config'] == f'configs/recognition/{name}'
        assert (ROOT / entry['Config']).is_file()
        aliases = [a[:-3] for a, full in SHORT_NAMES.items() if full == name]
        assert entry['Alias'] == aliases
        data = entry['Metadata']
        assert (data['Frame'], data['Epochs']) == (frames, epochs)
        assert data['Parameters'] == f'{millions:.2f}M'
        clips, crops = TEST_VIEWS[dataset]
        assert data['Views'].startswith(f'{frames}x{crops}x{clips} ')
        per_view = float(data['FLOPs'].split('G')[0])
        total = float(data['FLOPs (all views)'].split('G')[0])
        assert total / (clips * crops) == pytest.approx(per_view, rel=0.013)
        metrics = entry['Results'][0]['Metrics']
        assert 50 < metrics['Top 1 Accuracy'] < metrics['Top 5 Accuracy']
    headline = models[SHORT_NAMES[HEADLINE][:-3]]
    assert headline['Results'][0]['Metrics']['Top 1 Accuracy'] == 70.1
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    assert index['Import'] == [
        'configs/classification/metafile.yml',
        'configs/recognition/metafile.yml',
        'configs/segmentation/metafile.yml',
    ]


# --------------------------------------------------------------------------
# the official recipe
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(RECIPES))
def test_official_recipe(name):
    arch, frames, dataset, drop_path, lr, warmup, epochs, _ = RECIPES[name]
    cfg = load(name)
    model = cfg.model
    assert model.backbone.drop_path_rate == drop_path
    head = model.cls_head
    assert (head.type, head.dropout_ratio, head.label_smooth_eps) == (
        'I3DHead', 0., 0.1)
    pre = model.data_preprocessor
    assert pre.format_shape == 'NCTHW'
    assert pre.mean == [0.45 * 255] * 3 and pre.std == [0.225 * 255] * 3
    assert pre.blending.type == 'RandomBatchAugment'
    assert pre.blending.get('probs') is None  # mixup or cutmix, 50/50
    assert [(a.type, a.alpha) for a in pre.blending.augments] == [
        ('MixupBlending', 0.8), ('CutmixBlending', 1.0)]

    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper'
    assert 'loss_scale' not in wrapper  # the OptimWrapper override works
    assert wrapper.optimizer == dict(
        type='AdamW', lr=lr, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.05)
    assert wrapper.paramwise_cfg == dict(
        norm_decay_mult=0., bias_decay_mult=0.)
    assert wrapper.clip_grad == dict(max_norm=20, norm_type=2)
    assert cfg.auto_scale_lr.base_batch_size == 64

    warm, cosine = cfg.param_scheduler
    assert warm.type == 'LinearLR' and cosine.type == 'CosineAnnealingLR'
    assert warm.start_factor * lr == pytest.approx(1e-6)
    assert (warm.begin, warm.end) == (0, warmup)
    assert (cosine.begin, cosine.end, cosine.T_max) == (warmup, epochs,
                                                        epochs - warmup)
    assert cosine.eta_min == 1e-6
    assert warm.convert_to_iter_based and cosine.convert_to_iter_based
    assert cfg.train_cfg.max_epochs == epochs

    # 8 GPUs x 8 videos, each decoded once and augmented twice
    train = cfg.train_dataloader
    assert train.batch_size == 8
    assert train.dataset.type == 'RobustRepeatAugDataset'
    assert (train.dataset.num_repeats, train.dataset.sample_once) == (2, True)
    assert train.collate_fn.type == 'repeat_pseudo_collate'

    steps = {t.type: t for t in train.dataset.pipeline}
    assert steps['RandomResizedCrop'].area_range == (0.08, 1.0)
    assert steps['RandomResizedCrop'].aspect_ratio_range == pytest.approx(
        (3 / 4, 4 / 3))
    assert steps['Resize'].scale == (224, 224)
    # timm 'rand-m7-n4': 4 layers, one op each, applied with p = 0.5
    layers = [t for t in train.dataset.pipeline if t.type == 'RandomApply']
    assert len(layers) == 4
    for layer in layers:
        assert layer.prob == 0.5
        (op, ) = layer.transforms
        assert (op.type, op.op, op.num_ops, op.magnitude,
                op.num_magnitude_bins) == ('TorchVisionWrapper',
                                           'RandAugment', 1, 7, 11)
    erase = steps['RandomErasing']
    assert (erase.erase_prob, erase.mode) == (0.25, 'rand')

    sampling = samplers(cfg)
    clips, crops = TEST_VIEWS[dataset]
    test_types = types(cfg.test_dataloader.dataset.pipeline)
    assert cfg.test_evaluator.type == 'AccMetric'
    assert cfg.test_dataloader.dataset.test_mode
    if dataset == K400:
        assert 'Flip' in steps
        for sampler in sampling.values():
            assert (sampler.type, sampler.frame_interval) == (
                'SampleFrames', 4)
        assert sampling['train'].num_clips == 1
        assert sampling['test'].num_clips == clips
        assert 'CenterCrop' in test_types and 'ThreeCrop' not in test_types
    else:
        assert 'Flip' not in steps  # left/right matters in SSV2
        for sampler in sampling.values():
            assert sampler.type == 'UniformSample'
        assert sampling['test'].get('num_clips', 1) == clips
        assert 'ThreeCrop' in test_types
    assert sampling['val'].get('num_clips', 1) == 1
    assert 'CenterCrop' in types(cfg.val_dataloader.dataset.pipeline)
    resize = [t for t in cfg.test_dataloader.dataset.pipeline
              if t.type == 'Resize']
    assert [t.scale for t in resize] == [(-1, 224)]


def test_rand_augment_treats_all_frames_alike():
    """The RandAugment layers of a config: same ops on every frame."""
    import numpy as np
    from mmaction.registry import TRANSFORMS
    from mmcv.transforms import Compose
    cfg = load(SSV2_S16)
    layers = [t for t in cfg.train_pipeline if t.type == 'RandomApply']
    with DefaultScope.overwrite_default_scope('mmaction'):
        augment = Compose([TRANSFORMS.build(t) for t in layers])
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    changed = 0
    np.random.seed(0)  # RandomApply draws from numpy, RandAugment from torch
    torch.manual_seed(0)
    for _ in range(20):
        out = augment(dict(imgs=[frame.copy() for _ in range(4)]))['imgs']
        assert all(np.array_equal(out[0], other) for other in out[1:])
        changed += not np.array_equal(out[0], frame)
    assert 5 <= changed < 20  # 1 - 0.5 ** 4 = 94 % change, some do not


def test_weight_decay_is_zero_on_exactly_the_1d_params():
    """The optimizer built from the config: official ZERO_WD_1D_PARAM."""
    from mmengine.optim import build_optim_wrapper
    cfg = load(K400_S16)
    cfg.model.backbone.arch = TINY_ARCH
    cfg.model.backbone.init_cfg = None
    cfg.model.cls_head.in_channels = TINY_ARCH['channels'][-1]
    cfg.optim_wrapper.type = 'OptimWrapper'
    model = build_model(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[id(param)] = group['weight_decay']
    names = dict(model.named_parameters())
    assert len(decay) == len(names)
    for name, param in names.items():
        expected = 0. if param.ndim == 1 else 0.05
        assert decay[id(param)] == expected, name
    assert any(p.ndim == 1 for p in names.values())


def test_full_model_loss():
    """The real MorphMLP-S of a config: mixup/cutmix + smoothed loss."""
    from mmaction.structures import ActionDataSample
    torch.manual_seed(0)
    cfg = load(K400_S16)
    cfg.model.backbone.init_cfg = None
    model = build_model(cfg.model)
    model.init_weights()
    frames = cfg.model.backbone.num_frames
    samples = []
    for label in (3, 7):
        sample = ActionDataSample()
        sample.set_gt_label(label)
        samples.append(sample)
    data = dict(
        inputs=[
            torch.randint(0, 256, (1, 3, frames, CROP, CROP),
                          dtype=torch.uint8) for _ in samples
        ],
        data_samples=samples)
    data = model.data_preprocessor(data, training=True)
    # blending turned the labels into 400-way soft targets summing to 1
    soft = torch.stack([s.gt_label for s in data['data_samples']])
    assert soft.shape == (2, 400)
    assert torch.allclose(soft.sum(1), torch.ones(2))
    losses = model(**data, mode='loss')
    losses['loss_cls'].backward()
    assert torch.isfinite(losses['loss_cls'])
    assert model.backbone.patch_embed1.proj1.weight.grad is not None
    assert model.cls_head.fc_cls.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------
# the decoder switch
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """Tiny Kinetics-400 and SSV2 in mmaction2's layout (4 + 4 videos).

    Frames are 32x64: decord 0.6.0 cannot read VP9 clips of some widths
    (48 or 72 at this height: "DECORDArrayCopyFromTo: The size must exactly
    match"); 64 works with every decoder.
    """
    maker = load_script('tools/data/make_tiny_dataset.py')
    root = tmp_path_factory.mktemp('tiny_video')
    out = {}
    for dataset in (K400, SSV2):
        out[dataset] = str(root / dataset)
        maker.make_dataset([
            dataset, '--out', out[dataset], '--num-classes', '4',
            '--per-class', '1', '--val-per-class', '1', '--size', '32x64'
        ])
    return out


def data_options(cfg: Config, dataset: str, root: str, crop: int = CROP):
    """``--cfg-options`` entries pointing ``cfg`` at a tiny dataset."""
    if dataset == K400:
        ann = {s: f'{root}/kinetics400_{s}_list_videos.txt'
               for s in ('train', 'val')}
        videos = {'train': f'{root}/videos_train', 'val': f'{root}/videos_val'}
    else:
        ann = {s: f'{root}/sthv2_{s}_list_videos.txt'
               for s in ('train', 'val')}
        videos = {'train': f'{root}/videos', 'val': f'{root}/videos'}
    opts = {}
    for split in ('train', 'val', 'test'):
        key = f'{split}_dataloader'
        src = 'train' if split == 'train' else 'val'
        opts[f'{key}.dataset.ann_file'] = ann[src]
        opts[f'{key}.dataset.data_prefix.video'] = videos[src]
        opts[f'{key}.num_workers'] = 0
        opts[f'{key}.persistent_workers'] = False
        for i, step in enumerate(cfg[key].dataset.pipeline):
            if step.type == 'Resize':
                scale = (crop, crop) if step.scale[0] > 0 else (-1, crop)
                opts[f'{key}.dataset.pipeline.{i}.scale'] = scale
            elif step.type in ('CenterCrop', 'ThreeCrop'):
                opts[f'{key}.dataset.pipeline.{i}.crop_size'] = crop
    return opts


def build_dataset(cfg: Config, split: str):
    from mmaction.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmaction'):
        return DATASETS.build(cfg[f'{split}_dataloader'].dataset)


@pytest.mark.parametrize('decoder', sorted(DECODERS))
def test_decoder_switch(decoder, monkeypatch, tiny_data):
    monkeypatch.setenv('MORPHMLP_DECODER', decoder)
    init, decode = DECODERS[decoder]
    for name in (SSV2_S16, K400_S16, HEADLINE):
        cfg = load(name)
        assert cfg.decoder == decoder
        for split in ('train', 'val', 'test'):
            pipeline = types(cfg[f'{split}_dataloader'].dataset.pipeline)
            assert pipeline[0] == init and pipeline[2] == decode, split
            others = set(pipeline) - {init, decode}
            assert not others & {t for pair in DECODERS.values()
                                 for t in pair}, split
        train = cfg.train_dataloader
        if decoder == 'decord':  # mmaction2's RepeatAugDataset: decord only
            assert train.dataset.type == 'RobustRepeatAugDataset'
            assert train.batch_size == 8
        else:  # same 16 clips per GPU and step without repeats
            assert train.dataset.type == 'RobustVideoDataset'
            assert 'num_repeats' not in train.dataset
            assert train.batch_size == 16
            assert train.collate_fn.type == 'pseudo_collate'
        assert cfg.auto_scale_lr.base_batch_size == 8 * train.batch_size

    # each backend decodes real files through the configured pipelines
    for name in (SSV2_S16, K400_S16):
        cfg = load(name)
        dataset = dataset_of(name)
        if decoder == 'pyav' and dataset == SSV2:
            # WebM has no frame count in its header: mmaction2's PyAVInit
            # reads 0 frames; our PyAVInitCounted counts them.
            from mmaction.datasets.transforms import PyAVInit
            from morphmlp_mm.datasets import PyAVInitCounted
            import decord
            video = sorted(Path(tiny_data[SSV2], 'videos').glob('*.webm'))[0]
            assert PyAVInit()(dict(filename=str(video)))['total_frames'] == 0
            assert PyAVInitCounted()(dict(filename=str(video)))[
                'total_frames'] == len(decord.VideoReader(str(video)))
        cfg.merge_from_dict(data_options(cfg, dataset, tiny_data[dataset]))
        frames = cfg.model.backbone.num_frames
        clips, crops = TEST_VIEWS[dataset]
        sample = build_dataset(cfg, 'test')[0]
        assert tuple(sample['inputs'].shape) == (clips * crops, 3, frames,
                                                 CROP, CROP)
        train_sample = build_dataset(cfg, 'train')[0]
        repeats = train_sample if isinstance(train_sample, list) else [
            train_sample
        ]
        assert len(repeats) == (2 if decoder == 'decord' else 1)
        for item in repeats:
            assert tuple(item['inputs'].shape) == (1, 3, frames, CROP, CROP)


def test_unknown_decoder_is_refused(monkeypatch):
    monkeypatch.setenv('MORPHMLP_DECODER', 'ffmpeg')
    with pytest.raises(ValueError, match="decoder='ffmpeg'.*'decord'"):
        load(SSV2_S16)
    # tools/train.py and tools/test.py: one line, no traceback
    from tool_scripts import load_script
    with pytest.raises(SystemExit, match=r"error: config .*: decoder="
                       r"'ffmpeg' \(MORPHMLP_DECODER\)"):
        load_script('tools/train.py').read_config(
            str(ROOT / 'configs' / 'recognition' / SSV2_S16))
    monkeypatch.setenv('MORPHMLP_DECODER', ' PyAV ')  # as typed
    assert load(SSV2_S16).decoder == 'pyav'


# --------------------------------------------------------------------------
# end to end: tools/train.py, tools/test.py, --resume, dist_train.sh
# --------------------------------------------------------------------------
def tiny_options(name: str, root: str, tiny_ckpt: Optional[str] = None):
    """``--cfg-options`` for a CPU run of config ``name`` on tiny data."""
    cfg = load(name)
    opts = data_options(cfg, dataset_of(name), root)
    opts.update({
        'train_dataloader.batch_size': 2,  # 2 iterations per epoch
        'val_dataloader.batch_size': 2,
        'model.backbone.arch._delete_': True,
        'model.backbone.arch.depths': TINY_ARCH['depths'],
        'model.backbone.arch.channels': TINY_ARCH['channels'],
        'model.backbone.arch.chunk_lengths': TINY_ARCH['chunk_lengths'],
        'model.cls_head.in_channels': TINY_ARCH['channels'][-1],
        'optim_wrapper.type': 'OptimWrapper',
        'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 1,
    })
    if tiny_ckpt is None:
        opts['model.backbone.init_cfg'] = None
    else:
        opts['model.backbone.init_cfg.checkpoint'] = tiny_ckpt
    return opts


def as_args(opts: dict):
    """Render options as ``key=value`` command-line words."""
    words = []
    for key, value in opts.items():
        if isinstance(value, (list, tuple)):
            inner = ','.join(str(v) for v in value)
            value = f'[{inner}]' if isinstance(value, list) else f'({inner})'
        words.append(f'{key}={value}')
    return words


def run(cmd, **env) -> str:
    """Run a command from the repository root; return its output.

    One torch thread, no decoder override, the repository on PYTHONPATH;
    ``env`` adds variables. Fails the test with the output's tail.
    """
    full_env = dict(os.environ)
    full_env.pop('MORPHMLP_DECODER', None)
    full_env.update(
        OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore',
        PYTHONPATH=os.pathsep.join(
            [str(ROOT), full_env.get('PYTHONPATH', '')]).rstrip(os.pathsep))
    full_env.update(env)
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=str(ROOT), env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def lrs(log: str):
    """Learning rates of the training iterations in a log, in order."""
    return [
        float(m) for m in re.findall(
            r'Epoch\(train\)\s+\[\d+\]\[\d+/\d+\]\s+base_lr: \S+\s+lr: (\S+)',
            log)
    ]


def parse_test_metrics(log: str):
    """acc/top1, acc/top5, acc/mean1 of the final ``Epoch(test)`` line."""
    line = [ln for ln in log.splitlines() if 'Epoch(test)' in ln and
            'acc/top1' in ln]
    assert line, log[-3000:]
    found = dict(re.findall(r'(acc/\w+): ([\d.]+)', line[-1]))
    return {k: float(v) for k, v in found.items()}


def train_test_resume(name: str, data_root: str, work_dir: Path,
                      tiny_ckpt: Optional[str] = None) -> str:
    """Train 1 epoch (+val), test the checkpoint, resume to epoch 2."""
    py = sys.executable
    opts = as_args(tiny_options(name, data_root, tiny_ckpt))
    config = f'configs/recognition/{name}'

    log = run([py, 'tools/train.py', config, '--work-dir', work_dir,
               '--seed', '0', '--cfg-options', *opts])
    assert 'Epoch(train) [1][2/2]' in log
    assert re.search(r'Epoch\(val\) \[1\]\[\d+/\d+\]\s+acc/top1', log)
    first = lrs(log)
    assert len(first) == 2
    assert first[0] == pytest.approx(1e-6)  # warm-up starts at 1e-6
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()
    saved = torch.load(str(ckpt), map_location='cpu', weights_only=False)
    assert saved['meta']['epoch'] == 1 and saved['meta']['iter'] == 2
    assert saved['state_dict']['backbone.patch_embed1.proj1.weight'].dim() \
        == 5
    assert 'optimizer' in saved and 'param_schedulers' in saved

    test_log = run([py, 'tools/test.py', config, ckpt, '--work-dir',
                    work_dir / 'test', '--cfg-options', *opts])
    metrics = parse_test_metrics(test_log)
    assert set(metrics) == {'acc/top1', 'acc/top5', 'acc/mean1'}
    assert all(0. <= v <= 1. for v in metrics.values())
    assert 'Epoch(test) [4/4]' in test_log  # the 4 validation videos

    resume_log = run([py, 'tools/train.py', config, '--work-dir', work_dir,
                      '--resume', '--seed', '0', '--cfg-options', *opts,
                      'train_cfg.max_epochs=2'])
    assert 'resumed epoch: 1, iter: 2' in resume_log
    assert 'Epoch(train) [2][2/2]' in resume_log
    assert 'Epoch(train) [1][' not in resume_log
    second = lrs(resume_log)
    assert second[0] > first[-1]  # the schedule went on
    assert (work_dir / 'epoch_2.pth').is_file()
    last = (work_dir / 'last_checkpoint').read_text().strip()
    assert last.endswith('epoch_2.pth')
    return log


def views_of_test_pipeline(name: str, data_root: str):
    """Shape of one test sample of the run's config: the views it tests."""
    cfg = load(name)
    cfg.merge_from_dict(tiny_options(name, data_root))
    return tuple(build_dataset(cfg, 'test')[0]['inputs'].shape)


def test_headline_ssv2_train_test_resume(tiny_data, tmp_path):
    """tools/train.py configs/recognition/morphmlp_b_ssv2.py end to end.

    The backbone starts from an image (2-D) checkpoint written here in the
    mmpretrain layout, through the config's own ``init_cfg`` (Pretrained,
    prefix ``backbone.``): the 3x3 stem kernel is inflated to 3x3x3.
    """
    from morphmlp_mm import MorphMLP
    torch.manual_seed(0)
    image = MorphMLP(TINY_ARCH)
    ckpt = tmp_path / 'tiny_in1k.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in image.state_dict().items()},
                'meta': {}}, str(ckpt))
    log = train_test_resume(HEADLINE, tiny_data[SSV2], tmp_path / 'work',
                            str(ckpt))
    assert 'load_pretrained: ' in log and 'inflated' in log
    assert 'patch_embed1.proj1.weight' in log
    views = views_of_test_pipeline(HEADLINE, tiny_data[SSV2])
    assert views == (3, 3, 32, CROP, CROP)  # 1 clip x 3 crops


def test_k400_s16_train_test_resume(tiny_data, tmp_path):
    train_test_resume(K400_S16, tiny_data[K400], tmp_path / 'work')
    views = views_of_test_pipeline(K400_S16, tiny_data[K400])
    assert views == (4, 3, 16, CROP, CROP)  # 4 clips x 1 crop


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_cpu_processes(tiny_data, tmp_path):
    opts = tiny_options(K400_S16, tiny_data[K400])
    opts['train_dataloader.batch_size'] = 1  # 4 videos / 2 ranks: 2 iters
    opts['env_cfg.dist_cfg.backend'] = 'gloo'
    log = run(['bash', 'tools/dist_train.sh',
               f'configs/recognition/{K400_S16}', '2', '--no-validate',
               '--work-dir', tmp_path / 'work', '--seed', '0',
               '--cfg-options', *as_args(opts)],
              PORT=str(_free_port()), PYTHON=sys.executable)
    assert 'Distributed training: True' in log
    assert re.search(r'GPU number: 2|world_size: 2', log), log[-3000:]
    assert 'Epoch(train) [1][2/2]' in log
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()
