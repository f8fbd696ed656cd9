"""Workarounds for bugs in the OpenMMLab hosts, applied on ``import morphmlp_mm``.

Every block below fixes one upstream problem, names it, and only acts when the
problem is actually present: a full mmcv build or an mmaction2 wheel that
ships all its modules pass through untouched. The checkpoint loaders are the
exception: they are always replaced, since mmengine's remote schemes unpickle
without restriction on every version. :func:`apply_all` is idempotent.

What is patched and why (see README "Installation" for the version matrix):

* ``mmcv._ext`` missing (mmcv-lite). mmseg 1.2.x imports ``mmcv.ops`` at module
  level (open-mmlab/mmsegmentation#3729, open-mmlab/mmcv#2059), so
  ``import mmseg.models`` fails without compiled ops. We install a stand-in
  module whose attributes raise ``NotImplementedError`` when a compiled op is
  actually called. None of the MorphMLP paths (Recognizer3D, EncoderDecoder +
  UPerHead/FPN, ImageClassifier) calls one.
* ``mmaction.models.localizers.drn`` missing from the mmaction2 1.2.0 wheel
  (open-mmlab/mmaction2#2714): ``import mmaction.models`` fails. We register a
  stub whose ``DRN`` raises when built.
* torch >= 2.6 defaults ``torch.load(weights_only=True)`` and mmengine 0.10.7
  cannot load its own checkpoints any more (open-mmlab/mmengine#1655, fixed
  upstream after 0.10.7 by #1670). See :mod:`morphmlp_mm.utils.safe_load` for
  the loader we register instead: weights-only with an explicit allow-list of
  the metadata types mmengine writes, never a blanket ``weights_only=False``.
  The same loader replaces mmengine's other schemes, which run pickled code
  on every torch version: ``http(s)://`` (and through it ``torchvision://``,
  ``modelzoo://``, ``mmcls://``, the URLs of ``open-mmlab://``) used
  ``torch.hub.load_state_dict_from_url(weights_only=False)``; URLs are now
  downloaded into torch.hub's cache and safe-loaded, ``s3://`` /
  ``petrel://`` bytes are safe-loaded from memory, ``pavi://`` is refused.
  TorchScript archives are refused everywhere (``torch.load`` would hand
  them to ``torch.jit.load``, which runs their code).

* transformers >= 4.56 no longer re-exports ``apply_chunking_to_forward`` and
  the pruning helpers from ``transformers.modeling_utils``, which mmaction2
  1.2.0's VindLU imports whenever transformers is installed, so
  ``import mmaction.models`` fails (seen with transformers 5.17 on a GPU
  image). :func:`skip_incompatible_mmaction_multimodal` turns mmaction2's
  multi-modal models off instead; they stay registered as placeholders.

* decord 0.6.0 wheels bundle their own old FFmpeg, libvpx and zlib and load
  them into the process: imported before PyAV, PyAV's VP8/VP9 encoders fail
  (``avcodec_open2("libvpx-vp9") returned 22``); imported before OpenCV,
  OpenCV's PNG I/O breaks. :func:`import_av_and_cv2_before_decord` imports
  ``av`` and ``cv2`` first, while decord is not loaded yet.

Beyond host bugs, :func:`make_local_writes_atomic` makes mmengine's local
file writes atomic, so that no checkpoint is ever left half-written.
"""
import importlib.machinery
import importlib.util
import os
import sys
import types

_APPLIED = {}


def _module_missing(name: str) -> bool:
    """True if ``name`` cannot be imported (and is not already stubbed)."""
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def shim_mmcv_ext() -> bool:
    """Stand in for ``mmcv._ext`` when mmcv-lite is installed.

    Upstream: open-mmlab/mmsegmentation#3729 (mmseg imports ``mmcv.ops`` at
    module level). Returns True if the stub was installed.
    """
    if importlib.util.find_spec('mmcv') is None or not _module_missing(
            'mmcv._ext'):
        return False

    class _MissingCompiledOps(types.ModuleType):

        def __getattr__(self, name):
            if name.startswith('__'):
                raise AttributeError(name)

            def _missing(*args, **kwargs):
                raise NotImplementedError(
                    f'mmcv._ext.{name} needs the compiled mmcv ops; this '
                    'environment has mmcv-lite. Install a full mmcv build '
                    '(see README "Installation") to use this op.')

            return _missing

    stub = _MissingCompiledOps('mmcv._ext')
    # mmengine.utils.dl_utils.mmcv_full_available() calls
    # pkgutil.find_loader('mmcv._ext'), which needs a __spec__.
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)
    sys.modules['mmcv._ext'] = stub
    return True


def shim_mmaction_drn() -> bool:
    """Stub ``mmaction.models.localizers.drn`` if the wheel lacks it.

    Upstream: open-mmlab/mmaction2#2714. Returns True if the stub was
    installed.
    """
    spec = importlib.util.find_spec('mmaction')
    if spec is None or spec.origin is None:
        return False
    pkg_dir = os.path.dirname(spec.origin)
    if os.path.isdir(os.path.join(pkg_dir, 'models', 'localizers', 'drn')):
        return False
    if 'mmaction.models.localizers.drn.drn' in sys.modules:
        return False
    pkg = types.ModuleType('mmaction.models.localizers.drn')
    pkg.__path__ = []
    mod = types.ModuleType('mmaction.models.localizers.drn.drn')

    class DRN:  # noqa: D401 - placeholder with the upstream name

        def __init__(self, *args, **kwargs):
            raise NotImplementedError(
                'DRN is missing from the mmaction2 1.2.0 wheel '
                '(open-mmlab/mmaction2#2714); install mmaction2 from source '
                'to use it.')

    mod.DRN = DRN
    pkg.drn = mod
    sys.modules[pkg.__name__] = pkg
    sys.modules[mod.__name__] = mod
    return True


def patch_checkpoint_loading() -> bool:
    """Make mmengine load checkpoints safely (and under torch >= 2.6).

    Upstream: open-mmlab/mmengine#1655 (fixed by #1670, after 0.10.7) for
    local files; every remote scheme of mmengine <= 0.10.7 unpickles
    without restriction. Returns True once mmengine's loaders are replaced
    (idempotent; see
    :func:`morphmlp_mm.utils.safe_load.install_mmengine_loader`).
    """
    if importlib.util.find_spec('mmengine') is None:
        return False
    from .utils.safe_load import install_mmengine_loader
    return install_mmengine_loader()


def import_av_and_cv2_before_decord() -> bool:
    """Load PyAV's and OpenCV's codec libraries before decord's bundled ones.

    decord 0.6.0 (the last release, 2021) ships old FFmpeg/libvpx/zlib
    copies; whichever library loads them first wins. Returns True if at least
    one of ``av``/``cv2`` was imported here; False when decord is absent or
    already imported (then it is too late to help).
    """
    if 'decord' in sys.modules or importlib.util.find_spec('decord') is None:
        return False
    done = False
    for name in ('cv2', 'av'):
        if name not in sys.modules and importlib.util.find_spec(name):
            importlib.import_module(name)
            done = True
    return done


def skip_incompatible_mmaction_multimodal() -> bool:
    """Keep ``import mmaction.models`` working next to a new transformers.

    mmaction2 1.2.0 imports its VindLU models (``mmaction.models.multimodal``)
    whenever ``transformers>=4.28`` is installed, and they import
    ``apply_chunking_to_forward`` from ``transformers.modeling_utils``, which
    transformers >= 4.56 no longer provides. Read without importing
    transformers: when its ``modeling_utils.py`` lacks the name, mmaction2's
    ``WITH_MULTIMODAL`` flag is cleared (VindLU becomes mmaction2's own
    placeholder, which raises when built) and a warning says why. Returns
    True if the flag was cleared.
    """
    if 'mmaction.models' in sys.modules or _module_missing('mmaction'):
        return False
    try:
        spec = importlib.util.find_spec('transformers')
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    path = os.path.join(list(spec.submodule_search_locations)[0],
                        'modeling_utils.py')
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            if 'apply_chunking_to_forward' in f.read():
                return False
    except OSError:
        return False
    dependency = importlib.import_module('mmaction.utils.dependency')
    if not getattr(dependency, 'WITH_MULTIMODAL', False):
        return False
    dependency.WITH_MULTIMODAL = False
    import warnings
    warnings.warn(
        'morphmlp_mm: the installed transformers has no '
        'transformers.modeling_utils.apply_chunking_to_forward, which '
        "mmaction2 1.2.0's multi-modal models (VindLU) import; they are "
        'turned off so that mmaction.models imports. Install '
        '"transformers<4.56" to use them.', stacklevel=2)
    return True


def make_local_writes_atomic() -> bool:
    """Not an upstream bug: atomic checkpoint writes (see utils.atomic_io)."""
    if importlib.util.find_spec('mmengine') is None:
        return False
    from .utils.atomic_io import install_atomic_local_backend
    return install_atomic_local_backend()


def apply_all() -> dict:
    """Apply every workaround once; returns ``{name: applied}``."""
    if not _APPLIED:
        _APPLIED['codec_import_order'] = import_av_and_cv2_before_decord()
        _APPLIED['mmcv_ext'] = shim_mmcv_ext()
        _APPLIED['mmaction_drn'] = shim_mmaction_drn()
        _APPLIED['mmaction_multimodal'] = \
            skip_incompatible_mmaction_multimodal()
        _APPLIED['checkpoint_loading'] = patch_checkpoint_loading()
        _APPLIED['atomic_local_writes'] = make_local_writes_atomic()
    return dict(_APPLIED)
