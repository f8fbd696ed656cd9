"""Distributed equivalence on CPU: 2 gloo ranks == 1 process.

The same tiny mmpretrain ``ImageClassifier`` + MorphMLP (one block per
stage) with ``SyncBN`` in the stem trains for 2 epochs of 3 steps on a
32x32 ImageNet written by ``tools/data/make_tiny_dataset.py``:

* 1 process, ``tools/train.py``, batch 4: mmengine reverts ``SyncBN`` to
  plain BatchNorm;
* 2 processes, ``tools/dist_train.sh`` (torchrun, gloo), batch 2 each: the
  ``DefaultSampler`` (``shuffle=False``) gives rank r the samples r, r + 2,
  ..., so every step sees the same global batch of 4. DDP averages the
  gradients of the two batch-2 mean losses, which is the gradient of the
  batch-4 mean loss; SyncBN normalises with the statistics of the global
  batch (on CPU through ``tools/train.py``'s gloo forward).

After the 6 steps every parameter and every BatchNorm running statistic of
the two runs agree within 1e-5. A probe hook also records, on each rank,
the type of the stem norms and their running statistics: both ranks must
hold ``SyncBatchNorm`` layers with identical statistics although they saw
different samples (``broadcast_buffers=False``), which plain BatchNorm
would not give.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TOL = 1e-5

CONFIG = '''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['morphmlp_mm', 'dist_probe'],
                      allow_failed_imports=False)
data_root = {data_root!r}
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=2,
                           mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True),
    backbone=dict(
        type='MorphMLP',
        arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64],
                  chunk_lengths=[2, 4, 4, 8], mlp_ratio=2.),
        out_indices=(3, ), out_type='avg_featmap', drop_path_rate=0.,
        norm_cfg=dict(type='SyncBN'), with_cp={with_cp}),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=2, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
train_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root=data_root, split='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                    weight_decay=1e-4))
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='DistProbeHook')]
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)
log_level = 'INFO'
'''

#: After training, every rank saves the types of the stem norms and all
#: BatchNorm running statistics to <work_dir>/rank<r>.pth.
PROBE = '''
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from morphmlp_mm.models import blocks

# MLP chunks of 16 tokens: the first stages of these 32x32 images have more,
# so training runs the chunked MLP and, under with_cp, the checkpoint
# function of the blocks (both custom autograd functions) under DDP.
blocks.MorphBlock.train_mlp_chunk = 16
CALLS = dict(mlp=0, cp=0)


def _counted(function, key):
    apply = function.apply

    def counted(*args):
        CALLS[key] += 1
        return apply(*args)
    function.apply = counted


_counted(blocks._ResidualMlpFunction, 'mlp')
_counted(blocks._CheckpointFunction, 'cp')


@HOOKS.register_module(force=True)
class DistProbeHook(Hook):
    def before_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        self.start = {k: v.detach().clone()
                      for k, v in model.named_parameters()}

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        stem = model.backbone.patch_embed1
        info = dict(
            norm_types=[type(stem.norm1).__name__,
                        type(stem.norm2).__name__],
            world_size=runner.world_size,
            calls=dict(CALLS),
            moved=max((v.detach() - self.start[k]).abs().max().item()
                      for k, v in model.named_parameters()),
            buffers={k: v.clone() for k, v in model.state_dict().items()
                     if 'running_' in k})
        torch.save(info, osp.join(runner.work_dir, f'rank{runner.rank}.pth'))
'''


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env(tmp: Path, **extra) -> dict:
    env = dict(os.environ)
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                'MASTER_PORT'):
        env.pop(key, None)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT)]))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(cmd, env, timeout=400):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{cmd[:3]} exited with {proc.returncode}:\n'
                    f'{(proc.stdout + proc.stderr)[-4000:]}')
    return proc


def _load(path: Path) -> dict:
    from morphmlp_mm.utils import safe_torch_load
    return safe_torch_load(str(path))


@pytest.mark.parametrize('with_cp', [False, True])
def test_two_gloo_ranks_equal_one_process_with_syncbn(tmp_path, with_cp):
    """Also with checkpointed blocks (reentrant-style checkpointing under
    DDP, the first forward on the streamed no-grad path, the recompute up to
    the MLP's fc1)."""
    data_root = tmp_path / 'in1k'
    _run([
        PYTHON, str(ROOT / 'tools/data/make_tiny_dataset.py'), 'imagenet',
        '--out', str(data_root), '--num-classes', '2', '--per-class', '6',
        '--val-per-class', '1', '--size', '32x32'
    ], _env(tmp_path))
    config = tmp_path / 'tiny_morphmlp_syncbn.py'
    config.write_text(CONFIG.format(data_root=str(data_root),
                                    with_cp=with_cp))
    (tmp_path / 'dist_probe.py').write_text(PROBE)

    one = tmp_path / 'one_rank'
    _run([PYTHON, str(ROOT / 'tools/train.py'), str(config), '--work-dir',
          str(one)], _env(tmp_path))
    two = tmp_path / 'two_ranks'
    _run([
        'bash', str(ROOT / 'tools/dist_train.sh'), str(config), '2',
        '--work-dir', str(two), '--cfg-options',
        'train_dataloader.batch_size=2', 'env_cfg.dist_cfg.backend=gloo'
    ], _env(tmp_path, PYTHON=PYTHON, PORT=_free_port()))

    ref = _load(one / 'epoch_2.pth')
    dist = _load(two / 'epoch_2.pth')
    assert ref['meta']['iter'] == dist['meta']['iter'] == 6
    assert set(ref['state_dict']) == set(dist['state_dict'])
    diffs = {
        key: (value.double() - dist['state_dict'][key].double()).abs().max()
        .item()
        for key, value in ref['state_dict'].items()
        if value.is_floating_point()
    }
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= TOL, (worst, diffs[worst])

    single = _load(one / 'rank0.pth')
    rank0, rank1 = _load(two / 'rank0.pth'), _load(two / 'rank1.pth')
    # the weights moved far more than the tolerance during the 6 steps
    assert single['moved'] > 1000 * TOL and rank0['moved'] > 1000 * TOL
    assert single['world_size'] == 1
    # the chunked MLP (no with_cp) or the checkpoint function ran in every
    # training step of both runs
    key = 'cp' if with_cp else 'mlp'
    for run in (single, rank0, rank1):
        assert run['calls'][key] >= 6, run['calls']
    assert single['norm_types'] == ['_BatchNormXd', '_BatchNormXd']
    assert rank0['world_size'] == rank1['world_size'] == 2
    assert all('SyncBatchNorm' in t for t in rank0['norm_types'])
    for key, value in rank0['buffers'].items():
        assert torch.equal(value, rank1['buffers'][key]), key
        assert (value - single['buffers'][key]).abs().max() <= TOL, key
    print(f'max |param diff| 1 vs 2 ranks: {diffs[worst]:.3g} ({worst})')
