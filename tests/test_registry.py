"""Registration into the hosts, custom_imports, and the compat layer."""
import os
import pickle
import subprocess
import sys
import textwrap
import types

import pytest
import torch
from mmengine.config import Config

import morphmlp_mm
from morphmlp_mm import MorphMLP, MorphMLP3D, registry

TINY = dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64],
            chunk_lengths=[4, 4, 8, 16])


def test_registered_in_every_host():
    from mmaction.registry import MODELS as ACTION
    from mmpretrain.registry import MODELS as PRETRAIN
    from mmseg.registry import MODELS as SEG
    assert PRETRAIN.get('MorphMLP') is MorphMLP
    assert SEG.get('MorphMLP') is MorphMLP
    assert ACTION.get('MorphMLP3D') is MorphMLP3D
    assert morphmlp_mm.REGISTERED == {
        'mmpretrain': ['MorphMLP'], 'mmseg': ['MorphMLP'],
        'mmaction': ['MorphMLP3D']}


def test_register_all_is_idempotent():
    assert registry.register_all() == morphmlp_mm.REGISTERED


def test_missing_host_is_skipped_and_broken_host_raises(monkeypatch,
                                                        tmp_path):
    monkeypatch.setattr(registry, 'HOST_MODELS', {
        'no_such_host_pkg': ('no_such_host_pkg.registry', (MorphMLP, ))})
    assert registry.register_all() == {}
    pkg = tmp_path / 'broken_host_pkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'registry.py').write_text("raise ImportError('host is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, 'HOST_MODELS', {
        'broken_host_pkg': ('broken_host_pkg.registry', (MorphMLP, ))})
    with pytest.raises(ImportError, match='host is broken'):
        registry.register_all()


def test_name_clash_with_other_class_raises(monkeypatch):
    from mmengine.registry import Registry
    fake = Registry('model')

    @fake.register_module(name='MorphMLP')
    class Other:
        pass

    module = types.SimpleNamespace(MODELS=fake)
    monkeypatch.setitem(sys.modules, 'fake_host_registry', module)
    monkeypatch.setattr(registry.importlib.util, 'find_spec',
                        lambda name: object())
    monkeypatch.setattr(registry, 'HOST_MODELS', {
        'fake_host': ('fake_host_registry', (MorphMLP, ))})
    with pytest.raises(KeyError, match='MorphMLP is already registered'):
        registry.register_all()


def test_build_from_config_dicts_in_each_host():
    from mmaction.registry import MODELS as ACTION
    from mmpretrain.registry import MODELS as PRETRAIN
    from mmseg.registry import MODELS as SEG
    from mmengine.registry import DefaultScope
    scope = DefaultScope.overwrite_default_scope  # as each host's Runner
    with scope('mmpretrain'):
        img = PRETRAIN.build(dict(type='MorphMLP', arch=TINY))
    assert img(torch.rand(1, 3, 32, 32))[0].shape == (1, 64)
    with scope('mmseg'):
        seg = SEG.build(dict(type='MorphMLP', arch=TINY, out_type='featmap',
                             out_indices=(0, 1, 2, 3)))
    assert [o.shape[1] for o in seg(torch.rand(1, 3, 32, 32))] == [8, 16,
                                                                   32, 64]
    with scope('mmaction'):
        vid = ACTION.build(dict(type='MorphMLP3D', arch=TINY, num_frames=4))
    assert vid(torch.rand(1, 3, 4, 32, 32)).shape == (1, 64, 2, 1, 1)


def test_whole_models_in_each_host():
    """ImageClassifier, Recognizer3D and EncoderDecoder with our backbones."""
    from mmaction.registry import MODELS as ACTION
    from mmaction.structures import ActionDataSample
    from mmpretrain.registry import MODELS as PRETRAIN
    from mmpretrain.structures import DataSample
    from mmseg.registry import MODELS as SEG
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData

    from mmengine.registry import DefaultScope
    scope = DefaultScope.overwrite_default_scope

    with scope('mmpretrain'):
        cls = PRETRAIN.build(dict(
        type='ImageClassifier', backbone=dict(type='MorphMLP', arch=TINY),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=64)))
    losses = cls(torch.rand(2, 3, 32, 32),
                 [DataSample().set_gt_label(1), DataSample().set_gt_label(3)],
                 mode='loss')
    assert losses['loss'].item() > 0

    with scope('mmaction'):
        rec = ACTION.build(dict(
        type='Recognizer3D',
        backbone=dict(type='MorphMLP3D', arch=TINY, num_frames=4),
        cls_head=dict(type='I3DHead', num_classes=5, in_channels=64,
                      dropout_ratio=0.),
        data_preprocessor=dict(type='ActionDataPreprocessor',
                               format_shape='NCTHW')))
    sample = ActionDataSample().set_gt_label(2)
    data = rec.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (1, 3, 4, 32, 32),
                                   dtype=torch.uint8)],
             data_samples=[sample]), training=True)
    assert rec(**data, mode='loss')['loss_cls'].item() > 0

    cfg = Config(dict(model=dict(
        type='EncoderDecoder',
        backbone=dict(type='MorphMLP', arch=TINY, out_type='featmap',
                      out_indices=(0, 1, 2, 3)),
        decode_head=dict(type='UPerHead', in_channels=[8, 16, 32, 64],
                         in_index=[0, 1, 2, 3], channels=16,
                         pool_scales=(1, 2), num_classes=4,
                         norm_cfg=dict(type='BN'), align_corners=False),
        train_cfg=dict(), test_cfg=dict(mode='whole'))))
    with scope('mmseg'):
        seg = SEG.build(cfg.model)
    gts = []
    for _ in range(2):  # batch 2: UPerHead's 1x1 pooled branch has BN
        gt = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 4, (1, 40, 56))))
        gt.set_metainfo(dict(img_shape=(40, 56), pad_shape=(40, 56)))
        gts.append(gt)
    losses = seg(torch.rand(2, 3, 40, 56), gts, mode='loss')
    assert losses['decode.loss_ce'].item() > 0


def test_mmpretrain_backbone_inside_mmaction_tsn():
    from mmaction.registry import MODELS as ACTION
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmaction'):
        tsn = ACTION.build(dict(
        type='Recognizer2D',
        backbone=dict(type='mmpretrain.MorphMLP', arch=TINY,
                      out_type='featmap'),
        cls_head=dict(type='TSNHead', num_classes=5, in_channels=64,
                      average_clips='prob'),
        data_preprocessor=dict(type='ActionDataPreprocessor',
                               format_shape='NCHW')))
    assert tsn.backbone_from == 'mmpretrain'
    assert isinstance(tsn.backbone, MorphMLP)
    from mmaction.structures import ActionDataSample
    feats = tsn(torch.rand(2, 3, 3, 32, 32), mode='tensor')
    assert feats.shape == (6, 64, 1, 1)  # 2 videos x 3 segments
    preds = tsn(torch.rand(2, 3, 3, 32, 32),
                [ActionDataSample(), ActionDataSample()], mode='predict')
    assert [p.pred_score.shape for p in preds] == [(5, ), (5, )]


HOST_SNIPPETS = {
    'mmpretrain': ("from mmpretrain.registry import MODELS",
                   "dict(type='MorphMLP', arch='tiny')"),
    'mmseg': ("from mmseg.registry import MODELS",
              "dict(type='MorphMLP', arch='tiny', out_type='featmap')"),
    'mmaction': ("from mmaction.registry import MODELS",
                 "dict(type='MorphMLP3D', arch='small', num_frames=8)"),
}


@pytest.mark.parametrize('host', sorted(HOST_SNIPPETS))
def test_custom_imports_in_a_fresh_process(host, tmp_path):
    """A config with custom_imports is all a fresh process needs."""
    import_line, model = HOST_SNIPPETS[host]
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        "custom_imports = dict(imports=['morphmlp_mm'], "
        "allow_failed_imports=False)\n"
        f"default_scope = '{host}'\nmodel = {model}\n")
    script = textwrap.dedent(f"""
        import sys
        from mmengine.config import Config
        assert 'morphmlp_mm' not in sys.modules
        cfg = Config.fromfile({str(cfg)!r})
        {import_line}
        model = MODELS.build(cfg.model)
        print(type(model).__name__)
    """)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('MorphMLP' if host != 'mmaction' else
                                       'MorphMLP3D')


# ---------------------------------------------------------------- compat
def test_compat_applied_only_where_needed():
    applied = morphmlp_mm.compat.apply_all()
    import importlib.util
    mmcv_dir = os.path.dirname(importlib.util.find_spec('mmcv').origin)
    full_mmcv = any(f.startswith('_ext') for f in os.listdir(mmcv_dir))
    assert applied['mmcv_ext'] is (not full_mmcv)
    mmaction_dir = os.path.dirname(importlib.util.find_spec('mmaction').origin)
    assert applied['mmaction_drn'] is (not os.path.isdir(
        os.path.join(mmaction_dir, 'models', 'localizers', 'drn')))
    # Second application changes nothing.
    assert morphmlp_mm.compat.apply_all() == applied


@pytest.mark.parametrize('has_helper', [False, True])
def test_mmaction_imports_next_to_new_transformers(tmp_path, has_helper):
    """A transformers without ``modeling_utils.apply_chunking_to_forward``
    (>= 4.56): mmaction2's VindLU is turned off and ``mmaction.models``
    imports; with the helper (an older transformers) nothing is touched and
    mmaction2 imports VindLU from it."""
    pkg = tmp_path / 'transformers'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'modeling_utils.py').write_text(
        'def apply_chunking_to_forward(*args):\n    pass\n'
        if has_helper else 'PreTrainedModel = object\n')
    info = tmp_path / 'transformers-5.0.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n')
    script = textwrap.dedent("""
        import warnings
        warnings.simplefilter('always')
        with warnings.catch_warnings(record=True) as caught:
            import morphmlp_mm
        print(morphmlp_mm.compat.apply_all()['mmaction_multimodal'])
        print(any('transformers<4.56' in str(w.message) for w in caught))
        try:
            import mmaction.models
            print('imported')
        except ImportError as err:
            print('ImportError', err)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.split('\n')
    if has_helper:
        # untouched: mmaction2 goes on to import VindLU, whose other names
        # this stand-in lacks
        assert lines[:2] == ['False', 'False']
        assert lines[2].startswith('ImportError'), out.stdout
    else:
        assert lines[:3] == ['True', 'True', 'imported'], out.stdout


def test_mmcv_ext_stub_raises_clearly():
    if not morphmlp_mm.compat.apply_all()['mmcv_ext']:
        pytest.skip('full mmcv installed')
    import mmcv.ops
    with pytest.raises(NotImplementedError, match='compiled mmcv ops'):
        mmcv.ops.nms(torch.rand(2, 4), torch.rand(2), 0.5)


def test_full_host_imports_work():
    import mmaction.models  # noqa: F401
    import mmseg.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    from mmengine.utils.dl_utils import mmcv_full_available
    assert isinstance(mmcv_full_available(), bool)


def test_checkpoint_loading_roundtrip_and_refusal(tmp_path):
    from mmengine.logging import MessageHub
    from mmengine.runner import load_checkpoint
    import numpy as np
    model = MorphMLP(TINY)
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 1.0)
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(seed=np.int64(1), arr=np.zeros(2)),
                    message_hub=hub.state_dict()), path)
    other = MorphMLP(TINY)
    load_checkpoint(other, str(path))
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k

    class Evil:

        def __reduce__(self):
            return (os.system, ('echo pwned',))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Evil()}, evil)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        load_checkpoint(other, str(evil))


def test_checkpoint_saves_are_atomic(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous file intact."""
    from mmengine.runner.checkpoint import save_checkpoint
    from morphmlp_mm.utils import atomic_io
    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path))
    good = path.read_bytes()

    real_fsync = os.fsync

    def dying_fsync(fd):
        real_fsync(fd)
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(atomic_io.os, 'fsync', dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'state_dict': {'w': torch.zeros(1000)}}, str(path))
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']
    monkeypatch.undo()
    from mmengine.fileio.backends.local_backend import LocalBackend
    LocalBackend().put_text('epoch_1.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'


def test_checkpoint_saves_keep_open_permissions(tmp_path):
    """An atomic save leaves a new file with the mode ``open(..., 'wb')``
    gives it (0o666 less the umask, not mkstemp's owner-only 0o600) and an
    existing file with its own mode."""
    from mmengine.runner.checkpoint import save_checkpoint
    old = os.umask(0o022)
    try:
        path = tmp_path / 'epoch_1.pth'
        save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path))
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        other = tmp_path / 'epoch_2.pth'
        save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(other))
        assert other.stat().st_mode & 0o777 == 0o600
        os.chmod(path, 0o640)
        save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, str(path))
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_scheduler_state_with_counter_loads(tmp_path):
    import collections
    from morphmlp_mm.utils import safe_torch_load
    path = tmp_path / 'sched.pth'
    torch.save({'milestones': collections.Counter({3: 1})}, path)
    assert safe_torch_load(str(path))['milestones'] == {3: 1}


def test_import_without_mmcv_names_the_install(tmp_path):
    """A host extra alone (``.[cls]``) brings no mmcv: importing the package
    says which one to install, not ``No module named 'mmcv.cnn'``."""
    import subprocess
    import sys
    code = (
        'import sys\n'
        "sys.modules['mmcv'] = None  # as if not installed\n"
        'import morphmlp_mm\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=str(tmp_path))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('ImportError: morphmlp_mm needs mmcv 2.0 or 2.1')
    assert 'mmcv-lite' in last and '.[cls,mmcv-lite]' in last
