"""The segmentation configs (UperNet / Semantic FPN + MorphMLP on ADE20K).

What is checked:

* every config in ``configs/segmentation`` loads, matches the recipe it
  documents and builds; the backbone's four maps carry the channels the
  heads expect, at strides 4/8/16/32;
* the backbone takes any input size (512x512, 512x683, odd sizes);
* SyncBN configs fall back to BatchNorm in a single process;
* on a tiny ADE20K-layout dataset written by
  ``tools/data/make_tiny_dataset.py ade20k`` (real JPEG/PNG files),
  ``tools/train.py <config> --cfg-options <tiny>`` trains 2 iterations,
  validates with mmseg's IoUMetric (mIoU in the log and in scalars.json),
  saves and resumes; ``tools/test.py`` runs slide and whole inference;
  ``tools/demo/seg_demo.py`` writes a colour overlay PNG.

Cost control (2 shared CPU cores): 64x64 crops, test images resized to
64x85, one torch thread. The train/test/demo runs also shrink the model,
because the full MorphMLP-T UperNet checkpoint with AdamW state is 650 MB:
the backbone becomes depths (1, 1, 1, 1) with channels (28, 56, 112, 196)
(the official chunk lengths 14/28/28/49, so the same MorphFC windows and
padding as every official variant) and the heads get 16 channels. The full
T/S/B models are built and run (64x64) in ``test_config_loads_and_builds``.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from tool_scripts import load_script

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_DIR = osp.join(ROOT, 'configs', 'segmentation')
UPERNET = {
    arch: f'morphmlp-{arch}_upernet_8xb2-160k_ade20k-512x512.py'
    for arch in ('tiny', 'small', 'base')
}
FPN = {
    arch: f'morphmlp-{arch}_fpn_4xb4-80k_ade20k-512x512.py'
    for arch in ('tiny', 'small', 'base')
}
CHANNELS = {
    'tiny': [84, 168, 336, 588],
    'small': [112, 224, 392, 784],
    'base': [112, 224, 392, 784],
}
DROP_PATH = {
    'upernet': {'tiny': 0.2, 'small': 0.3, 'base': 0.4},
    'fpn': {'tiny': 0.1, 'small': 0.1, 'base': 0.3},
}
#: paper mIoU (arXiv 2111.12527 v1, Table 6, Semantic FPN)
PAPER_MIOU = {'tiny': 43.0, 'small': 44.7, 'base': 45.9}

MINI_CHANNELS = [28, 56, 112, 196]
MINI_ARCH = dict(
    depths=[1, 1, 1, 1],
    channels=MINI_CHANNELS,
    chunk_lengths=[14, 28, 28, 49])
TINY_SIZE = '(128,64)'  # test Resize scale: 96x128 images -> 64x85


@pytest.fixture(autouse=True, scope='module')
def one_torch_thread():
    """On 2 shared cores two intra-op threads make small steps ~30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def tiny_ade(tmp_path_factory):
    """A tiny ADEChallengeData2016 tree: 6 train and 6 val 96x128 images."""
    maker = load_script('tools/data/make_tiny_dataset.py')
    root = str(tmp_path_factory.mktemp('ade') / 'ADEChallengeData2016')
    summary = maker.make_dataset(
        ['ade20k', '--out', root, '--per-class', '1', '--val-per-class', '1'])
    assert summary['num_train'] == 6 and summary['num_val'] == 6
    return root


def _mini_model_options(head):
    """--cfg-options that shrink backbone and heads (see module docstring)."""
    opts = [
        'model.backbone.arch._delete_=True',
        'model.backbone.arch.depths=[1,1,1,1]',
        'model.backbone.arch.channels=[28,56,112,196]',
        'model.backbone.arch.chunk_lengths=[14,28,28,49]',
        'model.backbone.init_cfg=None',
        'model.decode_head.channels=16',
    ]
    if head == 'upernet':
        opts += [
            'model.decode_head.in_channels=[28,56,112,196]',
            'model.auxiliary_head.in_channels=112',
            'model.auxiliary_head.channels=16',
        ]
    else:
        opts += [
            'model.neck.in_channels=[28,56,112,196]',
            'model.neck.out_channels=16',
            'model.decode_head.in_channels=[16,16,16,16]',
        ]
    return opts


def _tiny_data_options(root):
    """--cfg-options that point the config at the tiny dataset."""
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={root}',
            f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False',
        ]
    opts += [
        'train_dataloader.batch_size=2',
        # mmseg's ade20k pipeline: [2] RandomResize, [3] RandomCrop
        f'train_dataloader.dataset.pipeline.2.scale={TINY_SIZE}',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        # test pipeline: [1] Resize
        f'val_dataloader.dataset.pipeline.1.scale={TINY_SIZE}',
        f'test_dataloader.dataset.pipeline.1.scale={TINY_SIZE}',
        'model.data_preprocessor.size=(64,64)',
        'model.test_cfg.crop_size=(64,64)',
        'model.test_cfg.stride=(43,43)',
    ]
    return opts


def _subprocess_env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _run_train(config, work_dir, options, resume=False):
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', str(work_dir)]
    if resume:
        cmd.append('--resume')
    cmd += ['--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=str(work_dir.parent), env=_subprocess_env(),
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def _run_log_dirs(work_dir):
    """Timestamped log directories in ``work_dir``, oldest first."""
    return sorted(
        osp.join(work_dir, d) for d in os.listdir(work_dir)
        if osp.isdir(osp.join(work_dir, d)) and d[:8].isdigit())


def _read_scalars(log_dir):
    path = osp.join(log_dir, 'vis_data', 'scalars.json')
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _config_path(head, arch):
    return osp.join(SEG_DIR, (UPERNET if head == 'upernet' else FPN)[arch])


# ---------------------------------------------------------------------------
# configs: load, recipe, build, channels
# ---------------------------------------------------------------------------
def test_config_directory_and_metafile():
    """Exactly the six configs, each listed once in metafile.yml."""
    found = sorted(f for f in os.listdir(SEG_DIR) if f.endswith('.py'))
    assert found == sorted([*UPERNET.values(), *FPN.values()])
    with open(osp.join(SEG_DIR, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    rows = {osp.basename(m['Config']): m for m in meta['Models']}
    assert sorted(rows) == found
    for name, row in rows.items():
        assert osp.isfile(osp.join(ROOT, row['Config']))
        assert row['Name'] == name[:-3]
        arch = name.split('_')[0].split('-')[1]
        metrics = row['Results'][0]['Metrics']
        if '_fpn_' in name:
            assert metrics['mIoU'] == PAPER_MIOU[arch]
        else:
            # the paper reports no UperNet result
            assert metrics['mIoU'] is None
            assert 'not reported' in row['Results'][0]['Notes']


@pytest.mark.parametrize('head,arch', [(h, a) for h in ('upernet', 'fpn')
                                       for a in ('tiny', 'small', 'base')])
def test_config_loads_and_builds(head, arch):
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(_config_path(head, arch))
    assert cfg.custom_imports == dict(
        imports=['morphmlp_mm'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmseg'
    bb = cfg.model.backbone
    assert bb.type == 'MorphMLP' and bb.arch == arch
    assert bb.out_type == 'featmap' and tuple(bb.out_indices) == (0, 1, 2, 3)
    assert bb.drop_path_rate == DROP_PATH[head][arch]
    assert bb.norm_cfg.type == 'SyncBN'
    assert bb.init_cfg == dict(
        type='Pretrained', prefix='backbone.',
        checkpoint=f'pretrained/morphmlp-{arch}_8xb128_in1k.pth')
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.crop_size == (512, 512)
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert cfg.val_evaluator.type == 'IoUMetric'
    batch = cfg.train_dataloader.batch_size
    if head == 'upernet':
        assert cfg.model.decode_head.in_channels == CHANNELS[arch]
        assert cfg.model.auxiliary_head.in_channels == CHANNELS[arch][2]
        assert cfg.model.test_cfg == dict(
            mode='slide', crop_size=(512, 512), stride=(341, 341))
        assert cfg.train_cfg.max_iters == 160000 and batch * 8 == 16
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 6e-5, 0.01)
        warmup, poly = cfg.param_scheduler
        assert (warmup.type, warmup.end) == ('LinearLR', 1500)
        assert (poly.type, poly.power, poly.end) == ('PolyLR', 1.0, 160000)
    else:
        assert cfg.model.neck.in_channels == CHANNELS[arch]
        assert cfg.model.test_cfg == dict(mode='whole')
        assert cfg.train_cfg.max_iters == 80000 and batch * 4 == 16
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-4, 1e-4)
        (sched, ) = cfg.param_scheduler
        assert (sched.type, sched.T_max) == ('CosineAnnealingLR', 80000)

    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    sync = [m for m in model.modules()
            if isinstance(m, torch.nn.SyncBatchNorm)]
    assert model.backbone.patch_embed1.norm1 in sync and len(sync) > 2
    assert model.backbone.channels == CHANNELS[arch]
    # the parameter count that metafile.yml states
    with open(osp.join(SEG_DIR, 'metafile.yml')) as f:
        rows = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    name = osp.basename(_config_path(head, arch))[:-3]
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert rows[name]['Metadata']['Parameters'] == f'{millions:.2f}M'
    model = revert_sync_batchnorm(model).eval()
    with torch.no_grad():
        feats = model.backbone(torch.rand(1, 3, 64, 64))
        logits = model.decode_head(model.extract_feat(
            torch.rand(1, 3, 64, 64)))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 64 // s, 64 // s)
        for c, s in zip(CHANNELS[arch], (4, 8, 16, 32))
    ]
    assert tuple(logits.shape) == (1, 150, 16, 16)


def _expected_sizes(size):
    """Map sizes after the stride-4 stem and three stride-2 layers."""
    out, cur = [], size
    for stride in (2, 2, 2, 2, 2):
        cur = (cur[0] + 1) // 2, (cur[1] + 1) // 2
        out.append(cur)
    return out[1:]


@pytest.mark.parametrize('size', [(512, 512), (512, 683), (97, 131),
                                  (33, 47), (7, 5)])
def test_backbone_takes_any_input_size(size):
    """Random crops, whole non-square images, slide windows, odd sizes."""
    from morphmlp_mm import MorphMLP
    model = MorphMLP(MINI_ARCH, out_indices=(0, 1, 2, 3),
                     out_type='featmap').eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *size))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (c, *hw) for c, hw in zip(MINI_CHANNELS, _expected_sizes(size))
    ]
    assert all(torch.isfinite(o).all() for o in outs)


def test_backbone_odd_size_full_tiny_and_backward():
    """Real MorphMLP-T channels at 97x131; gradients reach the stem."""
    from morphmlp_mm import MorphMLP
    model = MorphMLP('tiny', out_indices=(0, 1, 2, 3), out_type='featmap')
    outs = model(torch.rand(1, 3, 97, 131))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (c, *hw) for c, hw in zip(CHANNELS['tiny'],
                                  _expected_sizes((97, 131)))
    ]
    sum(o.mean() for o in outs).backward()
    grad = model.patch_embed1.proj1.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def test_upernet_optimizer_skips_decay_on_backbone_norms():
    """The Swin-style paramwise_cfg: every backbone norm has decay 0."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(_config_path('upernet', 'tiny'))
    _merge_options(cfg, _mini_model_options('upernet'))
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay']
             for g in wrapper.optimizer.param_groups for p in g['params']}
    norm_types = (torch.nn.LayerNorm, torch.nn.modules.batchnorm._BatchNorm)
    norm_params = {id(p) for m in model.backbone.modules()
                   if isinstance(m, norm_types) for p in m.parameters()}
    assert norm_params
    for name, p in model.backbone.named_parameters():
        expected = 0. if id(p) in norm_params else 0.01
        assert decay[id(p)] == expected, name
    assert {g['lr'] for g in wrapper.optimizer.param_groups} == {6e-5}


def test_syncbn_config_reverts_to_bn_in_one_process(tiny_ade, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(_config_path('fpn', 'tiny'))
    _merge_options(cfg,
                   _mini_model_options('fpn') + _tiny_data_options(tiny_ade))
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'syncbn_{os.getpid()}_{id(cfg)}'
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in model.modules())
    # mmengine's revert_sync_batchnorm yields its _BatchNormXd (a BatchNorm)
    for norm in (model.backbone.patch_embed1.norm1,
                 model.backbone.patch_embed1.norm2,
                 model.decode_head.scale_heads[0][0].bn):
        assert isinstance(norm, torch.nn.modules.batchnorm._BatchNorm)
        assert not isinstance(norm, torch.nn.SyncBatchNorm)
    # a training step in train mode (SyncBN would need a process group)
    data = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    model.train()
    losses = model.train_step(data, runner.build_optim_wrapper(
        cfg.optim_wrapper))
    assert torch.isfinite(losses['loss'])


def _merge_options(cfg, options):
    """Merge ``key=value`` strings into ``cfg`` as ``--cfg-options`` does."""
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options',
                                           *options]).cfg_options)


# ---------------------------------------------------------------------------
# tools: train (2 iters + val) -> resume -> test (slide, whole) -> demo
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module', params=['upernet', 'fpn'])
def trained(request, tiny_ade, tmp_path_factory):
    """``tools/train.py <tiny config>``: 2 iterations, validation, saving."""
    head = request.param
    work_dir = tmp_path_factory.mktemp(f'train_{head}') / 'work'
    config = _config_path(head, 'tiny')
    opts = _mini_model_options(head) + _tiny_data_options(tiny_ade)
    loop = [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
    ]
    output = _run_train(config, work_dir, opts + loop)
    with open(work_dir / 'last_checkpoint') as f:
        last = f.read().strip()
    (log_dir, ) = _run_log_dirs(work_dir)
    return dict(head=head, config=config, work_dir=work_dir, opts=opts,
                output=output, last_checkpoint=last, log_dir=log_dir)


def test_train_validates_with_miou_and_saves(trained):
    work_dir = trained['work_dir']
    assert osp.isfile(work_dir / 'iter_2.pth')
    assert trained['last_checkpoint'].endswith('iter_2.pth')
    log_dir = trained['log_dir']
    with open(osp.join(log_dir, osp.basename(log_dir) + '.log')) as f:
        log = f.read()
    assert 'Iter(train) [2/2]' in log
    assert 'decode.loss_ce' in log
    assert 'mIoU:' in log
    # the Runner reverted SyncBN (one process, no process group)
    assert 'SyncBatchNorm (SyncBN) layers in the model will be ' \
        'automatically reverted' in log
    val = [r for r in _read_scalars(log_dir) if 'mIoU' in r]
    assert len(val) == 1 and val[0]['step'] == 2
    assert 0. <= val[0]['mIoU'] <= 100. and 'aAcc' in val[0]
    ckpt = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                      weights_only=False)
    assert ckpt['meta']['iter'] == 2
    assert len(ckpt['meta']['dataset_meta']['classes']) == 150
    assert any(k.startswith('backbone.blocks4.0.fc.mlp_h')
               for k in ckpt['state_dict'])


def test_train_resumes(trained):
    work_dir = trained['work_dir']
    before = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                        weights_only=False)['state_dict']
    loop = [
        'train_cfg.max_iters=3', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
    ]
    _run_train(trained['config'], work_dir, trained['opts'] + loop,
               resume=True)
    log_dir = _run_log_dirs(work_dir)[-1]
    with open(osp.join(log_dir, osp.basename(log_dir) + '.log')) as f:
        log = f.read()
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/3]' in log and 'Iter(train) [1/3]' not in log
    after = torch.load(work_dir / 'iter_3.pth', map_location='cpu',
                       weights_only=False)
    assert after['meta']['iter'] == 3
    # the resumed step changed the weights it started from
    key = 'backbone.blocks1.0.fc.mlp_c.weight'
    assert not torch.equal(before[key], after['state_dict'][key])


@pytest.mark.parametrize('mode', ['slide', 'whole'])
def test_test_tool_slide_and_whole(trained, mode, tmp_path, monkeypatch):
    """``tools/test.py`` on the trained checkpoint; counts the calls."""
    from mmseg.models.segmentors import EncoderDecoder
    calls = {'slide': 0, 'whole': 0}
    for name in calls:
        original = getattr(EncoderDecoder, f'{name}_inference')

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(EncoderDecoder, f'{name}_inference', counted)
    test_tool = load_script('tools/test.py')
    test_tool.main([
        trained['config'],
        str(trained['work_dir'] / 'iter_2.pth'), '--work-dir',
        str(tmp_path), '--cfg-options', *trained['opts'],
        f'model.test_cfg.mode={mode}',
        f'experiment_name=test_{trained["head"]}_{mode}_{os.getpid()}'
    ])
    assert calls[mode] == 6  # one per validation image
    assert calls['slide' if mode == 'whole' else 'whole'] == 0
    (log_dir, ) = _run_log_dirs(tmp_path)
    with open(osp.join(log_dir, osp.basename(log_dir) + '.json')) as f:
        metrics = json.load(f)
    assert 0. <= metrics['mIoU'] <= 100.


def test_test_tool_show_dir_without_the_training_split(trained, tmp_path):
    """``--show-dir`` draws every test image; mmseg's hook reads
    ``runner.iter``, which built the train loop and stopped on a training
    split that is not there (only the test split is needed to test)."""
    test_tool = load_script('tools/test.py')
    vis = tmp_path / 'vis'
    test_tool.main([
        trained['config'],
        str(trained['work_dir'] / 'iter_2.pth'), '--work-dir',
        str(tmp_path / 'work'), '--show-dir', str(vis), '--cfg-options',
        *trained['opts'],
        f'train_dataloader.dataset.data_root={tmp_path / "no_train_split"}',
        'model.test_cfg.mode=whole',
        f'experiment_name=show_{trained["head"]}_{os.getpid()}',
        # mmengine keeps one visualizer per name in a process
        f'visualizer.name=show_{trained["head"]}_{os.getpid()}'
    ])
    drawn = sorted(vis.rglob('*.png'))
    assert len(drawn) == 6, drawn  # one per test image


def test_demo_writes_colour_overlay(trained, tiny_ade, tmp_path):
    demo = load_script('tools/demo/seg_demo.py')
    image = osp.join(tiny_ade, 'images', 'validation',
                     'ADE_val_00000001.jpg')
    out = tmp_path / 'overlay.png'
    demo.main([
        trained['config'], image, '--checkpoint',
        str(trained['work_dir'] / 'iter_2.pth'), '--out',
        str(out), '--device', 'cpu', '--cfg-options', *trained['opts'],
        f'test_pipeline.1.scale={TINY_SIZE}'
    ])
    _check_overlay(image, out)


def test_demo_without_checkpoint_warns(tiny_ade, tmp_path):
    demo = load_script('tools/demo/seg_demo.py')
    image = osp.join(tiny_ade, 'images', 'validation',
                     'ADE_val_00000002.jpg')
    out = tmp_path / 'random.png'
    with pytest.warns(UserWarning, match='no --checkpoint'):
        demo.main([
            _config_path('upernet', 'tiny'), image, '--out',
            str(out), '--device', 'cpu', '--cfg-options',
            *_mini_model_options('upernet'),
            f'test_pipeline.1.scale={TINY_SIZE}', 'model.test_cfg.mode=slide',
            'model.test_cfg.crop_size=(64,64)', 'model.test_cfg.stride=(43,43)'
        ])
    _check_overlay(image, out)


def _check_overlay(image, out):
    assert osp.isfile(out)
    src = cv2.imread(image, cv2.IMREAD_COLOR)
    drawn = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert drawn is not None and drawn.ndim == 3 and drawn.shape[2] == 3
    assert drawn.shape == src.shape
    diff = np.abs(drawn.astype(np.int16) - src.astype(np.int16))
    # the class colours cover the whole image at opacity 0.5
    assert (diff.max(axis=2) > 8).mean() > 0.5


def test_demo_rejects_bad_arguments(tmp_path):
    demo = load_script('tools/demo/seg_demo.py')
    config = _config_path('fpn', 'tiny')
    with pytest.raises(SystemExit, match='image=.*no such file'):
        demo.main([config, str(tmp_path / 'missing.jpg')])
    image = tmp_path / 'x.png'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit, match='opacity=1.5'):
        demo.main([config, str(image), '--opacity', '1.5'])
    with pytest.raises(SystemExit, match='out=.*PNG'):
        demo.main([config, str(image), '--out', str(tmp_path / 'o.jpg')])
