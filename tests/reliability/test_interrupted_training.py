"""Interrupted training: ``kill -9`` at the worst moments, then ``--resume``.

A tiny mmpretrain ``ImageClassifier`` with a custom MorphMLP (one block per
stage, 8..64 channels) trains for 3 epochs of 4 iterations on a 32x32
ImageNet written by ``tools/data/make_tiny_dataset.py``, with random
flips, drop-path and a shuffling sampler, so that a resumed run is only
equal to an uninterrupted one if the sampler, the optimizer, the LR
schedule, the message hub *and* the RNG states are restored.

Run A trains uninterrupted. Run B is killed twice with SIGKILL, in
``tools/train.py`` subprocesses:

1. in the middle of writing ``epoch_2.pth`` (a probe module, imported via
   ``custom_imports``, writes half of the file, touches a marker and
   sleeps): no ``epoch_2.pth`` may appear, ``epoch_1.pth`` must load and
   ``last_checkpoint`` must still name it -- with ``max_keep_ckpts=1``,
   where mmengine alone would have deleted ``epoch_1.pth`` before the
   save;
2. after resuming and saving ``epoch_2.pth``, right before iteration 9
   (the probe pauses there; the test also polls for ``epoch_2.pth``).

A last ``--resume`` finishes the run. The losses of every iteration after
each resume (read from ``<work_dir>/<timestamp>/vis_data/scalars.json``) and
the final weights must equal run A's exactly.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
ITERS_PER_EPOCH = 4
EPOCHS = 3

CONFIG = '''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['morphmlp_mm', 'reliability_probe'],
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
        out_indices=(3, ), out_type='avg_featmap', drop_path_rate=0.2),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=2, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
train_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNet', data_root=data_root, split='train',
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='RandomFlip', prob=0.5,
                                direction='horizontal'),
                           dict(type='PackInputs')]))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs={epochs})
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9,
                                    weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[2],
                       gamma=0.5)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='ReliabilityProbeHook')]
log_processor = dict(window_size=1)
visualizer = dict(type='UniversalVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')])
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)
log_level = 'INFO'
'''

#: Imported by the config in every run. Does nothing unless asked by env:
#: PROBE_HANG_SAVE=<name>: the atomic write of <name> writes half of the
#: bytes into its temporary file, touches PROBE_MARKER and sleeps;
#: PROBE_PAUSE_ITER=<n>: touches PROBE_MARKER and sleeps before the
#: iteration that follows <n> finished iterations.
PROBE = '''
import os
import tempfile
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

HANG_SAVE = os.environ.get('PROBE_HANG_SAVE')
PAUSE_ITER = os.environ.get('PROBE_PAUSE_ITER')
MARKER = os.environ.get('PROBE_MARKER')


def _stop_here():
    with open(MARKER, 'w') as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)


if HANG_SAVE:
    _fds = set()
    _mkstemp, _fdopen = tempfile.mkstemp, os.fdopen

    def mkstemp(*args, **kwargs):
        fd, path = _mkstemp(*args, **kwargs)
        if os.path.basename(path).startswith('.' + HANG_SAVE + '.'):
            _fds.add(fd)
        return fd, path

    class _HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            _stop_here()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fdopen(fd, *args, **kwargs):
        f = _fdopen(fd, *args, **kwargs)
        return _HalfWriter(f) if fd in _fds else f

    tempfile.mkstemp, os.fdopen = mkstemp, fdopen


@HOOKS.register_module(force=True)
class ReliabilityProbeHook(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if PAUSE_ITER is not None and runner.iter == int(PAUSE_ITER):
            _stop_here()
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Dataset, config and probe module, shared by the tests below."""
    tmp = tmp_path_factory.mktemp('interrupted')
    data_root = tmp / 'in1k'
    subprocess.run([
        PYTHON, str(ROOT / 'tools/data/make_tiny_dataset.py'), 'imagenet',
        '--out', str(data_root), '--num-classes', '2', '--per-class', '4',
        '--val-per-class', '1', '--size', '32x32'
    ], check=True, capture_output=True, env=_env(tmp))
    config = tmp / 'tiny_morphmlp_in1k.py'
    config.write_text(CONFIG.format(data_root=str(data_root),
                                    epochs=EPOCHS))
    (tmp / 'reliability_probe.py').write_text(PROBE)
    return tmp, config


def _env(tmp: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(tmp), str(ROOT)]))
    for key in ('PROBE_HANG_SAVE', 'PROBE_PAUSE_ITER', 'PROBE_MARKER',
                'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                'MASTER_PORT'):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _train(tmp: Path, config: Path, work_dir: Path, *args: str,
           **env) -> subprocess.Popen:
    log = open(work_dir.parent / f'{work_dir.name}.{time.time_ns()}.out',
               'w')
    return subprocess.Popen(
        [PYTHON, str(ROOT / 'tools/train.py'), str(config), '--work-dir',
         str(work_dir), *args], stdout=log, stderr=subprocess.STDOUT,
        env=_env(tmp, **env))


def _finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    rc = proc.wait(timeout=timeout)
    if rc != 0:
        with open(proc.stdout.name) as f:
            tail = f.read()[-3000:]
        pytest.fail(f'training exited with {rc}:\n{tail}')


def _kill_when(proc: subprocess.Popen, *paths: Path,
               timeout: float = 300) -> None:
    """SIGKILL ``proc`` once all ``paths`` exist."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if proc.poll() is not None:
            with open(proc.stdout.name) as f:
                tail = f.read()[-3000:]
            pytest.fail(f'training ended ({proc.returncode}) before '
                        f'{[str(p) for p in paths]} appeared:\n{tail}')
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f'timeout waiting for {paths}')
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _losses(work_dir: Path) -> dict:
    """{iteration: loss} of every run in ``work_dir``, in start order."""
    losses = {}
    for run in sorted(p for p in work_dir.iterdir() if p.is_dir()):
        scalars = run / 'vis_data' / 'scalars.json'
        if not scalars.is_file():
            continue
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                losses.setdefault(run.name, {})[record['step']] = \
                    record['loss']
    return losses


def _load(path: Path) -> dict:
    from morphmlp_mm.utils import safe_torch_load
    return safe_torch_load(str(path))


def _assert_checkpoints_complete(work_dir: Path) -> None:
    """Every ``*.pth`` loads; ``last_checkpoint`` names one of them."""
    pths = sorted(work_dir.glob('*.pth'))
    assert pths, 'no checkpoint was saved'
    for path in pths:
        ckpt = _load(path)
        assert {'state_dict', 'optimizer', 'meta', 'message_hub',
                'param_schedulers', 'rng_state'} <= set(ckpt), path
    named = (work_dir / 'last_checkpoint').read_text().strip()
    assert Path(named) in pths


def test_kill_during_save_and_during_training_then_resume(setup):
    tmp, config = setup
    total = ITERS_PER_EPOCH * EPOCHS

    # A: uninterrupted
    work_a = tmp / 'run_a'
    _finish(_train(tmp, config, work_a))
    (run_a, losses_a), = _losses(work_a).items()
    assert sorted(losses_a) == list(range(1, total + 1))

    # B1: killed while epoch_2.pth is half written
    work_b = tmp / 'run_b'
    marker = tmp / 'marker_save'
    proc = _train(tmp, config, work_b, PROBE_HANG_SAVE='epoch_2.pth',
                  PROBE_MARKER=marker)
    _kill_when(proc, marker)
    assert not (work_b / 'epoch_2.pth').exists()
    partial = list(work_b.glob('.epoch_2.pth.*.tmp'))
    assert len(partial) == 1, 'the probe did not interrupt the atomic write'
    full_size = (work_a / f'epoch_{EPOCHS}.pth').stat().st_size
    assert 0 < partial[0].stat().st_size < full_size
    _assert_checkpoints_complete(work_b)
    assert (work_b / 'last_checkpoint').read_text().strip().endswith(
        'epoch_1.pth')

    # B2: resume (auto) from epoch 1; killed before iteration 9, after
    # epoch_2.pth was saved
    marker = tmp / 'marker_iter'
    proc = _train(tmp, config, work_b, '--resume',
                  PROBE_PAUSE_ITER=2 * ITERS_PER_EPOCH, PROBE_MARKER=marker)
    _kill_when(proc, marker, work_b / 'epoch_2.pth')
    assert not list(work_b.glob('.*.tmp')), 'stale temporary file kept'
    _assert_checkpoints_complete(work_b)
    assert [p.name for p in work_b.glob('*.pth')] == ['epoch_2.pth']

    # B3: resume (auto) from epoch 2 to the end
    _finish(_train(tmp, config, work_b, '--resume'))
    assert not list(work_b.glob('.*.tmp'))
    _assert_checkpoints_complete(work_b)
    assert [p.name for p in work_b.glob('*.pth')] == [f'epoch_{EPOCHS}.pth']
    assert [p.name for p in work_a.glob('*.pth')] == [f'epoch_{EPOCHS}.pth']

    runs = _losses(work_b)
    assert len(runs) == 3, runs.keys()
    first, second, third = (runs[k] for k in sorted(runs))
    assert sorted(first) == list(range(1, 2 * ITERS_PER_EPOCH + 1))
    assert sorted(second) == list(
        range(ITERS_PER_EPOCH + 1, 2 * ITERS_PER_EPOCH + 1))
    assert sorted(third) == list(range(2 * ITERS_PER_EPOCH + 1, total + 1))
    for part in (first, second, third):
        for step, loss in part.items():
            assert loss == losses_a[step], (step, loss, losses_a[step])

    final_a = _load(work_a / f'epoch_{EPOCHS}.pth')
    final_b = _load(work_b / f'epoch_{EPOCHS}.pth')
    assert final_b['meta']['iter'] == total
    for key, value in final_a['state_dict'].items():
        assert torch.equal(value, final_b['state_dict'][key]), key


def test_rng_state_hook_restores_only_on_resume():
    """Unit level: the saved states replay the same numbers; a checkpoint
    loaded for fine-tuning (iteration 0) or on another rank with
    ``diff_rank_seed`` leaves the generators alone."""
    import random
    from types import SimpleNamespace

    import numpy as np
    from mmengine.runner import EpochBasedTrainLoop

    from morphmlp_mm.engine.hooks import RNGStateHook

    torch.set_num_threads(1)

    def draw():
        return (random.random(), float(np.random.rand()),
                float(torch.rand(1)))

    hook = RNGStateHook()
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)
    expected = draw()
    # a weights-only round trip through a file keeps them
    import io
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)

    def runner(iteration, rank=0, diff_rank_seed=False):
        return SimpleNamespace(
            iter=iteration, rank=rank, train_loop=loop,
            cfg=dict(randomness=dict(diff_rank_seed=diff_rank_seed)))

    for kwargs in (dict(iteration=0),
                   dict(iteration=8, rank=1, diff_rank_seed=True)):
        hook.after_load_checkpoint(runner(**kwargs), checkpoint)
        hook.before_train_epoch(runner(**kwargs))
        assert draw() != expected, kwargs
    hook.after_load_checkpoint(runner(8), checkpoint)
    hook.before_train_epoch(runner(8))
    assert draw() == expected
