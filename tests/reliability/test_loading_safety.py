"""Checkpoint loading under torch >= 2.6 without switching safety off.

What must load: checkpoints written by mmengine's Runner (ours, with the
message hub's ``HistoryBuffer``, numpy metadata, ``MultiStepLR``'s
``Counter`` and the ``RNGStateHook`` states), the hosts' checkpoints of the
mmcv 1.x era (numpy scalars in ``meta``), the converter's output and the
official MorphMLP layouts (flat ImageNet dicts, PySlowFast dicts with
``model_state`` / ``optimizer_state`` / ``cfg``).

What must be refused, through every entry point that reads a checkpoint
(``safe_torch_load``, mmengine's ``CheckpointLoader`` / ``load_checkpoint``
as used by ``Runner`` for ``load_from`` / ``resume`` / ``tools/test.py``,
``load_pretrained`` / ``init_cfg=dict(type='Pretrained')`` and the
converter), for local files, URLs (a local ``http.server``; also through
``torchvision://`` / ``open-mmlab://``) and mmengine file backends: pickles
that call ``os.system``, ``eval``, a ``getattr`` chain or a class outside the
allow-list, and TorchScript archives (whose ``__setstate__`` would run),
without running the payload.

And nothing global is weakened: ``torch.load`` keeps its default,
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is not set, no global is added to
torch's own safe list.
"""
import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import morphmlp_mm  # noqa: F401  (installs the loader)
from morphmlp_mm import MorphMLP, MorphMLP3D
from morphmlp_mm.checkpoint import load_pretrained
from morphmlp_mm.utils import safe_torch_load
from tool_scripts import load_script

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
TINY = dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64],
            chunk_lengths=[2, 4, 4, 8], mlp_ratio=2.)


# --------------------------------------------------------------------------
# payloads
# --------------------------------------------------------------------------
class _System:
    """``os.system(touch <marker>)`` on unpickling."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _Eval:

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').write('x')", ))


class _GetattrChain:
    """``getattr(os, 'system')`` would need ``os`` itself; ask for a
    private attribute of an allowed class instead."""

    def __reduce__(self):
        return (getattr, (collections.OrderedDict, '__init_subclass__'))


class _RebuildWithSystem:
    """An allowed torch rebuild helper smuggling ``os.system`` in as a
    backward hook."""

    def __reduce__(self):
        from torch._utils import _rebuild_parameter_with_state
        return (_rebuild_parameter_with_state,
                (torch.zeros(1), True,
                 collections.OrderedDict({0: os.system}), {}))


PAYLOADS = {
    'os.system': (_System, 'system'),
    'eval': (_Eval, 'eval'),
    'getattr': (lambda marker: _GetattrChain(), 'getattr'),
    'torch rebuild + os.system': (lambda marker: _RebuildWithSystem(),
                                  'system'),
    'unknown class': (lambda marker: __import__('argparse').Namespace(
        lr=0.1), 'argparse.Namespace'),
}


def _evil_checkpoint(tmp_path: Path, kind: str) -> tuple:
    """A valid MorphMLP checkpoint plus one payload; returns (path,
    marker, expected words in the error)."""
    marker = tmp_path / f'pwned_{kind.replace(" ", "_")}'
    make, words = PAYLOADS[kind]
    state = {'backbone.' + k: v for k, v in MorphMLP(TINY).state_dict()
             .items()}
    path = tmp_path / f'evil_{kind.replace(" ", "_")}.pth'
    torch.save({'state_dict': state, 'meta': {'x': make(marker)}}, path)
    return path, marker, words


def _refused(call, marker: Path, words: str) -> str:
    with pytest.raises(Exception) as info:
        call()
    assert not marker.exists(), 'the payload ran'
    text = str(info.value)
    cause = info.value.__cause__ or info.value.__context__
    assert words in text or (cause is not None and words in str(cause)), \
        text
    return text


# --------------------------------------------------------------------------
# nothing global is switched off
# --------------------------------------------------------------------------
def test_torch_defaults_untouched(tmp_path):
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    assert 'TORCH_FORCE_WEIGHTS_ONLY_LOAD' not in os.environ
    assert torch.load is torch.serialization.load
    # torch registers its own types there; the package adds none
    added = []
    for entry in torch.serialization.get_safe_globals():
        obj = entry[0] if isinstance(entry, tuple) else entry
        module = getattr(obj, '__module__', '') or ''
        if not module.startswith('torch') and module not in ('builtins',
                                                             'traceback'):
            added.append(f'{module}.{getattr(obj, "__qualname__", obj)}')
    assert not added, added
    path, marker, _ = _evil_checkpoint(tmp_path, 'os.system')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # torch >= 2.6 default: weights only
    assert not marker.exists()


# --------------------------------------------------------------------------
# refusal, per entry point and payload
# --------------------------------------------------------------------------
@pytest.mark.parametrize('kind', sorted(PAYLOADS))
def test_safe_torch_load_refuses(tmp_path, kind):
    path, marker, words = _evil_checkpoint(tmp_path, kind)
    text = _refused(lambda: safe_torch_load(str(path)), marker, words)
    assert 'allow-list' in text or 'only public attributes' in text


@pytest.mark.parametrize('kind', ['os.system', 'torch rebuild + os.system'])
def test_mmengine_paths_refuse(tmp_path, kind):
    """Runner ``load_from`` / ``resume`` and ``tools/test.py`` read through
    ``CheckpointLoader``; ``load_checkpoint`` is the public helper."""
    from mmengine.runner import load_checkpoint
    from mmengine.runner.checkpoint import CheckpointLoader
    path, marker, words = _evil_checkpoint(tmp_path, kind)
    _refused(lambda: CheckpointLoader.load_checkpoint(str(path)), marker,
             words)
    _refused(lambda: load_checkpoint(nn.Linear(1, 1), str(path)), marker,
             words)


@pytest.mark.parametrize('kind', ['os.system', 'eval'])
def test_pretrained_init_refuses(tmp_path, kind):
    path, marker, words = _evil_checkpoint(tmp_path, kind)
    _refused(lambda: load_pretrained(MorphMLP(TINY), str(path)), marker,
             words)
    model = MorphMLP3D(TINY, num_frames=4, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    _refused(model.init_weights, marker, words)


def _converter():
    """tools/convert/morphmlp_official_to_mm.py, imported by path."""
    return load_script('tools/convert/morphmlp_official_to_mm.py')


def test_converter_refuses(tmp_path, capsys):
    path, marker, _ = _evil_checkpoint(tmp_path, 'os.system')
    assert _converter().main([str(path), str(tmp_path / 'out.pth')]) == 2
    err = capsys.readouterr().err
    assert 'refusing' in err and 'system' in err
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()


# --------------------------------------------------------------------------
# what must load
# --------------------------------------------------------------------------
def _runner_checkpoint(tmp_path: Path) -> Path:
    """Train a toy model for one epoch with mmengine's Runner."""
    from mmengine.model import BaseModel
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from morphmlp_mm.engine.hooks import RNGStateHook

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.backbone = MorphMLP(TINY)
            self.fc = nn.Linear(64, 2)

        def forward(self, inputs, labels, mode='tensor'):
            logits = self.fc(self.backbone(torch.stack(inputs))[0])
            if mode == 'loss':
                return dict(loss=nn.functional.cross_entropy(
                    logits, torch.stack(labels)))
            return logits

    data = [dict(inputs=torch.rand(3, 32, 32), labels=torch.tensor(i % 2))
            for i in range(4)]
    scopes = dict(DefaultScope._instance_dict)
    try:
        runner = Runner(
            model=Toy(), work_dir=str(tmp_path / 'toy'),
            train_dataloader=dict(
                dataset=data, batch_size=2, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True)),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01,
                                              momentum=0.9)),
            param_scheduler=dict(type='MultiStepLR', milestones=[1]),
            default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                               interval=1)),
            custom_hooks=[RNGStateHook()],
            randomness=dict(seed=1),
            experiment_name=f'loading_safety_{os.getpid()}')
        runner.train()
    finally:
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(scopes)
    return tmp_path / 'toy' / 'epoch_1.pth'


def test_runner_checkpoints_load_safely(tmp_path):
    path = _runner_checkpoint(tmp_path)
    # the strict torch loader alone cannot read mmengine's metadata ...
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)
    # ... the package's loaders can, with everything mmengine resumes from
    from mmengine.runner.checkpoint import CheckpointLoader
    for ckpt in (safe_torch_load(str(path)),
                 CheckpointLoader.load_checkpoint(str(path))):
        assert {'meta', 'state_dict', 'message_hub', 'optimizer',
                'param_schedulers', 'rng_state'} <= set(ckpt)
        assert isinstance(ckpt['param_schedulers'][0]['milestones'],
                          collections.Counter)
        assert ckpt['message_hub']['log_scalars']['train/loss'].data[0].size
        assert ckpt['rng_state']['torch'].dtype == torch.uint8
    # the RNG states alone are weights-only data
    state = safe_torch_load(str(path))['rng_state']
    torch.save(state, tmp_path / 'rng.pth')
    torch.load(tmp_path / 'rng.pth', weights_only=True)
    # and load_pretrained takes the backbone out of it
    report = load_pretrained(MorphMLP(TINY), str(path), logger=None)
    assert report.loaded and not report.missing
    # a scalar logged by no iteration yet: an empty HistoryBuffer pickles
    # its empty numpy array with builtins.bytes
    from mmengine.logging.history_buffer import HistoryBuffer
    ckpt = safe_torch_load(str(path))
    ckpt['message_hub']['log_scalars']['val/acc'] = HistoryBuffer()
    torch.save(ckpt, tmp_path / 'empty_buffer.pth')
    again = safe_torch_load(str(tmp_path / 'empty_buffer.pth'))
    assert again['message_hub']['log_scalars']['val/acc'].data[0].size == 0


def test_host_checkpoints_of_the_mmcv1_era_load(tmp_path):
    """mmcls / mmaction / mmseg 0.x checkpoints: numpy scalars and arrays,
    tuples of class names, the config as text."""
    model = MorphMLP(TINY)
    path = tmp_path / 'mmcv1_era.pth'
    torch.save(dict(
        meta=dict(mmcv_version='1.7.1', time='Mon Jan  2 2023',
                  CLASSES=('a', 'b'), PALETTE=np.array([[1, 2, 3]]),
                  config='model = dict(type="ImageClassifier")', epoch=3,
                  iter=300, hook_msgs=dict(best_score=np.float64(0.75),
                                           last_ckpt='epoch_3.pth')),
        state_dict=collections.OrderedDict(
            ('backbone.' + k, v) for k, v in model.state_dict().items()),
        optimizer=torch.optim.SGD(model.parameters(), lr=.1).state_dict()),
        path)
    ckpt = safe_torch_load(str(path))
    assert ckpt['meta']['hook_msgs']['best_score'] == 0.75
    assert ckpt['meta']['PALETTE'].tolist() == [[1, 2, 3]]
    report = load_pretrained(MorphMLP(TINY), str(path), logger=None)
    assert not report.missing


@pytest.mark.parametrize('layout', ['imagenet_flat', 'pyslowfast'])
def test_official_layouts_load_weights_only(tmp_path, layout):
    """Official files hold nothing but weights: the strict loader reads
    them directly; the converter's output is weights-only too."""
    model = MorphMLP3D(TINY, num_frames=4)
    state = collections.OrderedDict(
        ('norm.' + k[len('norm3.'):] if k.startswith('norm3.') else k, v)
        for k, v in model.state_dict().items())
    state['head.weight'] = torch.zeros(5, 64)
    state['head.bias'] = torch.zeros(5)
    if layout == 'pyslowfast':
        obj = dict(epoch=30, model_state=state,
                   optimizer_state=torch.optim.SGD(
                       model.parameters(), lr=.1, momentum=.9).state_dict(),
                   scaler=dict(scale=65536.0, growth_factor=2.0),
                   cfg='DATA:\n  NUM_FRAMES: 4\nMODEL:\n  NUM_CLASSES: 5\n')
    else:
        obj = state
    src = tmp_path / f'{layout}.pth'
    torch.save(obj, src)
    torch.load(src, weights_only=True)
    target = MorphMLP3D(TINY, num_frames=4)
    report = load_pretrained(target, str(src), logger=None)
    assert not report.missing
    for key, value in model.state_dict().items():
        assert torch.equal(value, target.state_dict()[key]), key

    dst = tmp_path / f'{layout}_mm.pth'
    assert _converter().main([
        str(src), str(dst), '--kind', 'video', '--num-frames', '4',
        '--chunk-lengths', '2', '4', '4', '8'
    ]) == 0
    converted = torch.load(dst, weights_only=True)
    assert converted['state_dict']['cls_head.fc_cls.weight'].shape == (5, 64)


# --------------------------------------------------------------------------
# TorchScript archives: torch.load would hand them to torch.jit.load
# --------------------------------------------------------------------------
def _torchscript_archive(tmp_path: Path) -> tuple:
    """A scripted module whose ``__setstate__`` overwrites a marker file
    (``torch.from_file(..., shared=True).fill_``) when it is loaded."""
    marker = tmp_path / 'ts_marker.bin'

    class Writer(nn.Module):

        def __init__(self, path: str):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(2))
            self.path = path

        @torch.jit.export
        def __getstate__(self):
            return (self.weight, self.path, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
            self.weight = state[0]
            self.path = state[1]
            self.training = state[2]
            mapped = torch.from_file(self.path, shared=True, size=4,
                                     dtype=torch.uint8)
            mapped.fill_(65)
            self.weight = self.weight + mapped[:2].float() * 0.

        def forward(self, x):
            return x + self.weight

    marker.write_bytes(b'\0' * 4)
    scripted = torch.jit.script(Writer(str(marker)))
    path = tmp_path / 'scripted.pth'
    scripted.save(str(path))
    marker.write_bytes(b'\0' * 4)
    return path, marker


def test_torchscript_archives_are_refused_everywhere(tmp_path, capsys):
    from mmengine.runner import load_checkpoint
    from mmengine.runner.checkpoint import CheckpointLoader

    from morphmlp_mm.utils.safe_load import (TorchScriptRefused,
                                             safe_torch_load_bytes)
    path, marker = _torchscript_archive(tmp_path)
    calls = {
        'safe_torch_load': lambda: safe_torch_load(str(path)),
        'bytes': lambda: safe_torch_load_bytes(path.read_bytes(), 'x.pth'),
        'load_pretrained': lambda: load_pretrained(MorphMLP(TINY),
                                                   str(path)),
        'CheckpointLoader': lambda: CheckpointLoader.load_checkpoint(
            str(path)),
        'load_checkpoint': lambda: load_checkpoint(nn.Linear(1, 1),
                                                   str(path)),
    }
    for name, call in calls.items():
        with pytest.raises(TorchScriptRefused) as info:
            call()
        assert 'TorchScript module' in str(info.value), name
        assert 'not a checkpoint of weights' in str(info.value), name
        assert marker.read_bytes() == b'\0' * 4, f'{name}: the code ran'
    assert str(path) in str(pytest.raises(
        TorchScriptRefused, safe_torch_load, str(path)).value)
    assert _converter().main([str(path), str(tmp_path / 'out.pth')]) == 2
    err = capsys.readouterr().err
    assert 'TorchScript module' in err and str(path) in err
    assert marker.read_bytes() == b'\0' * 4
    # the archive is live: torch.jit.load runs its __setstate__
    torch.jit.load(str(path))
    assert marker.read_bytes() == b'AAAA'


# --------------------------------------------------------------------------
# dtypes in metadata
# --------------------------------------------------------------------------
def test_every_torch_dtype_is_allowed_and_nothing_wider(tmp_path):
    """The restricted unpickler (reached here because of HistoryBuffer)
    resolves every ``torch.<dtype>`` constant, no other torch global."""
    import io

    from mmengine.logging import HistoryBuffer

    from morphmlp_mm.utils.safe_load import (CheckpointRefused,
                                             _RestrictedUnpickler)
    dtypes = sorted({v for v in vars(torch).values()
                     if isinstance(v, torch.dtype)}, key=str)
    assert torch.float64 in dtypes and torch.bool in dtypes
    buffer = HistoryBuffer()
    buffer.update(0.5)
    path = tmp_path / 'dtypes.pth'
    torch.save({'meta': {'dtypes': dtypes, 'loss': buffer}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # the fallback is needed
    assert safe_torch_load(str(path))['meta']['dtypes'] == dtypes
    for name in ('from_file', 'load', 'Generator', 'nn'):
        with pytest.raises(CheckpointRefused, match=f'torch.{name}'):
            _RestrictedUnpickler(io.BytesIO(
                b'\x80\x02ctorch\n' + name.encode() + b'\n.')).load()


# --------------------------------------------------------------------------
# checkpoints by URL (a local http.server) and other schemes
# --------------------------------------------------------------------------
@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    """Serve ``tmp_path / 'www'`` on 127.0.0.1; torch.hub's cache in
    ``tmp_path / 'hub'``. Yields (folder, base URL, list of GET paths)."""
    import functools
    import http.server
    import threading

    www = tmp_path / 'www'
    www.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    try:
        yield www, f'http://127.0.0.1:{server.server_address[1]}', requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_checkpoints_are_safe_loaded(tmp_path, http_dir):
    from mmengine.runner import load_checkpoint
    from mmengine.runner import checkpoint as mm_checkpoint
    www, base, _ = http_dir
    path, marker, words = _evil_checkpoint(tmp_path, 'os.system')
    (www / 'evil.pth').write_bytes(path.read_bytes())
    url = f'{base}/evil.pth'
    calls = [
        lambda: load_pretrained(MorphMLP(TINY), url),
        MorphMLP3D(TINY, num_frames=4, init_cfg=dict(
            type='Pretrained', checkpoint=url)).init_weights,
        lambda: mm_checkpoint.CheckpointLoader.load_checkpoint(url),
        lambda: load_checkpoint(nn.Linear(1, 1), url),
        lambda: mm_checkpoint.load_url(url),
    ]
    for call in calls:
        _refused(call, marker, words)
    # mmengine's schemes that resolve a name to a URL end there too
    _refused(lambda: mm_checkpoint.load_from_http(url), marker, words)
    from unittest import mock
    with mock.patch.object(mm_checkpoint, 'get_torchvision_models',
                           lambda: {'evil': url}), \
            mock.patch.object(mm_checkpoint, 'get_external_models',
                              lambda: {'evil': url}):
        for name in ('torchvision://evil', 'open-mmlab://evil'):
            _refused(lambda: load_checkpoint(nn.Linear(1, 1), name), marker,
                     words)
            _refused(lambda: load_pretrained(MorphMLP(TINY), name), marker,
                     words)
    # a TorchScript archive by URL is refused as well
    script, script_marker = _torchscript_archive(tmp_path)
    (www / 'scripted.pth').write_bytes(script.read_bytes())
    with pytest.raises(pickle.UnpicklingError, match='TorchScript'):
        load_pretrained(MorphMLP(TINY), f'{base}/scripted.pth')
    assert script_marker.read_bytes() == b'\0' * 4


def test_url_checkpoints_load_and_are_cached(tmp_path, http_dir):
    www, base, requests = http_dir
    runner_ckpt = _runner_checkpoint(tmp_path)  # HistoryBuffer, Counter ...
    (www / 'good.pth').write_bytes(runner_ckpt.read_bytes())
    url = f'{base}/good.pth'
    report = load_pretrained(MorphMLP(TINY), url, logger=None)
    assert report.loaded and not report.missing
    cached = tmp_path / 'hub' / 'checkpoints' / 'good.pth'
    assert cached.read_bytes() == runner_ckpt.read_bytes()
    assert requests == ['/good.pth']
    # second use (mmengine's loader too): read from the cache
    from mmengine.runner.checkpoint import CheckpointLoader
    ckpt = CheckpointLoader.load_checkpoint(url)
    assert 'message_hub' in ckpt
    model = MorphMLP(TINY, init_cfg=dict(type='Pretrained', checkpoint=url))
    model.init_weights()
    assert requests == ['/good.pth']
    assert torch.equal(model.norm3.weight,
                       ckpt['state_dict']['backbone.norm3.weight'])
    with pytest.raises(RuntimeError, match='cannot download checkpoint'):
        load_pretrained(MorphMLP(TINY), f'{base}/missing.pth')
    assert not (tmp_path / 'hub' / 'checkpoints' / 'missing.pth').exists()


def test_other_schemes_read_bytes_through_mmengine_fileio(tmp_path):
    """s3:// and friends: bytes from an mmengine file backend, safe-loaded;
    unknown prefixes and pavi:// are refused with a clear error."""
    from mmengine.fileio import BaseStorageBackend, register_backend
    from mmengine.fileio.backends import backends, prefix_to_backends
    from mmengine.runner.checkpoint import CheckpointLoader

    from morphmlp_mm.checkpoint import load_checkpoint_file
    from morphmlp_mm.utils.safe_load import is_safe_loader
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in
                               MorphMLP(TINY).state_dict().items()}}, good)
    evil, marker, words = _evil_checkpoint(tmp_path, 'os.system')
    store = {'memtest://b/good.pth': good.read_bytes(),
             'memtest://b/evil.pth': evil.read_bytes()}

    class MemoryBackend(BaseStorageBackend):

        def get(self, filepath):
            return store[str(filepath)]

        def get_text(self, filepath, encoding='utf-8'):
            return self.get(filepath).decode(encoding)

    register_backend('memtest', MemoryBackend, prefixes='memtest',
                     force=True)
    try:
        ckpt = load_checkpoint_file('memtest://b/good.pth')
        assert 'backbone.norm3.weight' in ckpt['state_dict']
        report = load_pretrained(MorphMLP(TINY), 'memtest://b/good.pth',
                                 logger=None)
        assert not report.missing
        _refused(lambda: load_checkpoint_file('memtest://b/evil.pth'),
                 marker, words)
    finally:
        backends.pop('memtest', None)
        prefix_to_backends.pop('memtest', None)
    with pytest.raises(ValueError, match="prefix 'nosuch'://"):
        load_checkpoint_file('nosuch://b/x.pth')
    for uri in ('s3://bucket/x.pth', 'petrel://bucket/x.pth',
                'http://h/x.pth', 'open-mmlab://x', 'x.pth'):
        assert is_safe_loader(CheckpointLoader._get_checkpoint_loader(uri))
    # installing again (import morphmlp_mm twice) changes nothing
    from morphmlp_mm.utils.safe_load import install_mmengine_loader
    schemes = dict(CheckpointLoader._schemes)
    assert install_mmengine_loader()
    assert dict(CheckpointLoader._schemes) == schemes
    with pytest.raises(ValueError, match='does not support pavi://'):
        CheckpointLoader.load_checkpoint('pavi://model/x.pth')
