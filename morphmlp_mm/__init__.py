"""MorphMLP backbones for mmpretrain, mmaction2 and mmsegmentation.

Importing this package first applies the host workarounds in
:mod:`morphmlp_mm.compat` (they must precede any import of ``mmseg.models``
or ``mmaction.models``), then registers ``MorphMLP`` and ``MorphMLP3D`` into
every installed host (:mod:`morphmlp_mm.registry`). Configs load it with
``custom_imports=dict(imports=['morphmlp_mm'], allow_failed_imports=False)``.
"""
try:
    import mmcv as _mmcv  # noqa: F401
except ImportError as _err:
    raise ImportError(
        'morphmlp_mm needs mmcv 2.0 or 2.1 (the full mmcv, or the pure-Python '
        "mmcv-lite): pip install 'mmcv-lite>=2.0.0,<2.2.0', or install this "
        'package with the extra mmcv-lite (pip install -e ".[cls,mmcv-lite]"; '
        '".[all]" includes it)') from _err

from .compat import apply_all as _apply_compat  # noqa: E402

_apply_compat()

from .models import MorphMLP, MorphMLP3D  # noqa: E402
from .registry import register_all  # noqa: E402
from .version import __version__  # noqa: E402

REGISTERED = register_all()

__all__ = ['MorphMLP', 'MorphMLP3D', 'REGISTERED', '__version__']
