"""Tests of tools/convert/morphmlp_official_to_mm.py.

The equivalence tests rebuild the synthetic official checkpoints of
``tests/data/official`` (``official_weights.make_official_state_dict``; the
reference logits come from the official MorphMLP code, run outside this
repository, see ``tests/data/official/README.md``), convert them with the CLI
and compare the mmaction2 ``Recognizer3D`` logits with the official ones.
Models for the 224-px checks are built on the ``meta`` device and filled
with ``load_state_dict(assign=True, strict=True)``, which skips the slow
random init and proves that every parameter comes from the converted file.
"""
import json
from pathlib import Path

import pytest
import torch
from official_weights import (DATA_DIR, load_key_shapes, make_input,
                              make_official_state_dict)

from morphmlp_mm import MorphMLP, MorphMLP3D
from morphmlp_mm.checkpoint import detect_arch, init_on_meta, \
    split_backbone_head
from morphmlp_mm.utils import safe_torch_load
from tool_scripts import load_script

conv = load_script('tools/convert/morphmlp_official_to_mm.py')

ARCH = dict(depths=[1, 1, 2, 1], channels=[16, 32, 56, 112],
            chunk_lengths=[4, 8, 8, 16])
ARCH_OPTS = ['--chunk-lengths', '4', '8', '8', '16']
#: reference variant -> extra converter options (chunk windows of the
#: small configs at 64 px: a quarter row, a row, two rows, the 2x2 map)
VARIANTS = {
    's16': [],
    's32': [],
    'small16': ['--chunk-lengths', '4', '8', '2x4', '2x2'],
    'small32': ['--chunk-lengths', '4', '8', '2x4', '2x2'],
}


def _build(cfg: dict, scope: str, meta: bool = True) -> torch.nn.Module:
    """Build a host model, by default on the meta device (no init cost)."""
    from mmengine.registry import DefaultScope
    if scope == 'mmaction':
        from mmaction.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        if not meta:
            return MODELS.build(cfg).eval()
        with init_on_meta():
            return MODELS.build(cfg).eval()


def _recognizer(meta: dict) -> torch.nn.Module:
    channels = meta['channels'][-1]
    return _build(
        dict(type='Recognizer3D',
             backbone=dict(type='MorphMLP3D', arch=meta['arch'],
                           num_frames=meta['num_frames']),
             cls_head=dict(type='I3DHead', in_channels=channels,
                           num_classes=meta['num_classes'],
                           dropout_ratio=0.)), 'mmaction')


def _classifier(meta: dict) -> torch.nn.Module:
    return _build(
        dict(type='ImageClassifier',
             backbone=dict(type='MorphMLP', arch=meta['arch']),
             neck=None,
             head=dict(type='LinearClsHead',
                       num_classes=meta['num_classes'],
                       in_channels=meta['channels'][-1])), 'mmpretrain')


def _load(model: torch.nn.Module, path: Path) -> dict:
    ckpt = safe_torch_load(str(path))
    model.load_state_dict(ckpt['state_dict'], strict=True, assign=True)
    return ckpt['meta']


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif tensor.dim() == 1:
                tensor.add_(0.1 * torch.randn(tensor.shape, generator=gen))
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) /
                             tensor[0].numel()**0.5)
    return model.eval()


def _official_file(path: Path, model: torch.nn.Module, classes: int,
                   wrap: bool = True, cfg: str = None) -> dict:
    """Write ``model`` in the official layout (+ a random head)."""
    state = {}
    for key, value in model.state_dict().items():
        state['norm.' + key[6:] if key.startswith('norm3.') else key] = value
    gen = torch.Generator().manual_seed(1)
    state['head.weight'] = torch.randn(classes, ARCH['channels'][-1],
                                       generator=gen)
    state['head.bias'] = torch.randn(classes, generator=gen)
    obj = {'epoch': 5, 'model_state': state, 'optimizer_state': {},
           'cfg': cfg or ''} if wrap else state
    torch.save(obj, path)
    return state


# --------------------------------------------------------------------------
# equivalence with the official code
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(VARIANTS))
def test_converted_official_checkpoint_reproduces_official_logits(
        tmp_path, capsys, name):
    ref = torch.load(DATA_DIR / f'logits_{name}.pt', weights_only=True)
    keys = load_key_shapes(name)
    info = json.loads((DATA_DIR / f'keys_{name}.json').read_text())
    src, dst = tmp_path / f'mlp_{name}.pth', tmp_path / f'{name}_mm.pth'
    state = make_official_state_dict(keys, seed=ref['weight_seed'])
    # a PySlowFast fine-tuned file: model_state + cfg (YAML) + optimizer
    torch.save({'epoch': 60, 'model_state': state, 'optimizer_state': {},
                'cfg': f"DATA:\n  NUM_FRAMES: {info['num_frames']}\n"}, src)
    del state
    assert conv.main([str(src), str(dst)] + VARIANTS[name]) == 0
    out = capsys.readouterr().out
    assert f"num_frames={info['num_frames']}" in out
    assert 'missing keys: none' in out and 'unexpected keys: none' in out

    model = _recognizer(safe_torch_load(str(dst))['meta'])
    meta = _load(model, dst)
    assert meta['num_frames'] == info['num_frames']
    assert meta['depths'] == info['cfg']['MORPH']['LAYERS']
    x = make_input(ref['input_shape'], seed=ref['input_seed'])
    assert torch.equal(x.flatten()[:8], ref['input_first8'])
    with torch.no_grad():
        feats = model.backbone(x)
        logits = model(x[:, None], mode='tensor', stage='head')
    diff = (logits - ref['logits']).abs().max().item()
    feat_diff = (feats.mean(dim=(2, 3, 4)) - ref['features']).abs().max()
    print(f'{name}: max |logits - official| = {diff:.3g}, '
          f'features {feat_diff.item():.3g}')
    assert logits.shape == ref['logits'].shape
    assert diff <= 1e-4
    assert feat_diff.item() <= 1e-4


@pytest.mark.parametrize('name, depths, frames', [
    ('s16', [3, 4, 9, 3], 16), ('s32', [3, 4, 9, 3], 32),
    ('b16', [4, 6, 15, 4], 16)])
def test_detection_on_official_key_lists(name, depths, frames):
    backbone, head, layout = split_backbone_head(
        dict(load_key_shapes(name)))
    info = detect_arch(backbone, head)
    assert layout == 'official' and info.depths == depths
    assert info.num_classes == 400 and info.video and info.temporal
    assert 2 * (16 if frames == 32 else 8) in \
        [2 * t for t in info.stem_frames]
    from morphmlp_mm.checkpoint import choose_num_frames
    assert choose_num_frames(info) == frames


# --------------------------------------------------------------------------
# video / image outputs
# --------------------------------------------------------------------------
def test_video_conversion_and_host_logits(tmp_path, capsys):
    source = _randomise(MorphMLP3D(ARCH, num_frames=8), 0)
    src, dst = tmp_path / 'mlp_tiny_k400.pth', tmp_path / 'out' / 'mm.pth'
    official = _official_file(src, source, classes=7,
                              cfg='DATA:\n  NUM_FRAMES: 8\n')
    assert conv.main([str(src), str(dst)] + ARCH_OPTS) == 0
    out = capsys.readouterr().out
    assert 'kind: video (auto' in out and 'num_frames=8' in out
    assert 'depths=[1, 1, 2, 1]' in out and 'head: 7 classes' in out

    ckpt = safe_torch_load(str(dst))
    assert set(ckpt) == {'state_dict', 'meta'}
    sd = ckpt['state_dict']
    assert torch.equal(sd['backbone.norm3.weight'], official['norm.weight'])
    assert torch.equal(sd['cls_head.fc_cls.weight'], official['head.weight'])
    assert not any(k.startswith(('head.', 'norm.')) for k in sd)
    meta = ckpt['meta']
    assert meta['kind'] == 'video' and meta['num_classes'] == 7
    assert meta['arch']['chunk_lengths'] == [4, 8, 8, 16]

    # the path users take: load_from / mmengine.runner.load_checkpoint
    from mmengine.runner import load_checkpoint
    model = _build(
        dict(type='Recognizer3D',
             backbone=dict(type='MorphMLP3D', arch=meta['arch'],
                           num_frames=meta['num_frames']),
             cls_head=dict(type='I3DHead', in_channels=112, num_classes=7,
                           dropout_ratio=0.)), 'mmaction', meta=False)
    load_checkpoint(model, str(dst), strict=True, logger='silent')
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        logits = model(x[:, None], mode='tensor', stage='head')
        tokens = source(x).mean(dim=(2, 3, 4))
        expected = tokens @ official['head.weight'].t() + official['head.bias']
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_imagenet_file_to_image_and_video(tmp_path, capsys):
    """video_morphmlp_*.pth style: video shape, no t_fc, 1000-class head."""
    image = _randomise(MorphMLP(ARCH), 2)
    with torch.no_grad():
        video_shaped = MorphMLP3D(ARCH, num_frames=8, temporal=False)
        from morphmlp_mm.checkpoint import load_pretrained
        load_pretrained(video_shaped, image.state_dict(), logger=None)
    src = tmp_path / 'video_morphmlp_tiny.pth'
    official = _official_file(src, video_shaped, classes=1000, wrap=False)
    assert official['patch_embed1.proj1.weight'].dim() == 5

    img_dst, vid_dst = tmp_path / 'in1k_image.pth', tmp_path / 'in1k_v.pth'
    assert conv.main([str(src), str(img_dst)] + ARCH_OPTS) == 0
    out = capsys.readouterr().out
    assert 'kind: image (auto' in out and 'folded (sum over time)' in out
    assert conv.main([str(src), str(vid_dst), '--kind', 'video',
                      '--num-frames', '8'] + ARCH_OPTS) == 0
    out = capsys.readouterr().out
    assert 'missing keys: 30 temporal-branch keys' in out

    classifier = _classifier(safe_torch_load(str(img_dst))['meta'])
    _load(classifier, img_dst)
    torch.testing.assert_close(classifier.backbone.patch_embed1.proj1.weight,
                               image.patch_embed1.proj1.weight)
    recognizer = _build(
        dict(type='Recognizer3D',
             backbone=dict(type='MorphMLP3D', arch=ARCH, num_frames=8),
             cls_head=dict(type='I3DHead', in_channels=112,
                           num_classes=1000, dropout_ratio=0.)), 'mmaction',
        meta=False)  # the t_fc keys absent from the file keep their init
    ckpt = safe_torch_load(str(vid_dst))
    result = recognizer.load_state_dict(ckpt['state_dict'], strict=False)
    assert all('t_fc' in k or 't_norm1' in k for k in result.missing_keys)
    recognizer.eval()

    x = torch.randn(2, 3, 64, 64)
    clip = x[:, :, None].expand(-1, -1, 8, -1, -1)
    with torch.no_grad():
        image_logits = classifier(x, mode='tensor')
        video_logits = recognizer(clip[:, None], mode='tensor', stage='head')
    assert (image_logits - video_logits).abs().max().item() <= 1e-4


# --------------------------------------------------------------------------
# detection, options and refusals
# --------------------------------------------------------------------------
def test_b_depths_in_a_file_named_s(tmp_path, capsys):
    with init_on_meta():
        base = MorphMLP3D('base', num_frames=16)
    # meta tensors: only names and shapes matter here (saves 270 MB)
    state = {('norm.' + k[6:] if k.startswith('norm3.') else k): v
             for k, v in base.state_dict().items()}
    src = tmp_path / 'video_morphmlp_s.pth'
    torch.save(state, src)
    assert conv.main([str(src), str(tmp_path / 'o.pth'), '--kind',
                      'image']) == 0
    out = capsys.readouterr().out
    assert 'MorphMLP-B (base): depths=[4, 6, 15, 4]' in out
    assert 'file name suggests MorphMLP-S' in out
    meta = safe_torch_load(str(tmp_path / 'o.pth'))['meta']
    assert meta['arch'] == 'base' and meta['backbone'] == 'MorphMLP'


def test_num_classes_and_num_frames_options(tmp_path, capsys):
    source = MorphMLP3D(ARCH, num_frames=8)
    src = tmp_path / 'k400.pth'
    _official_file(src, source, classes=7)
    dst = tmp_path / 'o.pth'
    assert conv.main([str(src), str(dst), '--num-classes', '174',
                      '--num-frames', '4'] + ARCH_OPTS) == 0
    out = capsys.readouterr().out
    assert 'head dropped' in out
    ckpt = safe_torch_load(str(dst))
    assert not any(k.startswith('cls_head') for k in ckpt['state_dict'])
    assert ckpt['meta']['num_classes'] == 174
    assert ckpt['meta']['num_frames'] == 4
    # 6 frames -> T' = 3: mlp_t of 56 channels would be 3 * 56/1 wide
    assert conv.main([str(src), str(tmp_path / 'x.pth'), '--num-frames',
                      '6'] + ARCH_OPTS) == 2
    assert 'num_frames=6 does not fit' in capsys.readouterr().err


def test_never_overwrites_without_force(tmp_path, capsys):
    source = MorphMLP3D(ARCH, num_frames=8)
    src, dst = tmp_path / 'a.pth', tmp_path / 'b.pth'
    _official_file(src, source, classes=3)
    dst.write_bytes(b'keep me')
    assert conv.main([str(src), str(dst)] + ARCH_OPTS) == 2
    assert 'exists; pass --force' in capsys.readouterr().err
    assert dst.read_bytes() == b'keep me'
    assert conv.main([str(src), str(dst), '--force'] + ARCH_OPTS) == 0
    assert 'state_dict' in safe_torch_load(str(dst))


def test_custom_arch_needs_chunk_lengths(tmp_path, capsys):
    src = tmp_path / 'a.pth'
    _official_file(src, MorphMLP3D(ARCH, num_frames=8), classes=3)
    assert conv.main([str(src), str(tmp_path / 'b.pth')]) == 2
    assert '--chunk-lengths' in capsys.readouterr().err
    assert conv.main([str(src), str(tmp_path / 'b.pth'), '--chunk-lengths',
                      '4', '8', 'axb', '16']) == 2
    assert "'axb'" in capsys.readouterr().err


def test_refuses_files_that_are_not_morphmlp(tmp_path, capsys):
    src = tmp_path / 'resnet50.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                               'fc.weight': torch.zeros(10, 64)}}, src)
    assert conv.main([str(src), str(tmp_path / 'o.pth')]) == 2
    err = capsys.readouterr().err
    assert 'is not a MorphMLP checkpoint' in err
    assert 'patch_embed1.proj1.weight' in err
    assert not (tmp_path / 'o.pth').exists()
    assert conv.main([str(tmp_path / 'nope.pth'),
                      str(tmp_path / 'o.pth')]) == 2
    assert 'does not exist' in capsys.readouterr().err


class _Payload:

    def __reduce__(self):
        return (print, ('pwned', ))


def test_refuses_pickled_code(tmp_path, capsys):
    src = tmp_path / 'evil.pth'
    state = dict(MorphMLP3D(ARCH, num_frames=8).state_dict())
    state['extra'] = _Payload()
    torch.save(state, src)
    assert conv.main([str(src), str(tmp_path / 'o.pth')]) == 2
    captured = capsys.readouterr()
    assert 'refusing' in captured.err and 'pwned' not in captured.out
    assert not (tmp_path / 'o.pth').exists()


# --------------------------------------------------------------------------
# recorded frame counts, the printed range, safe writes
# --------------------------------------------------------------------------
def test_num_frames_contradicting_the_record_needs_force(tmp_path, capsys):
    """8 and 16 frames give the same t_fc shapes here: only the record
    tells, so --num-frames 16 on a NUM_FRAMES 8 file is refused."""
    src = tmp_path / 'k400_8f.pth'
    _official_file(src, MorphMLP3D(ARCH, num_frames=8), classes=3,
                   cfg='DATA:\n  NUM_FRAMES: 8\n')
    dst = tmp_path / 'o.pth'
    assert conv.main([str(src), str(dst), '--num-frames', '16']
                     + ARCH_OPTS) == 2
    err = capsys.readouterr().err
    assert '--num-frames 16 contradicts num_frames=8' in err
    assert 'DATA.NUM_FRAMES' in err and '--force' in err
    assert not dst.exists()
    assert conv.main([str(src), str(dst), '--num-frames', '16', '--force']
                     + ARCH_OPTS) == 0
    out = capsys.readouterr().out
    assert 'WARNING: --num-frames 16 contradicts num_frames=8' in out
    assert safe_torch_load(str(dst))['meta']['num_frames'] == 16
    # same T' after the stem: a note, no refusal
    assert conv.main([str(src), str(tmp_path / 'p.pth'), '--num-frames',
                      '7'] + ARCH_OPTS) == 0
    assert "both give T'=4" in capsys.readouterr().out


def test_unusable_record_is_noted_and_every_fitting_count_listed(
        tmp_path, capsys):
    src = tmp_path / 'k400.pth'
    _official_file(src, MorphMLP3D(ARCH, num_frames=8), classes=3,
                   cfg='DATA:\n  NUM_FRAMES: 6\n')  # T' = 3 does not fit
    assert conv.main([str(src), str(tmp_path / 'o.pth')] + ARCH_OPTS) == 0
    out = capsys.readouterr().out
    assert 'records num_frames=6' in out and 'ignored' in out
    assert 'fit num_frames in [1, 2, 3, 4, 7, 8, 15, 16]' in out
    assert 'num_frames=16, the official frame count' in out


def test_runner_checkpoint_records_its_frame_count(tmp_path, capsys):
    from mmengine.config import Config
    model = MorphMLP3D(ARCH, num_frames=8)
    text = Config(dict(model=dict(
        type='Recognizer3D',
        backbone=dict(type='MorphMLP3D', arch=ARCH, num_frames=8),
        cls_head=dict(type='I3DHead', in_channels=112,
                      num_classes=3)))).pretty_text
    src = tmp_path / 'epoch_3.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in
                               model.state_dict().items()},
                'meta': {'cfg': text, 'epoch': 3}}, src)
    dst = tmp_path / 'o.pth'
    assert conv.main([str(src), str(dst)] + ARCH_OPTS) == 0
    out = capsys.readouterr().out
    assert 'num_frames=8, recorded in the file' in out
    assert safe_torch_load(str(dst))['meta']['num_frames'] == 8
    assert conv.main([str(src), str(tmp_path / 'x.pth'), '--num-frames',
                      '16'] + ARCH_OPTS) == 2
    assert "meta['cfg']" in capsys.readouterr().err


def test_writes_never_touch_other_files(tmp_path, capsys):
    src = tmp_path / 'a.pth'
    _official_file(src, MorphMLP3D(ARCH, num_frames=8), classes=3)
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    dst = out_dir / 'b.pth'
    users = out_dir / 'b.pth.tmp'
    users.write_bytes(b'my notes')
    assert conv.main([str(src), str(dst)] + ARCH_OPTS) == 0
    assert users.read_bytes() == b'my notes'
    assert sorted(p.name for p in out_dir.iterdir()) == ['b.pth',
                                                          'b.pth.tmp']
    assert 'state_dict' in safe_torch_load(str(dst))
    capsys.readouterr()
    for extra in ([], ['--force']):
        assert conv.main([str(src), str(out_dir)] + extra + ARCH_OPTS) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and 'is a directory' in err
        assert str(out_dir) in err and 'Traceback' not in err
    assert sorted(p.name for p in out_dir.iterdir()) == ['b.pth',
                                                          'b.pth.tmp']
