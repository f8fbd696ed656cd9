"""Test (and evaluate) a checkpoint with mmengine's Runner.

Same conventions as ``tools/train.py`` (host chosen by the config's
``default_scope``, ``runner_type`` honoured, ``work_dir`` defaulting to
``./work_dirs/<config stem>``, both local-rank spellings, CPU ``gloo``
fallback for ``--launcher pytorch``). The interface follows mmaction2 /
mmpretrain ``tools/test.py``.

Examples::

    python tools/test.py <cfg>.py work_dirs/<cfg>/best_acc_top1_epoch_30.pth
    python tools/test.py <cfg>.py ckpt.pth --dump results.pkl
    python tools/test.py <cfg>.py ckpt.pth --show-dir vis/ --interval 10
    bash tools/dist_test.sh <cfg>.py ckpt.pth 8

Before testing, the test dataset's paths are checked
(``tools/train.py``'s ``check_dataset_paths``) and the checkpoint must fit
the model: mmengine loads it non-strictly, so a checkpoint of another
architecture would be evaluated with part of the model left at its random
initialisation; ``CheckpointMatchHook('test')`` stops instead, naming the
missing and mismatched keys.

Testing into the training run's work dir keeps that run's config dump
(mmengine would replace it); the test run's config goes beside it as
``<config stem>_test.py`` (:func:`keep_training_config_dump`).

``--show-dir`` switches on the config's ``default_hooks.visualization``:
mmaction2 / mmpretrain ``VisualizationHook`` (``enable=True, out_dir=...``)
or mmseg ``SegVisualizationHook`` (``draw=True`` and the visualizer's
``save_dir``).
"""
import argparse
import contextlib
import importlib.util
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, ConfigDict, DictAction


def _load_train_module():
    """Import the sibling ``train.py`` for its shared helpers."""
    name = 'morphmlp_mm_tools_train'
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, osp.join(osp.dirname(osp.abspath(__file__)), 'train.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_train = _load_train_module()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tools/test.py``."""
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint with mmengine Runner')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--dump', type=str,
        help='dump predictions to this .pkl file for offline evaluation')
    parser.add_argument(
        '--show-dir',
        help='directory where the visualized predictions are saved')
    parser.add_argument(
        '--show', action='store_true',
        help='display the predictions in a window')
    parser.add_argument(
        '--interval', type=int, default=1,
        help='visualize every N-th sample (default 1)')
    parser.add_argument(
        '--wait-time', type=float, default=2,
        help='seconds each window is shown with --show (default 2)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, xxx=yyy pairs merged into the '
        'config; no white space inside a pair')
    parser.add_argument(
        '--launcher', choices=_train.LAUNCHERS, default='none',
        help='job launcher')
    _train.add_local_rank_argument(parser)
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None).

    Exits with a usage error for a local checkpoint that does not exist or a
    ``--dump`` file that is not ``.pkl``/``.pickle``. Exports ``LOCAL_RANK``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not _train._is_remote(args.checkpoint) and not osp.isfile(
            osp.expanduser(args.checkpoint)):
        parser.error(f'checkpoint {args.checkpoint}: no such file')
    if args.dump is not None and not args.dump.endswith(('.pkl', '.pickle')):
        parser.error(f'--dump {args.dump}: the file must end with .pkl or '
                     '.pickle')
    _train.export_local_rank(args)
    return args


#: config ``default_scope`` -> the host's visualization hook type.
VIS_HOOKS = {
    'mmaction': 'MultiViewVideoVisualizationHook',
    'mmpretrain': 'VisualizationHook',
    'mmseg': 'SegVisualizationHook',
}


def register_video_visualization_hook() -> str:
    """Register a 5-D-safe mmaction2 ``VisualizationHook``; returns its name.

    mmaction2 1.2.0 ``VisualizationHook`` permutes every input as
    ``(C, T, H, W)``, but ``FormatShape('NCTHW')`` packs each sample as
    ``(num_views, C, T, H, W)``, so ``--show-dir`` crashes for every 3D
    recognizer (open-mmlab/mmaction2 PR #2697, unmerged). It also passes
    ``show=`` to ``ActionVisualizer.add_datasample``, which only knows
    ``show_frames=``, so the hook fails even on 4-D inputs. This subclass
    draws the first view of 5-D samples and renames the argument.
    """
    from mmaction.engine.hooks import VisualizationHook
    from mmaction.registry import HOOKS

    name = 'MultiViewVideoVisualizationHook'
    if name in HOOKS.module_dict:
        return name

    class MultiViewVideoVisualizationHook(VisualizationHook):
        """``VisualizationHook`` that accepts (views, C, T, H, W) inputs."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.draw_args['show_frames'] = self.draw_args.pop('show', False)

        def _draw_samples(self, batch_idx, data_batch, data_samples,
                          step=0):
            inputs = [
                v[0] if hasattr(v, 'dim') and v.dim() == 5 else v
                for v in data_batch['inputs']
            ]
            super()._draw_samples(batch_idx, {**data_batch, 'inputs': inputs},
                                  data_samples, step=step)

    HOOKS.register_module(name=name, module=MultiViewVideoVisualizationHook)
    return name


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    """Switch on (or add) the visualization hook for --show/--show-dir.

    mmaction2's ``default_runtime`` has no visualization hook; for a config
    of a known host the host's hook is added. mmaction2's hook is swapped for
    :func:`register_video_visualization_hook`'s 5-D-safe subclass. mmseg
    draws through the visualizer's backends, so ``--show-dir`` becomes its
    ``save_dir``.

    Raises:
        ValueError: the hook is missing and the host is unknown.
    """
    hooks = cfg.setdefault('default_hooks', ConfigDict())
    vis = hooks.get('visualization', None)
    if vis is None:
        scope = cfg.get('default_scope', None)
        if scope not in VIS_HOOKS:
            raise ValueError(
                '--show/--show-dir need `default_hooks.visualization` in the '
                f'config (default_scope={scope!r} names no known host)')
        hooks.visualization = ConfigDict(type=VIS_HOOKS[scope])
        vis = hooks.visualization
    if cfg.get('default_scope', None) == 'mmaction' and vis.get(
            'type', None) in ('VisualizationHook',
                              'mmaction.VisualizationHook'):
        vis.type = 'MultiViewVideoVisualizationHook'
    if vis.type == 'MultiViewVideoVisualizationHook':
        register_video_visualization_hook()
    vis.interval = args.interval
    vis.show = args.show
    vis.wait_time = args.wait_time
    if 'SegVisualizationHook' in str(vis.get('type', '')):
        vis.draw = True
        if args.show_dir is not None:
            cfg.visualizer.save_dir = args.show_dir
    else:
        vis.enable = True
        vis.out_dir = args.show_dir


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line options to ``cfg`` (in place) and return it."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = _train.default_work_dir(args.config)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir is not None:
        enable_visualization(cfg, args)
    if args.dump is not None:
        dump = dict(type='DumpResults', out_file_path=args.dump)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump]
        else:
            cfg.test_evaluator = [evaluator, dump]
    return cfg


@contextlib.contextmanager
def keep_training_config_dump(cfg: Config):
    """Keep the training run's config dump while the test runner is built.

    mmengine's Runner writes its config to ``<work_dir>/<config name>``, so
    ``tools/test.py --work-dir <the training work dir>`` (the usual recipe)
    replaced the training run's dump with the test run's config. Here an
    existing dump is put back and the test run's config is kept next to it
    as ``<config stem>_test.py``. Only the process that writes the dump
    (rank 0) touches the files.
    """
    filename = getattr(cfg, 'filename', None)
    path = None
    if filename and not _train._is_remote(str(cfg.work_dir)) and int(
            os.environ.get('RANK', '0')) == 0:
        path = osp.join(cfg.work_dir, osp.basename(filename))
    before = None
    if path is not None and osp.isfile(path):
        with open(path, 'rb') as f:
            before = f.read()
    try:
        yield
    finally:
        if before is not None and osp.isfile(path):
            with open(path, 'rb') as f:
                written = f.read()
            if written != before:
                stem, ext = osp.splitext(path)
                with open(f'{stem}_test{ext}', 'wb') as f:
                    f.write(written)
                with open(path, 'wb') as f:
                    f.write(before)


def drop_train_loop(runner) -> None:
    """Leave the runner of a test run without its (unbuilt) train loop.

    A test never trains, but mmengine builds the train loop, dataset
    included, the first time anything reads ``runner.iter``; mmseg's
    ``SegVisualizationHook`` does for every image it draws, so
    ``--show-dir`` stopped on a missing training split. Without the loop
    ``runner.iter`` is 0, which a test run's unbuilt loop would report
    too. The config (and its dump) are unchanged.
    """
    if isinstance(getattr(runner, '_train_loop', None), dict):
        runner._train_loop = None


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the arguments, build the runner and test."""
    args = parse_args(argv)
    _train.import_plugin()
    cfg = _train.read_config(args.config)
    try:
        cfg = merge_args(cfg, args)
        _train.check_dataset_paths(cfg, ['test_dataloader'])
        _train.setup_cpu_distributed(cfg)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    with keep_training_config_dump(cfg):
        runner = _train.build_runner(cfg)
    drop_train_loop(runner)
    from morphmlp_mm.engine.hooks import (CheckpointMatchHook,
                                          CheckpointMismatchError)
    if hasattr(runner, 'register_hook'):
        runner.register_hook(CheckpointMatchHook('test', args.checkpoint))
    try:
        runner.test()
    except CheckpointMismatchError as err:
        raise SystemExit(f'error: {err}')


if __name__ == '__main__':
    main()
