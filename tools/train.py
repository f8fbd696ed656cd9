"""Train a model from a config with mmengine's Runner.

Works for every host the plugin supports (mmaction2, mmsegmentation,
mmpretrain): the config's ``default_scope`` decides which registries are
used, and ``runner_type`` (if set) picks a custom runner from that host's
``RUNNERS`` registry. The command-line interface follows the ``tools/train.py``
of mmaction2 / mmpretrain so that existing habits and launch scripts work.

Examples::

    python tools/train.py configs/recognition/<cfg>.py
    python tools/train.py <cfg>.py --work-dir work_dirs/run1 --seed 0
    python tools/train.py <cfg>.py --resume          # latest in work_dir
    python tools/train.py <cfg>.py --resume work_dirs/x/epoch_3.pth
    bash tools/dist_train.sh <cfg>.py 8 --amp
    # CPU, 2 processes:
    bash tools/dist_train.sh <cfg>.py 2 \
        --cfg-options env_cfg.dist_cfg.backend=gloo

Behaviour worth knowing:

* ``work_dir`` priority: ``--work-dir`` > ``work_dir`` in the config (or in
  ``--cfg-options``) > ``./work_dirs/<config stem>``. Logs go to a fresh
  ``<work_dir>/<timestamp>/`` per run (mmengine); checkpoints go to
  ``<work_dir>`` itself, so a warning is printed when a new, non-resumed run
  starts in a directory that already holds checkpoints.
* ``--cfg-options`` is merged right after the config is read; the explicit
  flags (``--work-dir``, ``--amp``, ``--seed``...) are applied after it.
* ``--amp`` refuses to start on a machine without CUDA/NPU/MLU/MUSA instead
  of failing deep inside ``AmpOptimWrapper``.
* ``--launcher pytorch`` on a machine without GPUs initialises a ``gloo``
  process group itself (mmengine 0.10.7 calls ``torch.cuda.set_device``
  unconditionally) and wraps the model in DDP without ``device_ids``.
"""
import argparse
import importlib
import os
import os.path as osp
import sys
import warnings
from typing import List, Optional

from mmengine.config import Config, ConfigDict, DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: config ``default_scope`` -> module holding that host's ``RUNNERS``.
HOST_REGISTRIES = {
    'mmaction': 'mmaction.registry',
    'mmseg': 'mmseg.registry',
    'mmpretrain': 'mmpretrain.registry',
}


def _is_remote(path: str) -> bool:
    """True for URIs (``s3://``, ``http://``...) that mmengine can read."""
    return '://' in path


def add_local_rank_argument(parser: argparse.ArgumentParser) -> None:
    """Accept ``--local_rank`` (torch.distributed.launch) and ``--local-rank``
    (torch >= 2.0 launch) as the same option."""
    parser.add_argument(
        '--local_rank', '--local-rank', dest='local_rank', type=int,
        default=0, help='set by the launcher; exported as LOCAL_RANK')


def export_local_rank(args: argparse.Namespace) -> None:
    """Export ``LOCAL_RANK`` unless a launcher (torchrun) already did."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tools/train.py``."""
    parser = argparse.ArgumentParser(
        description='Train a MorphMLP (or any OpenMMLab) model with '
        'mmengine Runner')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto', default=None,
        help='resume from the checkpoint PATH, or, with no value (or '
        '"auto"), from the latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision: use AmpOptimWrapper (needs a GPU)')
    parser.add_argument(
        '--no-validate', action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the actual total batch size over '
        'auto_scale_lr.base_batch_size of the config')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--diff-rank-seed', action='store_true',
        help='use a different seed on every rank')
    parser.add_argument(
        '--deterministic', action='store_true',
        help='set deterministic options for the CUDNN backend')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, xxx=yyy pairs merged into the '
        'config, e.g. train_cfg.max_epochs=1 '
        'env_cfg.dist_cfg.backend=gloo "model.backbone.out_indices=[3]"; '
        'no white space inside a pair')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    add_local_rank_argument(parser)
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None).

    Exits with a usage error when ``--resume`` names a local file that does
    not exist. Exports ``LOCAL_RANK``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.resume not in (None, 'auto') and not _is_remote(args.resume)
            and not osp.isfile(osp.expanduser(args.resume))):
        parser.error(
            f'--resume {args.resume}: no such checkpoint file. Pass an '
            'existing .pth, or --resume without a value to resume from the '
            'latest checkpoint in the work dir.')
    export_local_rank(args)
    return args


def import_plugin() -> None:
    """Import ``morphmlp_mm`` (host workarounds + registration).

    Works from a source checkout that is not pip-installed: the repository
    root is put on ``sys.path`` if the package cannot be found otherwise.
    """
    try:
        importlib.import_module('morphmlp_mm')
    except ModuleNotFoundError as err:
        if err.name != 'morphmlp_mm':
            raise
        sys.path.insert(0, REPO_ROOT)
        importlib.import_module('morphmlp_mm')


def accelerator_available() -> bool:
    """True if mmengine sees a device that AmpOptimWrapper accepts."""
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def default_work_dir(config: str) -> str:
    """``./work_dirs/<config stem>``."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line options to ``cfg`` (in place) and return it.

    Raises:
        ValueError: an option cannot be honoured by this config/machine
            (``--amp`` without a GPU or with a custom optimizer wrapper,
            ``--auto-scale-lr`` without ``auto_scale_lr`` in the config).
    """
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.amp:
        if not accelerator_available():
            msg = ('--amp needs a CUDA (or NPU/MLU/MUSA) device: mmengine '
                   'AmpOptimWrapper does not run on CPU. Drop --amp to train '
                   'in fp32 on this machine.')
            warnings.warn(msg)
            raise ValueError(msg)
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(
                f'--amp: optim_wrapper.type={wrapper!r} is a custom wrapper; '
                'only OptimWrapper/AmpOptimWrapper can be switched to AMP')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in (
                cfg.auto_scale_lr or {}):
            raise ValueError(
                '--auto-scale-lr needs `auto_scale_lr = dict(enable=False, '
                'base_batch_size=<total batch size the lr was tuned for>)` '
                'in the config')
        cfg.auto_scale_lr.enable = True

    randomness = dict(cfg.get('randomness', None) or {})
    if args.seed is not None:
        randomness['seed'] = args.seed
    if args.diff_rank_seed:
        randomness['diff_rank_seed'] = True
    if args.deterministic:
        randomness['deterministic'] = True
    if randomness:
        cfg.randomness = randomness
    return cfg


def warn_existing_checkpoints(cfg: Config) -> None:
    """Warn when a fresh run would overwrite checkpoints in ``work_dir``."""
    if cfg.get('resume', False):
        return
    work_dir = cfg.work_dir
    if not osp.isdir(work_dir):
        return
    ckpts = sorted(f for f in os.listdir(work_dir)
                   if f.endswith('.pth') or f == 'last_checkpoint')
    if ckpts:
        warnings.warn(
            f'work_dir {work_dir} already holds {", ".join(ckpts[:5])}'
            f'{" ..." if len(ckpts) > 5 else ""}; this new run writes '
            'checkpoints with the same names there (logs go to a new '
            'timestamped subdirectory). Use --resume to continue that run or '
            '--work-dir to start elsewhere.')


def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work on machines without GPUs.

    mmengine 0.10.7 ``init_dist`` calls ``torch.cuda.set_device`` and its
    default DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on CPU.
    Here the process group is created with the config's backend (``gloo``
    unless it names one CPU supports) and the model wrapper gets
    ``device_ids=None``. Runner then finds the group and skips ``init_dist``.
    """
    import torch.distributed as dist
    if cfg.launcher == 'none' or accelerator_available():
        return
    if cfg.launcher != 'pytorch':
        raise ValueError(
            f'--launcher {cfg.launcher} without a GPU is not supported by '
            'mmengine; use --launcher pytorch (tools/dist_train.sh) with '
            'env_cfg.dist_cfg.backend=gloo')
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = dict(env_cfg.get('dist_cfg', None) or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if backend not in ('gloo', 'mpi'):
        warnings.warn(f'dist backend {backend!r} needs GPUs; using gloo')
        backend = 'gloo'
    if not dist.is_initialized():
        timeout = dist_cfg.pop('timeout', None)
        kwargs = dict(dist_cfg)
        if timeout is not None:
            import datetime
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        dist.init_process_group(backend=backend, **kwargs)
    wrapper = cfg.get('model_wrapper_cfg', None)
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
            device_ids=None)
    else:
        wrapper.setdefault('device_ids', None)


def build_runner(cfg: Config):
    """Build mmengine's Runner, or ``runner_type`` from the host registry."""
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    scope = cfg.get('default_scope', None)
    module = HOST_REGISTRIES.get(scope, 'mmengine.registry')
    runners = importlib.import_module(module).RUNNERS
    return runners.build(cfg)


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the arguments, build the runner and train."""
    args = parse_args(argv)
    import_plugin()
    cfg = Config.fromfile(args.config)
    try:
        cfg = merge_args(cfg, args)
        setup_cpu_distributed(cfg)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    warn_existing_checkpoints(cfg)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
