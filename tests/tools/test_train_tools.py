"""Tests of tools/train.py and tools/test.py.

The scripts are imported by path and driven through ``parse_args`` with a
patched ``sys.argv`` (as a shell would call them), then through
``merge_args`` on small in-memory configs. One end-to-end run trains
mmaction2's Recognizer3D with a tiny ResNet3d for one epoch on a tiny
Kinetics-400 written by tools/data/make_tiny_dataset.py, tests the
checkpoint with ``--dump`` and resumes it.
"""
import os
import os.path as osp
import pickle
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from tool_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


train = load_script('tools/train.py')
test_tool = load_script('tools/test.py')
mtd = load_script('tools/data/make_tiny_dataset.py')


@pytest.fixture
def argv(monkeypatch):
    """Call a script's ``parse_args()`` with a patched ``sys.argv``."""
    # setenv first so that monkeypatch restores the original state after
    monkeypatch.setenv('LOCAL_RANK', 'unset')
    monkeypatch.delenv('LOCAL_RANK')

    def run(module, *args):
        monkeypatch.setattr(sys, 'argv', [f'{module.__name__}.py', *args])
        return module.parse_args()

    return run


# --------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------
@pytest.mark.parametrize('flag', ['--local_rank', '--local-rank'])
@pytest.mark.parametrize('script', ['train', 'test'])
def test_both_local_rank_spellings(argv, tmp_path, flag, script):
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    module = train if script == 'train' else test_tool
    extra = [] if script == 'train' else [str(ckpt)]
    args = argv(module, 'cfg.py', *extra, flag, '3')
    assert args.local_rank == 3
    assert os.environ['LOCAL_RANK'] == '3'
    args = argv(module, 'cfg.py', *extra, f'{flag}=2', '--launcher',
                'pytorch')
    assert args.local_rank == 2 and args.launcher == 'pytorch'


def test_local_rank_env_from_launcher_wins(argv, monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '5')
    monkeypatch.setattr(sys, 'argv', ['train.py', 'cfg.py'])
    args = train.parse_args()
    assert args.local_rank == 0 and os.environ['LOCAL_RANK'] == '5'


def test_resume_forms(argv, tmp_path, capsys):
    assert argv(train, 'cfg.py').resume is None
    assert argv(train, 'cfg.py', '--resume').resume == 'auto'
    assert argv(train, 'cfg.py', '--resume', 'auto').resume == 'auto'
    # nargs='?': a following option is not taken as the path
    args = argv(train, 'cfg.py', '--resume', '--seed', '1')
    assert args.resume == 'auto' and args.seed == 1
    ckpt = tmp_path / 'epoch_3.pth'
    ckpt.write_bytes(b'')
    assert argv(train, 'cfg.py', '--resume', str(ckpt)).resume == str(ckpt)
    assert argv(train, 'cfg.py', '--resume',
                's3://bucket/epoch_3.pth').resume == 's3://bucket/epoch_3.pth'


def test_resume_refuses_missing_checkpoint(argv, tmp_path, capsys):
    missing = tmp_path / 'nope' / 'epoch_9.pth'
    with pytest.raises(SystemExit) as exc:
        argv(train, 'cfg.py', '--resume', str(missing))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f'--resume {missing}: no such checkpoint file' in err


def test_cfg_options_and_flags(argv):
    args = argv(train, 'cfg.py', '--cfg-options', 'train_cfg.max_epochs=2',
                'model.backbone.out_indices=[3]',
                'env_cfg.dist_cfg.backend=gloo', '--amp', '--no-validate',
                '--auto-scale-lr', '--seed', '7', '--diff-rank-seed',
                '--deterministic', '--work-dir', 'wd')
    assert args.cfg_options == {
        'train_cfg.max_epochs': 2,
        'model.backbone.out_indices': [3],
        'env_cfg.dist_cfg.backend': 'gloo',
    }
    assert (args.amp, args.no_validate, args.auto_scale_lr) == (True, True,
                                                                True)
    assert (args.seed, args.diff_rank_seed, args.deterministic) == (7, True,
                                                                    True)
    assert args.work_dir == 'wd' and args.launcher == 'none'
    with pytest.raises(SystemExit):
        argv(train, 'cfg.py', '--launcher', 'torchrun')


def test_test_tool_arguments(argv, tmp_path, capsys):
    ckpt = tmp_path / 'best.pth'
    ckpt.write_bytes(b'')
    args = argv(test_tool, 'cfg.py', str(ckpt), '--dump', 'out.pkl',
                '--show-dir', 'vis', '--cfg-options', 'test_dataloader.'
                'batch_size=1', '--work-dir', 'wd')
    assert (args.dump, args.show_dir, args.work_dir) == ('out.pkl', 'vis',
                                                         'wd')
    assert args.cfg_options == {'test_dataloader.batch_size': 1}
    with pytest.raises(SystemExit):
        argv(test_tool, 'cfg.py', str(tmp_path / 'missing.pth'))
    assert 'missing.pth: no such file' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        argv(test_tool, 'cfg.py', str(ckpt), '--dump', 'out.json')
    assert 'must end with .pkl' in capsys.readouterr().err


# --------------------------------------------------------------------------
# merging into the config
# --------------------------------------------------------------------------
def _cfg(**extra) -> Config:
    base = dict(
        default_scope='mmaction',
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        val_cfg=dict(type='ValLoop'),
        val_dataloader=dict(batch_size=1),
        val_evaluator=dict(type='AccMetric'),
        test_evaluator=dict(type='AccMetric'),
        randomness=dict(seed=1, deterministic=False),
        auto_scale_lr=dict(enable=False, base_batch_size=64))
    base.update(extra)
    return Config(base)


def test_merge_args_defaults_and_precedence(argv, monkeypatch):
    args = argv(train, 'configs/x/my_cfg.py')
    cfg = train.merge_args(_cfg(), args)
    assert cfg.work_dir == osp.join('./work_dirs', 'my_cfg')
    assert cfg.launcher == 'none' and 'resume' not in cfg
    assert cfg.randomness == dict(seed=1, deterministic=False)
    # work_dir from the config (or --cfg-options) beats the default ...
    args = argv(train, 'my_cfg.py', '--cfg-options', 'work_dir=from_opts')
    assert train.merge_args(_cfg(), args).work_dir == 'from_opts'
    # ... and --work-dir beats both; explicit flags beat --cfg-options
    args = argv(train, 'my_cfg.py', '--work-dir', 'cli', '--seed', '3',
                '--cfg-options', 'work_dir=from_opts', 'randomness.seed=9')
    cfg = train.merge_args(_cfg(), args)
    assert cfg.work_dir == 'cli' and cfg.randomness.seed == 3


def test_merge_args_resume_validate_scale_lr(argv, tmp_path):
    cfg = train.merge_args(_cfg(), argv(train, 'c.py', '--resume'))
    assert cfg.resume is True and cfg.load_from is None
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'')
    cfg = train.merge_args(_cfg(), argv(train, 'c.py', '--resume', str(ckpt)))
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    cfg = train.merge_args(
        _cfg(), argv(train, 'c.py', '--no-validate', '--auto-scale-lr',
                     '--diff-rank-seed', '--deterministic'))
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.val_evaluator is None
    assert cfg.auto_scale_lr.enable is True
    assert cfg.randomness == dict(seed=1, deterministic=True,
                                  diff_rank_seed=True)
    no_scale = _cfg(auto_scale_lr=None)
    with pytest.raises(ValueError, match='auto_scale_lr'):
        train.merge_args(no_scale, argv(train, 'c.py', '--auto-scale-lr'))


def test_amp_refused_without_gpu_and_switched_with_one(argv, monkeypatch):
    monkeypatch.setattr(train, 'accelerator_available', lambda: False)
    with pytest.raises(ValueError, match='AmpOptimWrapper does not run'):
        train.merge_args(_cfg(), argv(train, 'c.py', '--amp'))
    # through main(): a clear error, before any model is built
    monkeypatch.setattr(train, 'import_plugin', lambda: None)
    monkeypatch.setattr(Config, 'fromfile', staticmethod(lambda p: _cfg()))
    with pytest.raises(SystemExit, match='error: --amp needs a CUDA'):
        train.main(['c.py', '--amp'])
    # a config written for GPUs (every recognition config) says the same
    amp_cfg = _cfg(optim_wrapper=dict(type='AmpOptimWrapper',
                                      loss_scale='dynamic'))
    with pytest.raises(ValueError, match=r"(?s)optim_wrapper.type="
                       r"'AmpOptimWrapper'.*optim_wrapper.type=OptimWrapper"
                       r".*optim_wrapper.loss_scale"):
        train.merge_args(amp_cfg, argv(train, 'c.py'))
    cfg = train.merge_args(amp_cfg, argv(
        train, 'c.py', '--cfg-options', 'optim_wrapper.type=OptimWrapper'))
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    monkeypatch.setattr(train, 'accelerator_available', lambda: True)
    cfg = train.merge_args(_cfg(), argv(train, 'c.py', '--amp'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    custom = _cfg(optim_wrapper=dict(type='MyWrapper'))
    with pytest.raises(ValueError, match='MyWrapper'):
        train.merge_args(custom, argv(train, 'c.py', '--amp'))


def test_refuses_to_write_over_checkpoints(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path)))
    train.check_existing_checkpoints(cfg)  # empty dir: fine
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    with pytest.raises(ValueError, match=r'already holds checkpoints.*'
                       r'epoch_1.pth.*--resume.*--work-dir.*--overwrite'):
        train.check_existing_checkpoints(cfg)
    with pytest.warns(UserWarning, match='over epoch_1.pth'):
        train.check_existing_checkpoints(cfg, overwrite=True)
    cfg.resume = True
    train.check_existing_checkpoints(cfg)  # resuming: expected, fine


def test_checkpoints_the_run_starts_from_are_checked(tmp_path):
    ckpt = tmp_path / 'in1k.pth'
    missing = str(tmp_path / 'pretrained' / 'morphmlp-small_in1k.pth')
    model = dict(backbone=dict(type='MorphMLP3D', init_cfg=dict(
        type='Pretrained', checkpoint=missing)))
    with pytest.raises(ValueError, match=r'(?s)model.backbone.init_cfg.'
                       r'checkpoint=.*pretrained/morphmlp-small_in1k.pth.*'
                       r'docs/checkpoints.md.*--cfg-options '
                       r'model.backbone.init_cfg=None'):
        train.check_checkpoint_paths(_cfg(model=model))
    ckpt.write_bytes(b'')
    model['backbone']['init_cfg']['checkpoint'] = str(ckpt)
    train.check_checkpoint_paths(_cfg(model=model))
    # in an init_cfg list, and URLs are left to mmengine
    model['backbone']['init_cfg'] = [
        dict(type='Constant', layer='LayerNorm', val=1),
        dict(type='Pretrained', checkpoint=missing)]
    with pytest.raises(ValueError, match=r'model.backbone.init_cfg.1.'
                       r'checkpoint'):
        train.check_checkpoint_paths(_cfg(model=model))
    model['backbone']['init_cfg'][1]['checkpoint'] = 'https://x/y.pth'
    train.check_checkpoint_paths(_cfg(model=model))
    with pytest.raises(ValueError, match='load_from=.*does not exist'):
        train.check_checkpoint_paths(_cfg(load_from=missing))
    train.check_checkpoint_paths(_cfg(load_from=missing, resume=True))


def test_class_counts_must_agree(argv):
    blending = dict(type='RandomBatchAugment', augments=[
        dict(type='MixupBlending', alpha=0.8, num_classes=174),
        dict(type='CutmixBlending', alpha=1.0, num_classes=174)])
    model = dict(cls_head=dict(type='I3DHead', num_classes=174),
                 data_preprocessor=dict(blending=blending))
    train.check_class_counts(_cfg(model=model))
    # a fine-tune changes the head alone: the message gives the fix, and
    # the fix (list indices in --cfg-options) passes
    args = argv(train, 'c.py', '--cfg-options', 'model.cls_head.num_classes=4')
    cfg = train.merge_args(_cfg(model=model), args)
    with pytest.raises(ValueError) as info:
        train.check_class_counts(cfg)
    text = str(info.value)
    assert 'model.cls_head.num_classes=4' in text
    assert 'model.data_preprocessor.blending.augments.1.num_classes=174' \
        in text
    fix = text.split('--cfg-options ')[1].split()
    cfg = train.merge_args(cfg, argv(train, 'c.py', '--cfg-options', *fix))
    train.check_class_counts(cfg)
    assert [a.num_classes for a in cfg.model.data_preprocessor.blending
            .augments] == [4, 4]
    # mmpretrain: the data preprocessor one-hot encodes for Mixup / CutMix
    cls = _cfg(model=dict(head=dict(num_classes=10), train_cfg=dict(
        augments=[dict(type='Mixup', alpha=.8)])),
        data_preprocessor=dict(num_classes=1000))
    with pytest.raises(ValueError, match='data_preprocessor.num_classes=1000'):
        train.check_class_counts(cls)
    cls.model.train_cfg = None  # no batch mixing: the count is unused
    train.check_class_counts(cls)
    # mmseg: the auxiliary head must agree with the decode head
    seg = _cfg(model=dict(decode_head=dict(num_classes=150),
                          auxiliary_head=dict(num_classes=19)))
    with pytest.raises(ValueError, match='auxiliary_head.num_classes=19'):
        train.check_class_counts(seg)


def test_dataset_checks_follow_mmpretrain_and_hint_the_keys(tmp_path):
    # ImageNet(split=...) reads <data_root>/<split>/
    (tmp_path / 'in1k').mkdir()
    imagenet = dict(type='ImageNet', data_root=str(tmp_path / 'in1k'),
                    split='train')
    with pytest.raises(ValueError, match=r"(?s)split='train': no such "
                       r'folder.*train_dataloader.dataset.data_root='):
        train.check_dataset_paths(_cfg(train_dataloader=dict(
            dataset=imagenet)))
    (tmp_path / 'in1k' / 'train').mkdir()
    train.check_dataset_paths(_cfg(train_dataloader=dict(dataset=imagenet)))
    # no data_root (the recognition configs): the failing keys are hinted,
    # not a data_root that would be prefixed to them
    video = dict(type='VideoDataset', ann_file='data/k400/train.txt',
                 data_prefix=dict(video='data/k400/videos_train'))
    with pytest.raises(ValueError) as info:
        train.check_dataset_paths(_cfg(train_dataloader=dict(dataset=video)))
    hint = str(info.value).split('e.g. ')[1]
    assert 'train_dataloader.dataset.ann_file=' in hint
    assert 'train_dataloader.dataset.data_prefix.video=' in hint
    assert 'data_root' not in hint


def test_val_set_checked_with_mmpretrain_val_cfg(monkeypatch, tmp_path):
    """mmpretrain's schedules set ``val_cfg = dict()`` (falsy): the val
    set is still used, so it is checked."""
    (tmp_path / 'train').mkdir()
    (tmp_path / 'train' / 'a.jpg').write_bytes(b'x')
    cfg = _cfg(
        train_dataloader=dict(dataset=dict(type='ImageNet',
                                           data_root=str(tmp_path),
                                           split='train')),
        val_dataloader=dict(dataset=dict(type='ImageNet',
                                         data_root=str(tmp_path / 'no'),
                                         split='val')),
        val_cfg=dict())
    monkeypatch.setattr(train, 'import_plugin', lambda: None)
    monkeypatch.setattr(Config, 'fromfile', staticmethod(lambda p: cfg))
    with pytest.raises(SystemExit, match='val_dataloader.dataset.data_root'):
        train.main(['c.py', '--work-dir', str(tmp_path / 'w')])


def test_decoder_is_not_a_cfg_option(argv):
    with pytest.raises(ValueError, match='MORPHMLP_DECODER=<decord'):
        train.merge_args(_cfg(decoder='decord'), argv(
            train, 'c.py', '--cfg-options', 'decoder=pyav'))


def test_resume_with_other_parameter_groups_is_a_clear_error(
        monkeypatch, tmp_path):
    class Runner:
        hooks = []

        def train(self):
            raise ValueError('loaded state dict has a different number of '
                             'parameter groups')

    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'')
    monkeypatch.setattr(train, 'import_plugin', lambda: None)
    monkeypatch.setattr(Config, 'fromfile', staticmethod(lambda p: _cfg()))
    monkeypatch.setattr(train, 'build_runner', lambda cfg: Runner())
    with pytest.raises(SystemExit, match=r'(?s)error: cannot resume from .*'
                       r'epoch_1.pth.*paramwise_cfg.*load_from'):
        train.main(['c.py', '--resume', str(ckpt), '--work-dir',
                    str(tmp_path)])
    with pytest.raises(ValueError, match='parameter groups'):  # not resuming
        train.main(['c.py', '--work-dir', str(tmp_path / 'new')])


def test_cpu_distributed_setup(monkeypatch):
    import torch.distributed as dist
    calls = []
    monkeypatch.setattr(train, 'accelerator_available', lambda: False)
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group',
                        lambda **kw: calls.append(kw))
    cfg = _cfg(launcher='pytorch',
               env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60)))
    with pytest.warns(UserWarning, match='needs GPUs; using gloo'):
        train.setup_cpu_distributed(cfg)
    assert calls[0]['backend'] == 'gloo'
    assert calls[0]['timeout'].total_seconds() == 60
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    with pytest.raises(ValueError, match='--launcher slurm without a GPU'):
        train.setup_cpu_distributed(_cfg(launcher='slurm'))
    calls.clear()
    train.setup_cpu_distributed(_cfg(launcher='none'))
    assert not calls


def test_runner_type_is_built_from_the_host_registry():
    from mmaction.registry import RUNNERS

    @RUNNERS.register_module(name='MorphMLPToolsProbeRunner', force=True)
    class ProbeRunner:

        @classmethod
        def from_cfg(cls, cfg):
            return ('probe', cfg.work_dir)

    cfg = _cfg(runner_type='MorphMLPToolsProbeRunner', work_dir='w')
    assert train.build_runner(cfg) == ('probe', 'w')


def test_test_tool_merge(argv, tmp_path):
    ckpt = tmp_path / 'e.pth'
    ckpt.write_bytes(b'')
    args = argv(test_tool, 'cfgs/k.py', str(ckpt), '--dump', 'p.pkl',
                '--show-dir', 'vis', '--interval', '3')
    cfg = test_tool.merge_args(_cfg(default_hooks=dict()), args)
    assert cfg.load_from == str(ckpt) and cfg.work_dir.endswith('k')
    assert cfg.test_evaluator == [
        dict(type='AccMetric'),
        dict(type='DumpResults', out_file_path='p.pkl')
    ]
    vis = cfg.default_hooks.visualization
    assert vis.type == 'MultiViewVideoVisualizationHook'
    assert (vis.enable, vis.out_dir, vis.interval) == (True, 'vis', 3)
    seg = _cfg(default_scope='mmseg',
               default_hooks=dict(visualization=dict(
                   type='SegVisualizationHook')),
               visualizer=dict(type='SegLocalVisualizer'))
    seg = test_tool.merge_args(seg, args)
    assert seg.default_hooks.visualization.draw is True
    assert seg.visualizer.save_dir == 'vis'
    with pytest.raises(ValueError, match='default_hooks.visualization'):
        test_tool.merge_args(_cfg(default_scope=None), args)


# --------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------
SMOKE_CONFIG = '''
_base_ = ['mmaction::_base_/default_runtime.py']
data_root = {data_root!r}
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='ResNet3d', depth=18, pretrained=None, pretrained2d=False,
        base_channels=4, num_stages=1, out_indices=(0, ), stage_blocks=(1, ),
        spatial_strides=(1, ), temporal_strides=(1, ), dilations=(1, ),
        conv1_kernel=(1, 3, 3), conv1_stride_t=1, pool1_stride_t=1,
        inflate=((0, ), )),
    cls_head=dict(type='I3DHead', num_classes=3, in_channels=4,
                  dropout_ratio=0., average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor',
                           format_shape='NCTHW'))
pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=1,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=3, num_workers=0, sampler=dict(type='DefaultSampler',
                                              shuffle=True),
    dataset=dict(type='VideoDataset',
                 ann_file=data_root + '/kinetics400_train_list_videos.txt',
                 data_prefix=dict(video=data_root + '/videos_train'),
                 pipeline=pipeline))
val_dataloader = dict(
    batch_size=3, num_workers=0, sampler=dict(type='DefaultSampler',
                                              shuffle=False),
    dataset=dict(type='VideoDataset',
                 ann_file=data_root + '/kinetics400_val_list_videos.txt',
                 data_prefix=dict(video=data_root + '/videos_val'),
                 pipeline=pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
'''


def test_train_test_resume_end_to_end(tmp_path):
    data_root = tmp_path / 'kinetics400'
    mtd.make_dataset([
        'kinetics400', '--out', str(data_root), '--per-class', '2',
        '--val-per-class', '1', '--frames', '16', '--size', '32x64'
    ])
    config = tmp_path / 'tiny_r3d_k400.py'
    config.write_text(SMOKE_CONFIG.format(data_root=str(data_root)))
    work_dir = tmp_path / 'work'

    # no custom_imports in the config: train.py imports the plugin itself
    train.main([str(config), '--work-dir', str(work_dir), '--seed', '0'])
    assert (work_dir / 'epoch_1.pth').is_file()
    assert (work_dir / 'last_checkpoint').is_file()
    runs = [p for p in work_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1 and (runs[0] / f'{runs[0].name}.log').is_file()

    dump = tmp_path / 'preds.pkl'
    test_tool.main([
        str(config), str(work_dir / 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--dump', str(dump)
    ])
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 3
    assert sorted(int(p['gt_label']) for p in preds) == [0, 1, 2]
    assert tuple(preds[0]['pred_score'].shape) == (3, )

    # testing into the training work dir (the usual recipe) keeps the
    # training run's config dump; the test run's is written beside it
    dumped = work_dir / 'tiny_r3d_k400.py'
    trained_cfg = dumped.read_bytes()
    test_tool.main([str(config), str(work_dir / 'epoch_1.pth'),
                    '--work-dir', str(work_dir)])
    assert dumped.read_bytes() == trained_cfg
    assert 'epoch_1.pth' in (work_dir / 'tiny_r3d_k400_test.py').read_text()
    assert 'epoch_1.pth' not in trained_cfg.decode()

    # --resume (auto) continues from epoch 1 to epoch 2 in the same work dir
    train.main([
        str(config), '--work-dir', str(work_dir), '--resume',
        '--no-validate', '--cfg-options', 'train_cfg.max_epochs=2'
    ])
    assert (work_dir / 'epoch_2.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith(
        'epoch_2.pth')
    # the resumed run logs into a timestamped folder of its own (the test
    # run's may share its second, hence its folder)
    assert len([p for p in work_dir.iterdir() if p.is_dir()]) >= 2
    assert any('resumed epoch: 1' in log.read_text()
               for log in work_dir.glob('*/*.log'))


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh',
                                    'slurm_train.sh', 'slurm_test.sh'])
def test_launch_scripts_pick_the_python(tmp_path, script):
    """``PYTHON`` when set; else the active virtualenv / conda env's
    ``python``; else the repository's ``.venv`` (tools/setup_env.sh), so
    that the scripts work without an activated environment."""
    import shutil
    import subprocess
    tools = tmp_path / 'repo' / 'tools'
    tools.mkdir(parents=True)
    shutil.copy(ROOT / 'tools' / script, tools / script)
    shutil.copy(ROOT / 'tools' / 'find_python.sh', tools / 'find_python.sh')
    bins = {}
    for name, where in (('venv', tmp_path / 'repo' / '.venv' / 'bin'),
                        ('path', tmp_path / 'bin'),
                        ('given', tmp_path / 'given')):
        where.mkdir(parents=True)
        stub = where / 'python'
        stub.write_text(f'#!/bin/sh\necho "{name} python" "$@"\n')
        stub.chmod(0o755)
        bins[name] = stub
    # srun for the slurm scripts: run the command after its options
    srun = tmp_path / 'bin' / 'srun'
    srun.write_text('#!/bin/sh\nfor a; do case "$a" in */python|python) '
                    'break;; esac; shift; done\nexec "$@"\n')
    srun.chmod(0o755)
    args = {'dist_train.sh': ['c.py', '1'], 'dist_test.sh': ['c.py', 'k', '1'],
            'slurm_train.sh': ['p', 'j', 'c.py', 'w'],
            'slurm_test.sh': ['p', 'j', 'c.py', 'k']}[script]
    base = {'PATH': f'{tmp_path / "bin"}:/usr/bin:/bin', 'HOME': str(tmp_path)}

    def run(**env):
        out = subprocess.run(['bash', str(tools / script), *args],
                             env={**base, **env}, capture_output=True,
                             text=True, check=True).stdout
        return out.split()[0]

    assert run() == 'venv'
    assert run(VIRTUAL_ENV=str(tmp_path)) == 'path'
    assert run(CONDA_PREFIX=str(tmp_path)) == 'path'
    assert run(PYTHON=str(bins['given'])) == 'given'


def test_auto_resume_choices(tmp_path):
    """What ``--resume`` (auto) continues from, beyond mmengine's reading of
    ``last_checkpoint``."""
    work = tmp_path / 'work'
    work.mkdir()

    def cfg():
        return Config(dict(work_dir=str(work), resume=True, load_from=None))

    # nothing saved yet: a fine-tuning config starts from its load_from
    c = cfg()
    with pytest.warns(UserWarning, match='holds no checkpoint yet'):
        assert train.prepare_auto_resume(c, 'in1k.pth') is None
    assert (c.resume, c.load_from) == (False, 'in1k.pth')
    c = cfg()
    assert train.prepare_auto_resume(c) is None and c.resume is True
    # no last_checkpoint, but checkpoints: the newest one
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        (work / name).write_bytes(b'')
    c = cfg()
    with pytest.warns(UserWarning, match='no last_checkpoint'):
        assert train.prepare_auto_resume(c, 'in1k.pth') == str(
            work / 'epoch_2.pth')
    assert c.resume is True
    # a copied work dir: last_checkpoint names the original folder
    (work / 'last_checkpoint').write_text(str(tmp_path / 'orig' /
                                              'epoch_1.pth'))
    (tmp_path / 'orig').mkdir()
    (tmp_path / 'orig' / 'epoch_1.pth').write_bytes(b'')
    c = cfg()
    with pytest.warns(UserWarning, match='copied work dir'):
        assert train.prepare_auto_resume(c) == str(work / 'epoch_1.pth')
    (work / 'epoch_1.pth').unlink()
    c = cfg()
    with pytest.warns(UserWarning, match='outside'):
        assert train.prepare_auto_resume(c) == str(tmp_path / 'orig' /
                                                   'epoch_1.pth')


def test_resume_path_into_another_runs_work_dir(tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    ckpt = other / 'epoch_2.pth'
    ckpt.write_bytes(b'')
    work = tmp_path / 'work'
    cfg = Config(dict(work_dir=str(work), resume=True, load_from=str(ckpt)))
    train.check_existing_checkpoints(cfg)  # no work dir yet: fine
    work.mkdir()
    (work / 'epoch_3.pth').write_bytes(b'')
    with pytest.raises(ValueError, match=r'--resume .*epoch_2.pth continues '
                       r'a run of .*other.*epoch_3.pth.*--work-dir'):
        train.check_existing_checkpoints(cfg)
    with pytest.warns(UserWarning, match='over epoch_3.pth'):
        train.check_existing_checkpoints(cfg, overwrite=True)
    cfg.load_from = str(work / 'epoch_3.pth')  # its own run: fine
    train.check_existing_checkpoints(cfg)


def test_load_from_must_fit_most_of_the_model():
    import torch
    from morphmlp_mm.engine.hooks import (CheckpointMismatchError,
                                          check_checkpoint_matches)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 3))
    state = model.state_dict()
    # a new head (another class count): loaded, the head left at its init
    finetune = {k: v for k, v in state.items() if k.startswith('0.')}
    finetune['1.weight'] = torch.zeros(5, 4)
    loaded = check_checkpoint_matches(model, {'state_dict': finetune}, 'load')
    assert set(loaded) == {'0.weight', '0.bias', '1.weight'}
    # an official file that was not converted: nothing fits
    official = {'model_state': {'blocks.0.w': torch.zeros(2)}}
    with pytest.raises(CheckpointMismatchError, match=r'gives 0 of the 4 '
                       r'tensors.*tools/convert/morphmlp_official_to_mm.py'):
        check_checkpoint_matches(model, official, 'load', source='x.pth')


def test_pretrained_load_errors_are_one_line(monkeypatch, tmp_path):
    """A ``Pretrained`` checkpoint that does not fit (a wrong prefix, another
    frame count) stops ``tools/train.py`` with ``error: ...``."""
    from morphmlp_mm.checkpoint import CheckpointLoadError

    class Runner:
        hooks = []

        def train(self):
            raise CheckpointLoadError("prefix='backbone.' matches no key")

    monkeypatch.setattr(train, 'import_plugin', lambda: None)
    monkeypatch.setattr(Config, 'fromfile', staticmethod(lambda p: _cfg()))
    monkeypatch.setattr(train, 'build_runner', lambda cfg: Runner())
    with pytest.raises(SystemExit, match="error: prefix='backbone.' matches"):
        train.main(['c.py', '--work-dir', str(tmp_path)])
