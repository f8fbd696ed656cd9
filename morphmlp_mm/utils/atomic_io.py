"""Atomic local writes for mmengine (checkpoints, ``last_checkpoint``).

mmengine's ``LocalBackend.put`` / ``put_text`` open the target with ``'wb'``
and write into it, so a process killed while saving (``kill -9``, OOM, node
preemption) leaves a truncated ``epoch_N.pth`` that later fails to load. We
make both write a temporary file in the same folder, flush and fsync it, and
``os.replace`` it over the target: a reader sees the old file or the complete
new one, never a half-written one. Not an upstream bug fix but a reliability
guarantee of this package; installed on ``import morphmlp_mm``.

The file gets the permissions ``open(path, 'wb')`` would give it: an
existing file's mode, else ``0o666`` less the process umask (``mkstemp``
alone creates owner-only files, which teammates on a shared cluster could
not read).
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union


def _process_umask() -> int:
    """The process umask, read without changing it where Linux says it
    (``/proc/self/status``), else by setting and restoring it."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(filepath: str) -> int:
    """Permission bits ``open(filepath, 'wb')`` would leave the file with."""
    try:
        return os.stat(filepath).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_process_umask()


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that it appears complete or not at all."""
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(filepath)}.', suffix='.tmp', dir=folder)
    try:
        os.fchmod(fd, _mode_for(filepath))
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def install_atomic_local_backend() -> bool:
    """Make mmengine's LocalBackend ``put``/``put_text`` atomic.

    Returns True when installed (idempotent).
    """
    from mmengine.fileio.backends.local_backend import LocalBackend
    if getattr(LocalBackend.put, '_morphmlp_mm_atomic', False):
        return True

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)

    put.__doc__ = LocalBackend.put.__doc__
    put_text.__doc__ = LocalBackend.put_text.__doc__
    put._morphmlp_mm_atomic = True
    LocalBackend.put = put
    LocalBackend.put_text = put_text
    return True
