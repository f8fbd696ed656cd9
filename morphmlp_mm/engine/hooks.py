"""mmengine hooks for reliable training runs.

* :class:`RNGStateHook` saves the random number generator states of Python,
  numpy and torch (CPU and CUDA) into every checkpoint and restores them on
  ``--resume``, so that a resumed run with random augmentation, dropout or
  drop-path continues with the same random numbers as an uninterrupted run
  (mmengine 0.10.7 only re-seeds on resume, which replays the random
  numbers of the first epoch). The states are stored as plain tensors,
  ints and floats: the checkpoint stays readable with
  ``torch.load(weights_only=True)`` as far as this hook is concerned.
* :class:`CheckpointMatchHook` compares a checkpoint with the model before
  mmengine loads it, and stops with a message that names the mismatching
  keys and the fix. mmengine's ``Runner.resume`` and ``Runner.test`` load
  non-strictly: a checkpoint of another architecture is loaded partly and
  the rest of the model keeps its random initialisation, with only a log
  warning. ``tools/train.py --resume`` and ``tools/test.py`` register it;
  the demos under ``tools/demo`` read their checkpoint through
  :func:`load_matching_checkpoint`, which applies the same check,
  :func:`check_checkpoint_matches`.
* :func:`rotate_checkpoints_after_save` makes an mmengine
  ``CheckpointHook`` with ``max_keep_ckpts`` delete old checkpoints after
  the new one is saved (mmengine 0.10.7 deletes first: a run killed during
  that save keeps ``max_keep_ckpts - 1`` checkpoints, with
  ``max_keep_ckpts=1`` none). ``tools/train.py`` applies it.

The hooks are registered in mmengine's root ``HOOKS`` registry (every
host's ``HOOKS`` falls back to it) when this module is imported;
:func:`register_hooks` does the same explicitly and is idempotent. Configs
use them with::

    custom_imports = dict(imports=['morphmlp_mm', 'morphmlp_mm.engine.hooks'],
                          allow_failed_imports=False)
    custom_hooks = [dict(type='RNGStateHook')]
"""
import random
from collections import OrderedDict, deque
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

#: Key of the RNG states in the checkpoint dict.
RNG_STATE_KEY = 'rng_state'
#: Loops that re-read the data they skip on resume (the random numbers the
#: data pipeline draws there cannot be replayed exactly).
_ITER_LOOPS = ('IterBasedTrainLoop', )


def _python_state() -> Dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    return dict(version=int(version),
                internal=torch.tensor(internal, dtype=torch.int64),
                gauss_next=gauss_next)


def _numpy_state() -> Dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return dict(name=str(name),
                keys=torch.from_numpy(keys.astype(np.int64)),
                pos=int(pos), has_gauss=int(has_gauss),
                cached_gaussian=float(cached))


def get_rng_state() -> Dict[str, Any]:
    """The current RNG states as a ``weights_only``-loadable dict."""
    state = dict(python=_python_state(), numpy=_numpy_state(),
                 torch=torch.get_rng_state().clone())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore states written by :func:`get_rng_state`.

    Raises:
        ValueError: ``state`` lacks the Python, numpy or torch entry.
    """
    missing = [k for k in ('python', 'numpy', 'torch') if k not in state]
    if missing:
        raise ValueError(
            f'rng_state lacks {missing}; it must be written by '
            'morphmlp_mm.engine.hooks.get_rng_state')
    py = state['python']
    random.setstate((py['version'],
                     tuple(int(v) for v in py['internal'].tolist()),
                     py['gauss_next']))
    npy = state['numpy']
    np.random.set_state((npy['name'], npy['keys'].numpy().astype(np.uint32),
                         npy['pos'], npy['has_gauss'],
                         npy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            print_log(
                f'rng_state holds {len(cuda)} CUDA generators, this machine '
                f'has {torch.cuda.device_count()} devices: CUDA RNG states '
                'not restored', logger='current', level=30)


class RNGStateHook(Hook):
    """Save and restore RNG states for bit-exact resumption.

    ``before_save_checkpoint`` writes :func:`get_rng_state` under
    ``checkpoint['rng_state']``. When a run resumes (the runner's iteration
    counter is past 0 after loading), the states are restored right before
    the first resumed epoch (``EpochBasedTrainLoop``), i.e. at the point of
    the interrupted run where the checkpoint was written; on a checkpoint
    written at the end of an epoch the resumed run then draws the same
    random numbers as an uninterrupted one. Loading weights with
    ``load_from`` (fine-tuning) does not restore anything.

    Limits: ``IterBasedTrainLoop`` re-reads the skipped batches on resume;
    the states are restored after that, before the first resumed iteration,
    so model-side randomness (dropout, drop-path) continues exactly but a
    data pipeline that runs in the main process (``num_workers=0``) and
    draws random numbers does not. A validation loop that draws random
    numbers between the checkpoint and the next epoch shifts them as well.
    With ``randomness.diff_rank_seed=True`` only rank 0's states are saved
    (mmengine saves on rank 0): other ranks keep their fresh seeds.

    Args:
        priority (str | int): Hook priority. Defaults to ``'VERY_LOW'``, so
            the states are restored after every other ``before_train_*``
            hook has run.
    """

    priority = 'VERY_LOW'

    def __init__(self, priority: Optional[Any] = None) -> None:
        if priority is not None:
            self.priority = priority
        self._pending: Optional[Dict[str, Any]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[RNG_STATE_KEY] = get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(RNG_STATE_KEY)
        self._pending = state if isinstance(state, Mapping) else None

    def _restore(self, runner) -> None:
        state, self._pending = self._pending, None
        if state is None or runner.iter == 0:
            return  # nothing saved, or loaded for fine-tuning (load_from)
        randomness = runner.cfg.get('randomness', None) or {}
        if randomness.get('diff_rank_seed', False) and runner.rank != 0:
            print_log(
                'RNGStateHook: diff_rank_seed=True, rank '
                f'{runner.rank} keeps its fresh seed (only rank 0 states '
                'are saved)', logger='current')
            return
        set_rng_state(state)
        print_log(f'RNGStateHook: restored the RNG states of iteration '
                  f'{runner.iter}', logger='current')

    def before_train_epoch(self, runner) -> None:
        if type(runner.train_loop).__name__ not in _ITER_LOOPS:
            self._restore(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Any = None) -> None:
        if self._pending is not None:
            self._restore(runner)


def _strip_prefix(state: Mapping[str, Any], prefix: str = 'module.'
                  ) -> 'OrderedDict[str, Any]':
    if state and all(k.startswith(prefix) for k in state):
        return OrderedDict((k[len(prefix):], v) for k, v in state.items())
    return OrderedDict(state)


def _fmt(keys: List[str], limit: int = 8) -> str:
    text = ', '.join(keys[:limit])
    return text + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def compare_state_dicts(model_state: Mapping[str, Any],
                        ckpt_state: Mapping[str, Any]
                        ) -> Dict[str, List[str]]:
    """Missing, unexpected and shape-mismatched keys (checkpoint vs model).

    Returns:
        dict: ``missing`` (in the model, not in the checkpoint),
        ``unexpected`` (the other way) and ``shape`` (``'key: ckpt [..] vs
        model [..]'`` lines).
    """
    missing = [k for k in model_state if k not in ckpt_state]
    unexpected = [k for k in ckpt_state if k not in model_state]
    shape = []
    for key, value in ckpt_state.items():
        if key in model_state and hasattr(value, 'shape') and tuple(
                value.shape) != tuple(model_state[key].shape):
            shape.append(f'{key}: checkpoint {list(value.shape)} vs model '
                         f'{list(model_state[key].shape)}')
    return dict(missing=missing, unexpected=unexpected, shape=shape)


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model it is loaded into."""


#: Modes of :func:`check_checkpoint_matches` and :class:`CheckpointMatchHook`.
CHECK_MODES = ('resume', 'test', 'load')


def check_checkpoint_matches(model: torch.nn.Module,
                             checkpoint: Any,
                             mode: str = 'test',
                             source: Optional[str] = None
                             ) -> 'OrderedDict[str, Any]':
    """Refuse a checkpoint that does not fit ``model``, key for key.

    The tensors are taken from ``checkpoint['state_dict']`` (mmengine) or
    from ``checkpoint`` itself (a flat state dict); a ``module.`` prefix on
    every key (DataParallel) is removed. A wrapped ``model`` (``.module``)
    is unwrapped.

    Args:
        model (torch.nn.Module): The model the checkpoint is meant for.
        checkpoint: The loaded checkpoint (what ``torch.load`` returned).
        mode (str): ``'resume'``: any missing, unexpected or
            shape-mismatched key is an error. ``'test'``: missing and
            shape-mismatched keys are errors, unexpected keys only a
            warning. ``'load'`` (``load_from``, a fine-tune: a new head
            or other changed layers are expected): an error only when
            the checkpoint gives less than half of the model's tensors
            at their shapes (an official file that was not converted,
            a bare backbone, 2-D weights for a video model); mmengine
            logs the differences. Defaults to ``'test'``.
        source (str, optional): Name of the checkpoint for the messages.

    Returns:
        OrderedDict: The checkpoint's tensors the model uses (prefix
        removed), ready for ``model.load_state_dict(state, strict=True)``.

    Raises:
        ValueError: ``mode`` is not one of :data:`CHECK_MODES`.
        CheckpointMismatchError: ``checkpoint`` is not a dict, or does not
            match the model; the message names the keys and the fix.
    """
    if mode not in CHECK_MODES:
        raise ValueError(f'mode={mode!r} is not supported; choose one of '
                         f'{list(CHECK_MODES)}')
    model = getattr(model, 'module', model)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f'checkpoint {source or ""} is a '
            f'{type(checkpoint).__name__}, not a dict with a state_dict')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointMismatchError(
            f"checkpoint {source or ''} has a 'state_dict' that is a "
            f'{type(state).__name__}, not a dict of tensors')
    state = _strip_prefix(
        {k: v for k, v in state.items() if hasattr(v, 'shape')})
    model_state = model.state_dict()
    diff = compare_state_dicts(model_state, state)
    name = f' {source}' if source else ''
    errors = []
    if mode == 'load':
        matched = len(model_state) - len(diff['missing']) - len(diff['shape'])
        if 2 * matched < len(model_state):
            raise CheckpointMismatchError(
                f'load_from{name}: the checkpoint gives {matched} of the '
                f'{len(model_state)} tensors of the model built from the '
                f'config ({type(model).__name__}) at their shapes, so '
                'fine-tuning would start from a mostly random model. '
                'Missing: ' + _fmt(diff['missing']) +
                ('; shape mismatch: ' + _fmt(diff['shape'], 4)
                 if diff['shape'] else '') + '. Fix: convert an official '
                'MorphMLP file first (tools/convert/morphmlp_official_to_'
                'mm.py); start a backbone from image or backbone-only '
                "weights with model.backbone.init_cfg=dict(type='Pretrained',"
                ' checkpoint=...), which also inflates image weights for '
                'video; or use a checkpoint of this model')
    if diff['shape'] and mode != 'load':
        errors.append(f'shape mismatch: {_fmt(diff["shape"], 4)}')
    if diff['missing'] and mode != 'load':
        errors.append(f'missing in the checkpoint: '
                      f'{_fmt(diff["missing"])}')
    if diff['unexpected'] and mode == 'resume':
        errors.append(f'not in the model: {_fmt(diff["unexpected"])}')
    if errors:
        fix = ('resume with the config the checkpoint was trained with '
               "(it is stored in checkpoint['meta']['config']), or start "
               'a new run with load_from=<checkpoint> to fine-tune'
               if mode == 'resume' else
               'test with the config the checkpoint was trained with, '
               'or convert the checkpoint first (official MorphMLP '
               'files: tools/convert/morphmlp_official_to_mm.py)')
        raise CheckpointMismatchError(
            f'checkpoint{name} does not match the model built from the '
            f'config ({type(model).__name__}): ' + '; '.join(errors) +
            f'. Fix: {fix}')
    if diff['unexpected']:
        print_log(
            f'checkpoint{name} has keys the model does not use: '
            f'{_fmt(diff["unexpected"])}', logger='current', level=30)
    return OrderedDict((k, v) for k, v in state.items() if k in model_state)


def load_matching_checkpoint(model: torch.nn.Module,
                             filename: str) -> Mapping[str, Any]:
    """Read ``filename`` and load it into ``model`` if it fits key for key.

    Read with the package's safe loader
    (:func:`morphmlp_mm.checkpoint.load_checkpoint_file`), compared with
    the model by :func:`check_checkpoint_matches` (mode ``'test'``: missing
    or shape-mismatched keys are refused, unexpected keys only give a
    warning) before any weight is copied, then loaded strictly: what the
    demos under ``tools/demo`` do instead of their hosts' non-strict loads.

    Returns:
        Mapping: The checkpoint as read (for its ``meta``).

    Raises:
        CheckpointMismatchError: the checkpoint does not fit the model.
        RuntimeError, OSError, pickle.UnpicklingError: the file is missing,
            unreadable or refused by the safe loader.
    """
    from ..checkpoint import load_checkpoint_file
    checkpoint = load_checkpoint_file(filename, map_location='cpu')
    state = check_checkpoint_matches(model, checkpoint, 'test',
                                     source=filename)
    getattr(model, 'module', model).load_state_dict(state, strict=True)
    return checkpoint


class CheckpointMatchHook(Hook):
    """Refuse checkpoints that do not match the model (resume / test).

    Runs :func:`check_checkpoint_matches` on the checkpoint mmengine has
    read, before it is loaded into the model.

    Args:
        mode (str): ``'resume'``: any missing, unexpected or shape-mismatched
            key is an error (a resumed run must continue the same model).
            ``'test'``: missing and shape-mismatched keys are errors,
            unexpected keys (e.g. an auxiliary head) only a warning.
            ``'load'`` (``load_from``): an error only when the checkpoint
            gives less than half of the model's tensors (see
            :func:`check_checkpoint_matches`).
        source (str, optional): Name of the checkpoint for the messages.
    """

    priority = 'VERY_HIGH'
    modes = CHECK_MODES

    def __init__(self, mode: str = 'resume',
                 source: Optional[str] = None) -> None:
        if mode not in self.modes:
            raise ValueError(
                f'mode={mode!r} is not supported; choose one of '
                f'{list(self.modes)}')
        self.mode = mode
        self.source = source

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        check_checkpoint_matches(runner.model, checkpoint, self.mode,
                                 self.source)


def rotate_checkpoints_after_save(hook: Any) -> bool:
    """Let a ``CheckpointHook`` delete outdated checkpoints after saving.

    The bookkeeping (``keep_ckpt_ids`` in the hook and in the message hub,
    which the checkpoint stores) is done before the save exactly as
    mmengine does it; only the removal of the files moves after the save,
    so there are ``max_keep_ckpts`` complete checkpoints at every moment
    (one more while saving). Patches the instance only.

    Returns:
        bool: True if ``hook`` is a ``CheckpointHook`` that was changed now.
    """
    from mmengine.dist import is_main_process
    from mmengine.hooks import CheckpointHook
    if not isinstance(hook, CheckpointHook) or getattr(
            hook, '_morphmlp_rotates_after_save', False):
        return False
    save_with_step = hook._save_checkpoint_with_step

    def _save_checkpoint_with_step(runner, step, meta):
        keep = hook.max_keep_ckpts
        if keep <= 0:
            return save_with_step(runner, step, meta)
        ids = list(hook.keep_ckpt_ids)
        outdated = []
        if not ids or ids[-1] != step:
            ids.append(step)
            while len(ids) > keep:
                outdated.append(ids.pop(0))
            hook.keep_ckpt_ids = deque(ids, keep)
            runner.message_hub.update_info('keep_ckpt_ids', ids)
        hook.max_keep_ckpts = -1  # mmengine: no rotation in this call
        try:
            save_with_step(runner, step, meta)
        finally:
            hook.max_keep_ckpts = keep
        if not is_main_process():
            return
        for old in outdated:
            path = hook.file_backend.join_path(
                hook.out_dir, hook.filename_tmpl.format(old))
            if hook.file_backend.isfile(path):
                hook.file_backend.remove(path)
            elif hook.file_backend.isdir(path):  # deepspeed: a folder
                hook.file_backend.rmtree(path)

    hook._save_checkpoint_with_step = _save_checkpoint_with_step
    hook._morphmlp_rotates_after_save = True
    return True


def register_hooks() -> List[str]:
    """Register the hooks in mmengine's root ``HOOKS``; returns their names.

    Idempotent: a name already bound to the same class is left alone.
    """
    from mmengine.registry import HOOKS
    names = []
    for cls in (RNGStateHook, CheckpointMatchHook):
        if HOOKS.module_dict.get(cls.__name__) is not cls:
            HOOKS.register_module(module=cls)
        names.append(cls.__name__)
    return names


register_hooks()

__all__ = [
    'CHECK_MODES', 'CheckpointMatchHook', 'CheckpointMismatchError',
    'RNGStateHook', 'check_checkpoint_matches', 'compare_state_dicts',
    'get_rng_state', 'register_hooks', 'rotate_checkpoints_after_save',
    'set_rng_state'
]
