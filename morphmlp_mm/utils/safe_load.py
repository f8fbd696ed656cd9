"""Checkpoint loading that stays safe under torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7
calls ``torch.load`` without ``weights_only`` and its own checkpoints hold
non-tensor metadata (``HistoryBuffer`` in the message hub, numpy scalars in
``meta``), so loading them fails (open-mmlab/mmengine#1655).

We never switch safety off wholesale. :func:`safe_torch_load` first tries the
strict weights-only unpickler. If the file holds metadata that it rejects, the
file is read again with a restricted unpickler that resolves only the globals
on :data:`ALLOWED_GLOBALS`; anything else (``os.system``, arbitrary classes)
raises :class:`pickle.UnpicklingError` naming the global. ``getattr`` is
allowed only to look up public attributes of ``HistoryBuffer`` (that is how
it pickles its statistics methods).
"""
import inspect
import os.path as osp
import pickle
import types
from typing import Any, Optional

import torch

#: (module, name) pairs the restricted unpickler resolves, beyond what the
#: strict torch weights-only unpickler already accepts.
ALLOWED_GLOBALS = {
    ('collections', 'OrderedDict'),
    ('collections', 'defaultdict'),
    ('collections', 'Counter'),  # MultiStepLR milestones
    ('_codecs', 'encode'),
    ('builtins', 'set'),
    ('builtins', 'frozenset'),
    ('builtins', 'slice'),
    ('builtins', 'complex'),
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer'),
    ('mmengine.config.config', 'ConfigDict'),
    ('mmengine.config.config', 'Config'),
}
_NUMPY_DTYPE_MODULE = 'numpy.dtypes'
_TORCH_PREFIXES = ('torch', 'torch._utils', 'torch.nn.parameter')


class CheckpointRefused(pickle.UnpicklingError):
    """A checkpoint refers to a global outside the allow-list."""


def _restricted_getattr(obj: Any, name: str) -> Any:
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is not HistoryBuffer or name.startswith('_'):
        raise CheckpointRefused(
            f'checkpoint asks for getattr({obj!r}, {name!r}); only public '
            'attributes of mmengine HistoryBuffer are allowed')
    return getattr(obj, name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ('builtins', '__builtin__') and name == 'getattr':
            return _restricted_getattr
        if module == '__builtin__':
            module = 'builtins'
        allowed = (
            (module, name) in ALLOWED_GLOBALS
            or module == _NUMPY_DTYPE_MODULE
            or (module in _TORCH_PREFIXES and
                (name.endswith('Storage') or name.startswith('_rebuild')
                 or name in ('Size', 'device', 'dtype', 'Tensor',
                             'Parameter', 'float32', 'float16',
                             'bfloat16', 'int64'))))
        if not allowed:
            raise CheckpointRefused(
                f'checkpoint refers to {module}.{name}, which is not on the '
                'allow-list of morphmlp_mm.utils.safe_load.ALLOWED_GLOBALS. '
                'If you trust this file, load it with '
                'torch.load(path, weights_only=False).')
        return super().find_class(module, name)


_restricted_pickle = types.ModuleType('morphmlp_mm_restricted_pickle')
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()
_restricted_pickle.__name__ = 'pickle'


def safe_torch_load(filename: str, map_location: Optional[Any] = 'cpu') -> Any:
    """Load a checkpoint without executing arbitrary pickled code.

    Args:
        filename (str): Path of a ``torch.save`` file.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        RuntimeError: the file is corrupt, truncated or not a torch
            checkpoint (the message names the file).
        CheckpointRefused: (a ``pickle.UnpicklingError``) the file refers to
            a global outside the allow-list.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except Exception:
        # Metadata the strict unpickler rejects, or a damaged file: the
        # restricted unpickler below tells them apart.
        pass
    try:
        return torch.load(
            filename,
            map_location=map_location,
            weights_only=False,
            pickle_module=_restricted_pickle)
    except CheckpointRefused:
        raise
    except Exception as err:  # truncated zip, HTML page, wrong format...
        raise RuntimeError(
            f'cannot read checkpoint {filename!r}: {type(err).__name__}: '
            f'{err}. The file is corrupt, truncated or not a torch '
            'checkpoint.') from err


def install_mmengine_loader() -> bool:
    """Replace mmengine's local-file checkpoint loader if it needs it.

    Only acts when torch defaults to weights-only loading and mmengine's
    loader does not pass ``weights_only`` itself (mmengine <= 0.10.7).
    Returns True if the loader was replaced.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    torch_major_minor = tuple(
        int(p) for p in torch.__version__.split('+')[0].split('.')[:2])
    original = CheckpointLoader._schemes.get('')
    if torch_major_minor < (2, 6) or original is None:
        return False
    if getattr(original, '_morphmlp_mm_safe', False):
        return True
    try:
        if 'weights_only' in inspect.getsource(original):
            return False
    except (OSError, TypeError):
        pass

    def load_from_local(filename, map_location):
        return safe_torch_load(filename, map_location=map_location)

    load_from_local._morphmlp_mm_safe = True
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    return True
