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

TorchScript archives are refused before anything is unpickled: given one,
``torch.load(weights_only=False)`` hands the file to ``torch.jit.load``,
which skips any pickle module and runs the archive's compiled code (a
scripted ``__setstate__``). The unsafe-capable read goes through the file
handle that was checked, so the file cannot be swapped in between.

Checkpoints given by URL are downloaded into torch.hub's cache
(``<torch.hub.get_dir()>/checkpoints``, as
``torch.hub.load_state_dict_from_url`` does, so a second use does not
download again) and read with
:func:`safe_torch_load`. :func:`install_mmengine_loader` makes mmengine's
``CheckpointLoader`` schemes (local files, ``http(s)://``, ``torchvision://``,
``open-mmlab://``, ``mmcls://``, ``s3://`` / ``petrel://``) end in the same
loader and refuses ``pavi://``.
"""
import io
import os
import os.path as osp
import pickle
import re
import sys
import types
import zipfile
from typing import IO, Any, Optional
from urllib.parse import urlparse

import torch

#: (module, name) pairs the restricted unpickler resolves, beyond what the
#: strict torch weights-only unpickler already accepts.
ALLOWED_GLOBALS = {
    ('collections', 'OrderedDict'),
    ('collections', 'defaultdict'),
    ('collections', 'Counter'),  # MultiStepLR milestones
    ('_codecs', 'encode'),
    ('builtins', 'bytes'),  # an empty HistoryBuffer's numpy array
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


class TorchScriptRefused(CheckpointRefused):
    """The file is a TorchScript archive (compiled code), not weights."""


def _is_torch_dtype(module: str, name: str) -> bool:
    """True for ``torch.<name>`` naming a ``torch.dtype`` (a plain constant:
    ``torch.float64``, ``torch.bool``, ...); looked up without triggering
    torch's lazy module attributes."""
    return module == 'torch' and isinstance(
        vars(torch).get(name), torch.dtype)


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
            or _is_torch_dtype(module, name)
            or (module in _TORCH_PREFIXES and
                (name.endswith('Storage') or name.startswith('_rebuild')
                 or name in ('Size', 'device', 'dtype', 'Tensor',
                             'Parameter'))))
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


#: First bytes of a zip archive; ``torch.load`` reads only such files as
#: zip checkpoints (and only those can be TorchScript archives).
_ZIP_MAGIC = b'PK\x03\x04'
#: Members that only TorchScript archives hold (``torch.jit.save``): torch
#: itself dispatches to ``torch.jit.load`` on ``constants.pkl``.
_TORCHSCRIPT_FILE = 'constants.pkl'
_TORCHSCRIPT_FOLDER = 'code/'
_HASH_RE = re.compile(r'-([a-f0-9]+)\.')


def _torchscript_members(f: IO[bytes]) -> list:
    """TorchScript members of the zip archive open as ``f`` (empty if none).

    Read with torch's own reader (the rule ``torch.load`` applies) and with
    :mod:`zipfile`; ``f`` is left where it was.
    """
    start = f.tell()
    found = set()
    try:
        if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            return []
        f.seek(start)
        try:
            from torch.serialization import _open_zipfile_reader
            with _open_zipfile_reader(f) as reader:
                found.update(r for r in reader.get_all_records()
                             if r == _TORCHSCRIPT_FILE
                             or r.startswith(_TORCHSCRIPT_FOLDER))
        except Exception:  # private API gone, or torch cannot read it
            pass
        f.seek(start)
        try:
            with zipfile.ZipFile(f) as archive:
                for name in archive.namelist():
                    inner = name.split('/', 1)[-1]
                    if _TORCHSCRIPT_FILE in (name, inner) or \
                            inner.startswith(_TORCHSCRIPT_FOLDER):
                        found.add(inner)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            pass
    finally:
        f.seek(start)
    return sorted(found)


def _load_checked(f: IO[bytes], name: str, map_location: Optional[Any],
                  path: Optional[str] = None) -> Any:
    """Refuse TorchScript, then the strict loader, then the allow-list.

    The allow-list read (``weights_only=False`` with a restricted pickle
    module) reads the handle that was checked.
    """
    start = f.tell()
    members = _torchscript_members(f)
    if members:
        shown = ', '.join(members[:3]) + (', ...' if len(members) > 3 else '')
        raise TorchScriptRefused(
            f'refusing {name!r}: it is a TorchScript module (a zip archive '
            f'with compiled code: {shown}), not a checkpoint of weights; '
            'loading it would run its code. If you trust it, take its '
            'weights with torch.jit.load(path).state_dict(), save them with '
            'torch.save(state_dict, new_path) and pass new_path.')
    try:
        return torch.load(path if path is not None else f,
                          map_location=map_location, weights_only=True)
    except Exception:
        # Metadata the strict unpickler rejects, or a damaged file: the
        # restricted unpickler below tells them apart.
        pass
    f.seek(start)
    try:
        return torch.load(
            f,
            map_location=map_location,
            weights_only=False,
            pickle_module=_restricted_pickle)
    except CheckpointRefused:
        raise
    except Exception as err:  # truncated zip, HTML page, wrong format...
        raise RuntimeError(
            f'cannot read checkpoint {name!r}: {type(err).__name__}: '
            f'{err}. The file is corrupt, truncated or not a torch '
            'checkpoint.') from err


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
            a global outside the allow-list, or is a TorchScript archive
            (:class:`TorchScriptRefused`).
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    with open(filename, 'rb') as f:
        return _load_checked(f, filename, map_location, path=filename)


def safe_torch_load_bytes(data: bytes, name: str = '<bytes>',
                          map_location: Optional[Any] = 'cpu') -> Any:
    """:func:`safe_torch_load` for a checkpoint held in memory.

    Args:
        data (bytes): The content of a ``torch.save`` file.
        name (str): What to call it in messages (its path or URL).
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object.

    Raises:
        RuntimeError, CheckpointRefused: as :func:`safe_torch_load`.
    """
    with io.BytesIO(data) as f:
        return _load_checked(f, name, map_location)


def download_checkpoint(url: str,
                        model_dir: Optional[str] = None,
                        file_name: Optional[str] = None,
                        progress: Optional[bool] = None,
                        check_hash: bool = False) -> str:
    """Download an ``http(s)://`` checkpoint into torch.hub's cache.

    The cache is the one ``torch.hub.load_state_dict_from_url`` uses
    (``<torch.hub.get_dir()>/checkpoints``, named after the last part of the
    URL's path), so a file already there is not downloaded again.

    Args:
        url (str): ``http://`` or ``https://`` URL of the file.
        model_dir (str, optional): Cache folder instead of torch.hub's.
        file_name (str, optional): Cached file name instead of the URL's.
        progress (bool, optional): Show a progress bar; defaults to whether
            stderr is a terminal.
        check_hash (bool): Check the SHA256 prefix in a file name such as
            ``name-<sha256 prefix>.pth``, as torch.hub does.

    Returns:
        str: The path of the cached file.

    Raises:
        ValueError: ``url`` is not http(s) or names no file.
        RuntimeError: the download failed (the message names the URL).
    """
    parts = urlparse(str(url))
    if parts.scheme not in ('http', 'https'):
        raise ValueError(f'url={url!r} is not an http:// or https:// URL')
    name = file_name or osp.basename(parts.path)
    if not name:
        raise ValueError(
            f'url={url!r} names no file (its path ends with "/"); pass the '
            'URL of the checkpoint file itself')
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, name)
    if osp.isfile(cached):
        return cached
    if progress is None:
        progress = sys.stderr.isatty()
    match = _HASH_RE.search(name) if check_hash else None
    from mmengine.logging import print_log
    print_log(f'Downloading checkpoint {url} to {cached}', logger='current')
    try:
        torch.hub.download_url_to_file(
            url, cached, match.group(1) if match else None,
            progress=progress)
    except Exception as err:
        raise RuntimeError(
            f'cannot download checkpoint {url!r} to {cached!r}: '
            f'{type(err).__name__}: {err}. Check the URL and the network, or '
            'download the file yourself and pass its local path.') from err
    return cached


def safe_load_url(url: str,
                  map_location: Optional[Any] = 'cpu',
                  model_dir: Optional[str] = None,
                  progress: Optional[bool] = None,
                  file_name: Optional[str] = None,
                  check_hash: bool = False) -> Any:
    """Download (or reuse the cached copy of) a checkpoint and safe-load it.

    In a distributed run, local rank 0 downloads first and the other ranks
    read its cached file after a barrier (as mmengine's http loader does).

    Args:
        url (str): ``http://`` or ``https://`` URL of the checkpoint.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.
        model_dir, progress, file_name, check_hash: As
            :func:`download_checkpoint`.

    Returns:
        The unpickled object.
    """
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    kwargs = dict(model_dir=model_dir, file_name=file_name,
                  progress=progress, check_hash=check_hash)
    if rank == 0:
        cached = download_checkpoint(url, **kwargs)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = download_checkpoint(url, **kwargs)
    return safe_torch_load(cached, map_location=map_location)


def safe_load_remote(filename: str,
                     map_location: Optional[Any] = 'cpu',
                     backend_args: Optional[dict] = None) -> Any:
    """Read a checkpoint through an mmengine file backend and safe-load it.

    For ``s3://``, ``petrel://`` and any other prefix an
    :mod:`mmengine.fileio` backend serves: the bytes are read with
    ``mmengine.fileio.get`` and loaded from memory by the same loader as
    local files.

    Args:
        filename (str): URI of the checkpoint.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.
        backend_args (dict, optional): Passed to ``mmengine.fileio.get``.

    Returns:
        The unpickled object.

    Raises:
        ValueError: no mmengine file backend serves the prefix.
        FileNotFoundError: the backend says the file does not exist.
        RuntimeError: the backend failed, or the bytes are no checkpoint.
    """
    from mmengine import fileio
    try:
        data = fileio.get(filename, backend_args=backend_args)
    except KeyError as err:
        prefix = str(filename).split('://', 1)[0]
        raise ValueError(
            f'cannot read checkpoint {filename!r}: no mmengine file backend '
            f'serves the prefix {prefix!r}:// (known: '
            f'{sorted(p for p in fileio.backends.prefix_to_backends if p)}'
            '). Pass a local path or an http(s):// URL, or register a '
            'backend with mmengine.fileio.register_backend.') from err
    except FileNotFoundError:
        raise
    except Exception as err:
        raise RuntimeError(
            f'cannot read checkpoint {filename!r}: {type(err).__name__}: '
            f'{err}') from err
    return safe_torch_load_bytes(data, str(filename), map_location)


# --------------------------------------------------------------------------
# mmengine CheckpointLoader schemes (registered by install_mmengine_loader;
# the names follow mmengine's, whose log prints ``__name__[10:]``)
# --------------------------------------------------------------------------
def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine scheme ``''``: a local file, :func:`safe_torch_load`."""
    return safe_torch_load(filename, map_location=map_location)


def load_from_http(filename: str,
                   map_location: Optional[Any] = None,
                   model_dir: Optional[str] = None,
                   progress: Optional[bool] = None) -> Any:
    """mmengine schemes ``http://`` / ``https://``: :func:`safe_load_url`.

    ``torchvision://``, ``modelzoo://``, ``mmcls://`` and the URLs of
    ``open-mmlab://`` end here too.
    """
    return safe_load_url(filename, map_location=map_location,
                         model_dir=model_dir, progress=progress)


def load_from_ceph(filename: str,
                   map_location: Optional[Any] = None,
                   backend: str = 'petrel') -> Any:
    """mmengine schemes ``s3://`` / ``petrel://``: :func:`safe_load_remote`."""
    return safe_load_remote(filename, map_location=map_location,
                            backend_args={'backend': backend})


def load_from_openmmlab(filename: str,
                        map_location: Optional[Any] = None) -> Any:
    """mmengine schemes ``open-mmlab://`` / ``openmmlab://``.

    The name is looked up in mmengine's model-zoo tables; a URL is read by
    :func:`safe_load_url`, a path (relative to the mmengine home) by
    :func:`safe_torch_load`.
    """
    from mmengine.runner import checkpoint as mm_checkpoint
    scheme, name = str(filename).split('://', 1)
    name = mm_checkpoint.get_deprecated_model_names().get(name, name)
    urls = mm_checkpoint.get_external_models()
    if name not in urls:
        raise ValueError(
            f'{filename!r}: {name!r} is not a model of {scheme}://; known '
            f'names include {sorted(urls)[:8]}')
    target = urls[name]
    if target.startswith(('http://', 'https://')):
        return safe_load_url(target, map_location=map_location)
    return safe_torch_load(
        osp.join(mm_checkpoint._get_mmengine_home(), target),
        map_location=map_location)


def load_from_pavi(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine scheme ``pavi://``: refused (not read safely here)."""
    raise ValueError(
        f'cannot load {filename!r}: morphmlp_mm reads checkpoints only with '
        'its safe loader, which does not support pavi://. Download the file '
        'from pavi and pass its local path.')


def _load_url(url: str,
              model_dir: Optional[str] = None,
              map_location: Optional[Any] = None,
              progress: Optional[bool] = None,
              check_hash: bool = False,
              file_name: Optional[str] = None,
              **kwargs: Any) -> Any:
    """Stands in for ``torch.hub.load_state_dict_from_url`` inside
    ``mmengine.runner.checkpoint`` (which calls it with
    ``weights_only=False``); ``weights_only`` and other extras are ignored:
    the file is always read by :func:`safe_torch_load`."""
    return safe_load_url(url, map_location=map_location, model_dir=model_dir,
                         progress=progress, file_name=file_name,
                         check_hash=check_hash)


_MMENGINE_SCHEMES = (
    (('', ), load_from_local),
    (('http://', 'https://'), load_from_http),
    ((r'(\S+\:)?s3://', r'(\S+\:)?petrel://'), load_from_ceph),
    (('open-mmlab://', 'openmmlab://'), load_from_openmmlab),
    (('pavi://', ), load_from_pavi),
)
for _, _loader in _MMENGINE_SCHEMES:
    _loader._morphmlp_mm_safe = True
_load_url._morphmlp_mm_safe = True


def is_safe_loader(loader: Any) -> bool:
    """True for the loaders :func:`install_mmengine_loader` registers."""
    return bool(getattr(loader, '_morphmlp_mm_safe', False))


def install_mmengine_loader() -> bool:
    """Make every mmengine checkpoint scheme end in the safe loader.

    mmengine 0.10.7 reads local files with a plain ``torch.load`` (fails on
    its own metadata under torch >= 2.6, runs pickled code below it), URLs
    with ``torch.hub.load_state_dict_from_url(weights_only=False)`` (runs
    pickled code), ``s3://`` / ``pavi://`` / ``open-mmlab://`` paths with a
    plain ``torch.load``. This registers :func:`load_from_local`,
    :func:`load_from_http`, :func:`load_from_ceph`,
    :func:`load_from_openmmlab` and :func:`load_from_pavi` (a refusal) in
    ``CheckpointLoader`` and points ``mmengine.runner.checkpoint``'s
    ``load_url`` and ``load_from_http`` (through which ``torchvision://``,
    ``modelzoo://`` and ``mmcls://`` load) at the safe versions. Idempotent.

    Returns:
        bool: True (the loaders are installed).
    """
    from mmengine.runner import checkpoint as mm_checkpoint
    loader_cls = mm_checkpoint.CheckpointLoader
    for prefixes, loader in _MMENGINE_SCHEMES:
        todo = [p for p in prefixes if loader_cls._schemes.get(p) is not
                loader]
        if todo:
            loader_cls.register_scheme(prefixes=todo, loader=loader,
                                       force=True)
    mm_checkpoint.load_url = _load_url
    mm_checkpoint.load_from_http = load_from_http
    return True


__all__ = [
    'ALLOWED_GLOBALS', 'CheckpointRefused', 'TorchScriptRefused',
    'download_checkpoint', 'install_mmengine_loader', 'is_safe_loader',
    'safe_load_remote', 'safe_load_url', 'safe_torch_load',
    'safe_torch_load_bytes'
]
