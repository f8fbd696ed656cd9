"""Helpers of the command-line tools under ``tools/``."""
import os
import os.path as osp

from mmengine.config import Config


def read_config(path: str) -> Config:
    """``Config.fromfile`` with one-line errors for the tools.

    Raises:
        SystemExit: ``error: config <path>: ...`` when ``path`` does not
            exist, or when the config's own code rejects it with a
            ``ValueError`` (an unknown ``MORPHMLP_DECODER``). A missing file
            that the config itself reads is left to propagate.
    """
    try:
        return Config.fromfile(path)
    except FileNotFoundError as err:
        if osp.isfile(osp.expanduser(path)):
            raise  # the config exists; something it reads does not
        raise SystemExit(
            f'error: config {path}: no such file. Pass the path of a config '
            'file, e.g. configs/recognition/<name>.py (relative paths start '
            f'at {os.getcwd()})') from err
    except ValueError as err:  # the config's own checks (MORPHMLP_DECODER)
        raise SystemExit(f'error: config {path}: {err}') from err
