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
  ``<work_dir>`` itself, so a new, non-resumed run refuses to start in a
  directory that already holds checkpoints unless ``--overwrite`` is given
  (:func:`check_existing_checkpoints`).
* ``--cfg-options`` is merged right after the config is read; the explicit
  flags (``--work-dir``, ``--amp``, ``--seed``...) are applied after it.
* ``--amp``, or a config whose ``optim_wrapper`` is ``AmpOptimWrapper``
  (every recognition config), refuses to start on a machine without
  CUDA/NPU/MLU/MUSA instead of failing deep inside ``AmpOptimWrapper``.
* ``--launcher pytorch`` on a machine without GPUs initialises a ``gloo``
  process group itself (mmengine 0.10.7 calls ``torch.cuda.set_device``
  unconditionally) and wraps the model in DDP without ``device_ids``.
  torch's ``SyncBatchNorm`` only runs on GPUs; on CPU its layers are
  replaced by a gloo-capable :class:`CPUSyncBatchNorm` before DDP wraps the
  model, so ``SyncBN`` configs train on CPU with the statistics of the
  global batch.
* Before the runner is built the dataset paths of the dataloaders that will
  be used are checked (:func:`check_dataset_paths`): a wrong ``data_root``
  stops with a message naming the config key instead of a bare
  ``FileNotFoundError`` (or, for an empty image folder, mmseg's
  ``need at least one array to concatenate``) deep inside a host. So are
  the local checkpoints the model starts from (``init_cfg`` of type
  ``Pretrained``, ``load_from``; :func:`check_checkpoint_paths`) and the
  class counts that must agree (the head's and Mixup / CutMix's;
  :func:`check_class_counts`).
* ``--resume`` (auto) is robust to a run killed at any moment (see
  docs/reliability.md): leftovers of an interrupted atomic save are
  removed, and a ``last_checkpoint`` that is empty or names a missing file
  falls back to the newest checkpoint in ``work_dir``
  (:func:`prepare_auto_resume`). A resumed checkpoint must match the model
  key for key (``CheckpointMatchHook``; mmengine itself resumes
  non-strictly), and every checkpoint carries the RNG states
  (``RNGStateHook``), so a resumed run continues with the random numbers of
  an uninterrupted one.
"""
import argparse
import importlib
import os
import os.path as osp
import re
import sys
import warnings
from typing import Any, List, Optional

import torch
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
        '--overwrite', action='store_true',
        help='start a new run in a work dir that already holds checkpoints, '
        'replacing those with the same names (without it such a run '
        'refuses to start)')
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


def read_config(path: str) -> Config:
    """:func:`morphmlp_mm.utils.cli.read_config` (after
    :func:`import_plugin`): ``Config.fromfile`` with one-line errors.

    Raises:
        SystemExit: ``path`` does not exist, or the config's own code
            rejects it.
    """
    from morphmlp_mm.utils.cli import read_config as read
    return read(path)


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
    importlib.import_module('morphmlp_mm.engine.hooks')  # registers hooks


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
        if 'decoder' in args.cfg_options and 'decoder' in cfg:
            raise ValueError(
                f'--cfg-options decoder={args.cfg_options["decoder"]} has no '
                'effect: the config built its pipelines from `decoder` when '
                'it was read. Choose the decoder with the environment '
                'variable instead: MORPHMLP_DECODER=<decord|pyav|opencv> '
                'python tools/train.py ...')
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
            raise ValueError(
                '--amp needs a CUDA (or NPU/MLU/MUSA) device: mmengine '
                'AmpOptimWrapper does not run on CPU. Drop --amp to train in '
                'fp32 on this machine.')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(
                f'--amp: optim_wrapper.type={wrapper!r} is a custom wrapper; '
                'only OptimWrapper/AmpOptimWrapper can be switched to AMP')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    elif (cfg.get('optim_wrapper', None) or {}).get('type', None) == \
            'AmpOptimWrapper' and not accelerator_available():
        amp_keys = [k for k in ('loss_scale', 'dtype', 'use_fsdp')
                    if k in cfg.optim_wrapper]
        raise ValueError(
            "optim_wrapper.type='AmpOptimWrapper' (mixed precision, as the "
            'config was written for GPUs) needs a CUDA (or NPU/MLU/MUSA) '
            'device, and this machine has none. Train in fp32 here with '
            '--cfg-options optim_wrapper.type=OptimWrapper' +
            (f' (and remove optim_wrapper.{", ".join(amp_keys)} from the '
             'config: OptimWrapper does not take them)' if amp_keys else ''))

    if args.resume == 'auto':
        # kept for a job that has nothing to resume yet
        # (:func:`prepare_auto_resume`)
        args.finetune_from = cfg.get('load_from', None)
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


#: Dataloaders whose datasets ``tools/train.py`` checks before training.
TRAIN_DATALOADERS = ('train_dataloader', 'val_dataloader')
#: Hidden temporary files of an interrupted atomic save
#: (``morphmlp_mm.utils.atomic_io``): ``.<name>.<random>.tmp``.
_STALE_TMP_RE = re.compile(
    r'^\.(.+\.pth|last_checkpoint)\.[A-Za-z0-9_]+\.tmp$')
_CKPT_RE = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _is_empty_dir(path: str) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def _dataset_problems(dataset: Any, where: str,
                      hints: Optional[List[str]] = None) -> List[str]:
    """Path problems of one dataset config (wrapper datasets recursed).

    ``hints``, when given, receives a ``--cfg-options`` example per dataset
    with problems: its ``data_root`` where it has one, else the keys that
    failed (the recognition configs give ``ann_file`` and ``data_prefix``
    relative to the working directory, without a ``data_root``).
    """
    if not isinstance(dataset, dict):
        return []
    problems = []
    if isinstance(dataset.get('dataset', None), dict):  # Repeat/ClassBalanced
        problems += _dataset_problems(dataset['dataset'], where + '.dataset',
                                      hints)
    for i, sub in enumerate(dataset.get('datasets', None) or []):  # Concat
        problems += _dataset_problems(sub, f'{where}.datasets.{i}', hints)
    data_root = dataset.get('data_root', None) or ''
    if not isinstance(data_root, str) or _is_remote(data_root):
        return problems
    own = _own_problems(dataset, where, data_root)
    if own and hints is not None:
        if data_root:
            hints.append(f'{where}.data_root=/path/to/data')
        else:
            hints += [p.split('=', 1)[0] + '=/path/to/it' for p in own]
    return problems + own


def _own_problems(dataset: dict, where: str, data_root: str) -> List[str]:
    """:func:`_dataset_problems` of one dataset, its wrapped ones aside."""
    problems: List[str] = []
    if data_root and not osp.isdir(osp.expanduser(data_root)):
        return [f'{where}.data_root={data_root!r} is not a directory']

    def full(path: str) -> str:
        path = osp.expanduser(path)
        return path if osp.isabs(path) or not data_root else osp.join(
            osp.expanduser(data_root), path)

    ann_file = dataset.get('ann_file', None) or ''
    if isinstance(ann_file, str) and ann_file and not _is_remote(ann_file):
        if not osp.isfile(full(ann_file)):
            problems.append(f'{where}.ann_file={ann_file!r} does not exist '
                            f'(looked for {full(ann_file)!r})')
    prefix = dataset.get('data_prefix', None) or {}
    if isinstance(prefix, str):
        prefix = dict(img_path=prefix)
    if not isinstance(prefix, dict):
        return problems
    split = dataset.get('split', None)
    if (isinstance(split, str) and split and not ann_file
            and not any(prefix.values())):
        # mmpretrain's ImageNet / CustomDataset: <data_root>/<split>/
        if not osp.isdir(full(split)):
            problems.append(f'{where}.split={split!r}: no such folder '
                            f'(looked for {full(split)!r})')
    for key, value in prefix.items():
        if not isinstance(value, str) or not value or _is_remote(value):
            continue
        path = full(value)
        if not osp.exists(path):
            problems.append(f'{where}.data_prefix.{key}={value!r} does not '
                            f'exist (looked for {path!r})')
        elif not ann_file and osp.isdir(path) and _is_empty_dir(path):
            # datasets without an annotation file list this folder
            problems.append(f'{where}.data_prefix.{key}={value!r} is an '
                            f'empty folder ({path!r})')
    return problems


def check_dataset_paths(cfg: Config, dataloaders: Any = TRAIN_DATALOADERS
                        ) -> None:
    """Check ``data_root`` / ``ann_file`` / ``data_prefix`` of datasets.

    Only local paths are checked, with mmengine's ``BaseDataset`` rule
    (``ann_file`` and ``data_prefix`` values are relative to ``data_root``
    unless absolute). Dataloaders that are None are skipped.

    Raises:
        ValueError: one or more paths do not exist; the message names each
            config key, its value and how to fix it.
    """
    problems: List[str] = []
    hints: List[str] = []
    for name in dataloaders:
        loader = cfg.get(name, None)
        if isinstance(loader, dict):
            problems += _dataset_problems(loader.get('dataset', None),
                                          f'{name}.dataset', hints)
    if problems:
        raise ValueError(
            'the dataset paths of the config do not exist:\n  - ' +
            '\n  - '.join(problems) + '\nPoint the datasets at your copy, '
            'in the config or with --cfg-options, e.g. ' +
            ' '.join(dict.fromkeys(hints)) + ' (relative paths start at '
            f'{os.getcwd()}); see docs/data_preparation.md for the expected '
            'layouts.')


def remove_stale_tmp_files(work_dir: str) -> List[str]:
    """Delete leftovers of saves that were killed midway; returns them.

    Checkpoints are written to a hidden temporary file and renamed into
    place (``morphmlp_mm.utils.atomic_io``), so a killed save never leaves a
    truncated ``.pth``, only such a temporary file.
    """
    removed = []
    if not osp.isdir(work_dir):
        return removed
    for name in sorted(os.listdir(work_dir)):
        if _STALE_TMP_RE.match(name):
            try:
                os.remove(osp.join(work_dir, name))
            except FileNotFoundError:  # another rank was faster
                continue
            removed.append(name)
    return removed


def _saved_in(path: str, work_dir: str) -> bool:
    """Whether the local checkpoint ``path`` lies directly in ``work_dir``
    (links resolved): a checkpoint of that work dir's run."""
    return osp.dirname(osp.realpath(path)) == osp.realpath(work_dir)


def _newest_checkpoint(work_dir: str) -> Optional[str]:
    found = []
    for name in os.listdir(work_dir):
        match = _CKPT_RE.match(name)
        if match:
            found.append((match.group(1) == 'iter', int(match.group(2)),
                          osp.getmtime(osp.join(work_dir, name)), name))
    return osp.join(work_dir, max(found)[-1]) if found else None


def prepare_auto_resume(cfg: Config,
                        finetune_from: Optional[str] = None
                        ) -> Optional[str]:
    """Pick the checkpoint ``--resume`` (auto) continues from.

    mmengine reads ``<work_dir>/last_checkpoint``; its ``CheckpointHook``
    writes that file in place, so a kill at the wrong moment leaves it empty,
    and with ``max_keep_ckpts`` it may name a checkpoint that a later,
    interrupted save already deleted. Here stale temporary files are removed
    and a ``last_checkpoint`` that is missing or names no existing file is
    replaced by the newest ``epoch_*.pth`` / ``iter_*.pth`` in ``work_dir``
    (with a warning). A ``last_checkpoint`` naming a file outside
    ``work_dir`` (a copied work dir) is followed to the copy in
    ``work_dir`` when there is one, else with a warning. The choice is
    written to ``cfg.load_from``.

    With nothing to resume (a job started with ``--resume`` that was
    requeued before its first checkpoint), a config that fine-tunes from
    ``load_from`` (``finetune_from``, the value ``--resume`` cleared) starts
    from it as a new run, as it would have without ``--resume``; mmengine
    would start from scratch.

    Returns:
        str | None: The checkpoint resumed from; None starts a new run
        (nothing saved yet).

    Raises:
        ValueError: ``last_checkpoint`` names a missing file and
            ``work_dir`` holds no other checkpoint.
    """
    work_dir = cfg.work_dir
    if not cfg.get('resume', False) or cfg.get('load_from', None) or \
            _is_remote(work_dir):
        return cfg.get('load_from', None)
    removed = remove_stale_tmp_files(work_dir)
    if removed:
        warnings.warn(f'removed {", ".join(removed)} from {work_dir}: '
                      'leftovers of a save that was interrupted')
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = ''
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
    if named and (_is_remote(named) or osp.isfile(named)):
        if not _is_remote(named) and not _saved_in(named, work_dir):
            local = osp.join(work_dir, osp.basename(named))
            if osp.isfile(local):
                warnings.warn(
                    f'{pointer} names {named!r}, outside {work_dir} (a '
                    f'copied work dir?); resuming from its copy {local}')
                named = local
            else:
                warnings.warn(f'{pointer} names {named!r}, outside '
                              f'{work_dir}; resuming from it')
        cfg.load_from = named
        return named
    newest = _newest_checkpoint(work_dir) if osp.isdir(work_dir) else None
    if newest is None:
        if named:
            raise ValueError(
                f'{pointer} names {named!r}, which does not exist, and '
                f'{work_dir} holds no other epoch_*.pth / iter_*.pth. The '
                'run was interrupted while its only checkpoint was being '
                'replaced (max_keep_ckpts=1?). Start again without --resume, '
                'or pass --resume PATH with a checkpoint of this run.')
        if finetune_from:
            warnings.warn(
                f'--resume: {work_dir} holds no checkpoint yet; starting a '
                f'new run from load_from={finetune_from!r}')
            cfg.resume = False
            cfg.load_from = finetune_from
        return None  # nothing saved yet
    if named:
        warnings.warn(f'{pointer} names {named!r}, which does not exist; '
                      f'resuming from the newest checkpoint {newest}')
    else:
        warnings.warn(f'{work_dir} has no last_checkpoint; resuming from '
                      f'the newest checkpoint {newest}')
    cfg.load_from = newest
    return newest


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient is summed as well."""

    @staticmethod
    def forward(ctx, tensor, group):
        import torch.distributed as dist
        ctx.group = group
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=group)
        return tensor

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class CPUSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm that synchronises its batch statistics over gloo ranks.

    torch's ``SyncBatchNorm`` needs GPUs (its kernels are CUDA-only and DDP
    refuses it on CPU modules: ``SyncBatchNorm layers only work with GPU
    modules``). In distributed training this layer computes the mean and
    then the variance of the centred input over all ranks with
    differentiable all-reduces, normalises with them and updates the
    running statistics like ``BatchNorm`` (unbiased variance). Outside
    distributed training, in eval mode or with one rank it is
    ``BatchNorm``. The result equals ``BatchNorm`` on the global batch up
    to float rounding. State-dict keys are those of ``BatchNorm``.
    """

    process_group = None

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(
                f'expected at least 2D input (got {input.dim()}D input)')

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist
        self._check_input_dim(input)
        if not (self.training and dist.is_available()
                and dist.is_initialized()):
            return super().forward(input)
        group = self.process_group or dist.group.WORLD
        if dist.get_world_size(group) < 2:
            return super().forward(input)
        dims = [0] + list(range(2, input.dim()))
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() // input.size(1)],
                             dtype=input.dtype, device=input.device)
        count = _AllReduceSum.apply(count, group)
        mean = _AllReduceSum.apply(input.sum(dims), group) / count
        centered = input - mean.view(shape)
        var = _AllReduceSum.apply((centered * centered).sum(dims),
                                  group) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked)
                            if self.momentum is None else self.momentum)
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum *
                                                         unbiased)
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_cpu_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every ``nn.SyncBatchNorm`` in ``module`` by
    :class:`CPUSyncBatchNorm`, sharing its parameters and buffers."""
    out = module
    if isinstance(module, torch.nn.SyncBatchNorm):
        out = CPUSyncBatchNorm(module.num_features, module.eps,
                               module.momentum, module.affine,
                               module.track_running_stats)
        out.process_group = module.process_group
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_cpu_sync_batchnorm(child))
    return out


_CPU_RUNNER = {}


def cpu_distributed_runner_class():
    """mmengine ``Runner`` whose DDP wrapping works with SyncBN on CPU.

    Before the model is wrapped, ``cfg.sync_bn`` (if set) is applied and
    every ``SyncBatchNorm`` becomes a :class:`CPUSyncBatchNorm`.
    """
    if 'cls' not in _CPU_RUNNER:
        from mmengine.model import convert_sync_batchnorm
        from mmengine.runner import Runner

        class CPUDistributedRunner(Runner):
            """``Runner`` for ``--launcher pytorch`` without GPUs."""

            def wrap_model(self, model_wrapper_cfg, model):
                if not self.distributed:
                    return super().wrap_model(model_wrapper_cfg, model)
                sync_bn = self.cfg.pop('sync_bn', None)
                try:
                    if sync_bn is not None:
                        model = convert_sync_batchnorm(model, sync_bn)
                    model = convert_cpu_sync_batchnorm(model)
                    return super().wrap_model(model_wrapper_cfg, model)
                finally:
                    if sync_bn is not None:
                        self.cfg.sync_bn = sync_bn

        _CPU_RUNNER['cls'] = CPUDistributedRunner
    return _CPU_RUNNER['cls']


def register_reliability_hooks(runner, resume: bool, source: Optional[str]
                               ) -> None:
    """Add ``RNGStateHook`` (unless configured) and a
    ``CheckpointMatchHook`` for the checkpoint the run starts from
    (``'resume'``, or ``'load'`` for a ``load_from`` fine-tune) to a built
    runner; make its ``CheckpointHook`` delete outdated checkpoints only
    after saving."""
    from morphmlp_mm.engine.hooks import (CheckpointMatchHook, RNGStateHook,
                                          rotate_checkpoints_after_save)
    hooks = getattr(runner, 'hooks', None)
    if hooks is None or not hasattr(runner, 'register_hook'):
        return  # a custom runner without mmengine's hook API
    for hook in hooks:
        rotate_checkpoints_after_save(hook)
    if not any(isinstance(h, RNGStateHook) for h in hooks):
        runner.register_hook(RNGStateHook())
    if resume:
        runner.register_hook(CheckpointMatchHook('resume', source=source))
    elif source is not None:
        runner.register_hook(CheckpointMatchHook('load', source=source))


def check_existing_checkpoints(cfg: Config, overwrite: bool = False) -> None:
    """Refuse a fresh run that would overwrite checkpoints in ``work_dir``.

    mmengine writes every run's checkpoints straight into ``work_dir``
    (only the logs get a timestamped subfolder), so a second run there
    replaces ``epoch_1.pth``, the best checkpoint and ``last_checkpoint`` of
    the first. A resumed run continues the same files and passes.

    Args:
        cfg (Config): The merged config (``work_dir`` set).
        overwrite (bool): ``--overwrite``: go ahead, with a warning.

    Raises:
        ValueError: ``work_dir`` holds checkpoints and neither ``resume``
            (of this work dir's run) nor ``overwrite`` is set; also for
            ``--resume PATH`` of a checkpoint from another folder into a
            ``work_dir`` holding checkpoints.
    """
    work_dir = cfg.work_dir
    load_from = cfg.get('load_from', None)
    resume = cfg.get('resume', False)
    if resume and (not load_from or _is_remote(load_from)
                   or _saved_in(load_from, work_dir)):
        return  # continues the run of work_dir
    if _is_remote(work_dir) or not osp.isdir(work_dir):
        return
    ckpts = sorted(f for f in os.listdir(work_dir)
                   if f.endswith('.pth') or f == 'last_checkpoint')
    if not ckpts:
        return
    listed = f'{", ".join(ckpts[:5])}{" ..." if len(ckpts) > 5 else ""}'
    if resume and not overwrite:
        origin = osp.dirname(osp.abspath(load_from))
        raise ValueError(
            f'--resume {load_from} continues a run of {origin} in work_dir '
            f'{work_dir}, which holds checkpoints of another run ({listed}) '
            f'that it would overwrite. Pass --work-dir {origin} to continue '
            'that run where it was saved, another --work-dir, or '
            '--overwrite.')
    if overwrite:
        warnings.warn(f'--overwrite: this new run writes its checkpoints '
                      f'into {work_dir}, over {listed} of an earlier run')
        return
    raise ValueError(
        f'work_dir {work_dir} already holds checkpoints of an earlier run '
        f'({listed}); a new run would overwrite them. Pass --resume to '
        'continue that run, --work-dir to start elsewhere, or --overwrite '
        'to replace them.')


def _find_pretrained(node: Any, where: str) -> List[tuple]:
    """(config key, checkpoint) of every ``Pretrained`` init_cfg below
    ``node`` (dicts and lists of the model config)."""
    found = []
    if isinstance(node, dict):
        if node.get('type', None) == 'Pretrained' and isinstance(
                node.get('checkpoint', None), str):
            found.append((where, node['checkpoint']))
        for key, value in node.items():
            found += _find_pretrained(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _find_pretrained(value, f'{where}.{i}')
    return found


def check_checkpoint_paths(cfg: Config) -> None:
    """Check the local checkpoints a new run starts from.

    Every ``init_cfg`` of type ``Pretrained`` in ``model`` (the recognition
    and segmentation configs start their backbone from ImageNet-1K weights
    under ``pretrained/``) and ``load_from``. mmengine reads them only after
    building the datasets and the model, and then stops with a bare
    ``FileNotFoundError``. URLs and ``open-mmlab://`` / ``torchvision://``
    names are left to mmengine.

    Raises:
        ValueError: a local checkpoint does not exist; the message names the
            key and how to go on.
    """
    problems = []
    for where, path in _find_pretrained(cfg.get('model', None), 'model'):
        if _is_remote(path) or osp.isfile(osp.expanduser(path)):
            continue
        problems.append(
            f'{where}.checkpoint={path!r} does not exist. Convert or '
            'download the weights to that path (docs/checkpoints.md), point '
            f'{where}.checkpoint elsewhere, or train from scratch with '
            f'--cfg-options {where}=None')
    load_from = cfg.get('load_from', None)
    if (isinstance(load_from, str) and not cfg.get('resume', False)
            and not _is_remote(load_from)
            and not osp.isfile(osp.expanduser(load_from))):
        problems.append(f'load_from={load_from!r} does not exist')
    if problems:
        raise ValueError('checkpoints the config starts from are missing:\n'
                         '  - ' + '\n  - '.join(problems))


def _class_counts(cfg: Config) -> List[tuple]:
    """(config key, num_classes) of every place a classifier's class count
    is set: the head(s) and the label mixing that one-hot encodes labels
    (mmaction2 ``MixupBlending`` / ``CutmixBlending``, mmpretrain's data
    preprocessor when the model mixes batches)."""
    model = cfg.get('model', None) or {}
    found = []
    for head in ('cls_head', 'head', 'decode_head', 'auxiliary_head'):
        value = model.get(head, None)
        heads = value if isinstance(value, (list, tuple)) else [value]
        for i, h in enumerate(heads):
            if isinstance(h, dict) and 'num_classes' in h:
                key = f'model.{head}' + (f'.{i}' if len(heads) > 1 else '')
                found.append((f'{key}.num_classes', h['num_classes']))
    preprocessor = model.get('data_preprocessor', None) or {}
    blending = preprocessor.get('blending', None) or {}
    base = 'model.data_preprocessor.blending'
    if 'num_classes' in blending:
        found.append((f'{base}.num_classes', blending['num_classes']))
    for i, aug in enumerate(blending.get('augments', None) or []):
        if isinstance(aug, dict) and 'num_classes' in aug:
            found.append((f'{base}.augments.{i}.num_classes',
                          aug['num_classes']))
    if (model.get('train_cfg', None) or {}).get('augments', None):
        for key, pre in (('model.data_preprocessor', preprocessor),
                         ('data_preprocessor',
                          cfg.get('data_preprocessor', None) or {})):
            if isinstance(pre, dict) and 'num_classes' in pre:
                found.append((f'{key}.num_classes', pre['num_classes']))
                break
    return found


def check_class_counts(cfg: Config) -> None:
    """Check that every class count of the model agrees.

    Changing ``model.cls_head.num_classes`` alone, the usual first step of a
    fine-tune on another dataset, otherwise trains until the first
    accuracy evaluation and then fails inside mmaction2 with ``operands
    could not be broadcast together with shapes (4,4) (4,1,174)`` (the
    Mixup / CutMix labels still have the old width).

    Raises:
        ValueError: the counts differ; the message lists them and gives the
            ``--cfg-options`` that sets all of them.
    """
    counts = _class_counts(cfg)
    if len({n for _, n in counts}) <= 1:
        return
    head = counts[0][1]
    listed = ', '.join(f'{k}={n}' for k, n in counts)
    fix = ' '.join(f'{k}={head}' for k, n in counts if n != head)
    raise ValueError(
        f'the class counts of the config disagree: {listed}. Every one must '
        'be the number of classes of your dataset, e.g. to keep '
        f'{counts[0][0]}={head}: --cfg-options {fix}')


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
        if cfg.get('launcher', 'none') != 'none' and \
                not accelerator_available():
            return cpu_distributed_runner_class().from_cfg(cfg)
        return Runner.from_cfg(cfg)
    scope = cfg.get('default_scope', None)
    module = HOST_REGISTRIES.get(scope, 'mmengine.registry')
    runners = importlib.import_module(module).RUNNERS
    return runners.build(cfg)


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the arguments, build the runner and train."""
    args = parse_args(argv)
    import_plugin()
    cfg = read_config(args.config)
    try:
        cfg = merge_args(cfg, args)
        # mmpretrain's schedules set ``val_cfg = dict()``: still validated
        check_dataset_paths(cfg, [
            name for name in TRAIN_DATALOADERS
            if name != 'val_dataloader'
            or cfg.get('val_cfg', None) is not None
        ])
        check_checkpoint_paths(cfg)
        check_class_counts(cfg)
        check_existing_checkpoints(cfg, args.overwrite)
        resume_from = prepare_auto_resume(
            cfg, getattr(args, 'finetune_from', None))
        setup_cpu_distributed(cfg)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    runner = build_runner(cfg)
    register_reliability_hooks(runner, bool(cfg.get('resume', False)),
                               resume_from or cfg.get('load_from', None))
    from morphmlp_mm.checkpoint import CheckpointLoadError
    from morphmlp_mm.engine.hooks import CheckpointMismatchError
    try:
        runner.train()
    except (CheckpointMismatchError, CheckpointLoadError) as err:
        # a resumed / fine-tuned checkpoint, or an init_cfg Pretrained one,
        # that does not fit the model
        raise SystemExit(f'error: {err}')
    except ValueError as err:
        if not cfg.get('resume', False) or 'parameter group' not in str(err):
            raise
        raise SystemExit(
            f'error: cannot resume from {resume_from}: its optimizer state '
            f'does not fit this config\'s optim_wrapper ({err}): the '
            'optimizer or its paramwise_cfg changed since that checkpoint was '
            'saved. Resume with the config it was trained with (stored in '
            "checkpoint['meta']['config']), or start a new run from its "
            'weights with --cfg-options load_from=<checkpoint> (no --resume)'
            ) from err


if __name__ == '__main__':
    main()
