"""Path helpers shared by the tools."""
import os.path as osp


def same_file(a: str, b: str) -> bool:
    """True if paths ``a`` and ``b`` name one existing file (symbolic and
    hard links included); False when either does not exist."""
    try:
        return osp.samefile(a, b)
    except OSError:
        return False
