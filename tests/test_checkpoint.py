"""Tests of morphmlp_mm.checkpoint: loading, 2D -> 3D and 3D -> 2D weights.

Tiny custom archs at 64 x 64 keep every test fast. What the round trip
asserts (see the module docstring of ``morphmlp_mm.checkpoint``):

* image -> video with the default ``'center'`` inflation: a static clip gives
  the image model's pooled features on every frame count (the temporal branch
  at its official init is an exact identity);
* ``'average'`` inflation: the stem matches on every output frame but the
  first (whose tap 0 reads the zero padding);
* video -> image folding: the image stem equals the video stem on a static
  clip on every output frame but the first, and the whole model matches
  exactly when the stem's tap 0 is zero.
"""
import dataclasses
import pickle
from collections import OrderedDict

import pytest
import torch

from morphmlp_mm import MorphMLP, MorphMLP3D
from morphmlp_mm.models import MorphFCTemporal
from morphmlp_mm.checkpoint import (ArchInfo, choose_num_frames, detect_arch,
                                    extract_state_dict, fold_kernel,
                                    inflate_kernel, init_on_meta,
                                    load_pretrained, read_official_cfg,
                                    split_backbone_head)

ARCH = dict(depths=[1, 1, 2, 1], channels=[16, 32, 56, 112],
            chunk_lengths=[4, 8, 8, 16])
SIZE = 64


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every tensor (BN statistics included) a distinct random value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif tensor.dim() == 1 and name.endswith('weight'):
                tensor.copy_(1 + 0.1 * torch.randn(tensor.shape,
                                                   generator=gen))
            elif tensor.dim() == 1:
                tensor.copy_(0.05 * torch.randn(tensor.shape, generator=gen))
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(
                    torch.randn(tensor.shape, generator=gen) / fan_in**0.5)
    return model.eval()


def _image_model(seed: int = 0) -> MorphMLP:
    return _randomise(MorphMLP(ARCH), seed)


def _official_layout(model: torch.nn.Module, num_classes: int = 5
                     ) -> 'OrderedDict[str, torch.Tensor]':
    """Our backbone keys -> the official layout (norm., head.)."""
    state = OrderedDict()
    for key, value in model.state_dict().items():
        if key.startswith('norm3.'):
            key = 'norm.' + key[len('norm3.'):]
        state[key] = value.clone()
    gen = torch.Generator().manual_seed(7)
    channels = ARCH['channels'][-1]
    state['head.weight'] = torch.randn(num_classes, channels, generator=gen)
    state['head.bias'] = torch.randn(num_classes, generator=gen)
    return state


def _static_clip(image: torch.Tensor, frames: int) -> torch.Tensor:
    return image.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


def _assert_same_params(model: torch.nn.Module, state: dict,
                        rename=lambda k: k) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[rename(key)]), key


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['center', 'average'])
def test_inflate_then_fold_gives_back_the_kernel(mode):
    weight = torch.randn(6, 3, 3, 3)
    inflated = inflate_kernel(weight, 3, mode)
    assert inflated.shape == (6, 3, 3, 3, 3)
    torch.testing.assert_close(fold_kernel(inflated), weight)
    if mode == 'center':
        assert torch.equal(inflated[:, :, 1], weight)
        assert not inflated[:, :, [0, 2]].any()
    else:
        for tap in range(3):
            torch.testing.assert_close(inflated[:, :, tap], weight / 3)
    single = inflate_kernel(weight, 1, mode)
    assert torch.equal(single.squeeze(2), weight)


def test_kernel_helpers_reject_bad_input():
    with pytest.raises(ValueError, match='inflate=.*nearest'):
        inflate_kernel(torch.randn(2, 2, 3, 3), 3, 'nearest')
    with pytest.raises(ValueError, match='4-D'):
        inflate_kernel(torch.randn(2, 2, 1, 3, 3), 3)
    with pytest.raises(ValueError, match='5-D'):
        fold_kernel(torch.randn(2, 2, 3, 3))


# --------------------------------------------------------------------------
# 2D -> 3D
# --------------------------------------------------------------------------
@pytest.mark.parametrize('frames', [4, 7])
def test_image_checkpoint_to_video_static_clip_round_trip(tmp_path, frames):
    """mmpretrain checkpoint -> MorphMLP3D via init_cfg -> same features."""
    image = _image_model()
    ckpt = tmp_path / 'image.pth'
    state = {'backbone.' + k: v for k, v in image.state_dict().items()}
    state['head.fc.weight'] = torch.randn(3, 112)
    state['head.fc.bias'] = torch.zeros(3)
    state['data_preprocessor.mean'] = torch.zeros(3)
    torch.save({'state_dict': state, 'meta': {'epoch': 1}}, ckpt)

    video = MorphMLP3D(
        ARCH, num_frames=frames, out_type='avg_featmap',
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                      prefix='backbone.'))
    video.init_weights()
    video.eval()
    # the temporal branch keeps its official init
    block = video.blocks3[1]
    assert not block.t_fc.mlp_t.weight.any()
    assert not block.t_fc.mlp_t.bias.any()
    assert torch.equal(block.t_fc.proj.weight,
                       torch.ones_like(block.t_fc.proj.weight))
    assert torch.equal(video.blocks1[0].norm1.weight,
                       image.blocks1[0].norm1.weight)

    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = image(x)[0]
        got = video(_static_clip(x, frames))
    assert got.shape == expected.shape == (2, 112)
    assert (got - expected).abs().max().item() <= 1e-4


def test_average_inflation_matches_all_but_the_first_frame(tmp_path):
    image = _image_model(1)
    ckpt = tmp_path / 'image.pth'
    torch.save(image.state_dict(), ckpt)
    video = MorphMLP3D(
        ARCH, num_frames=8, out_type='avg_featmap',
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                      inflate='average'))
    video.init_weights()
    video.eval()
    taps = video.patch_embed1.proj1.weight
    for tap in range(3):
        torch.testing.assert_close(taps[:, :, tap],
                                   image.patch_embed1.proj1.weight / 3)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        stem2d = image.patch_embed1(x)[:, 0]          # (B, H, W, C)
        stem3d = video.patch_embed1(_static_clip(x, 8))  # (B, T', H, W, C)
    for t in range(1, 4):
        torch.testing.assert_close(stem3d[:, t], stem2d, atol=1e-5,
                                   rtol=1e-5)
    assert (stem3d[:, 0] - stem2d).abs().max() > 1e-3


def test_explicit_inflate_argument_wins(tmp_path):
    image = _image_model(2)
    video = MorphMLP3D(ARCH, num_frames=4,
                       init_cfg=dict(type='Pretrained', checkpoint='x',
                                     inflate='center'))
    load_pretrained(video, image.state_dict(), inflate='average')
    assert video.patch_embed1.proj1.weight[:, :, 0].abs().sum() > 0
    with pytest.raises(ValueError, match='inflate'):
        load_pretrained(video, image.state_dict(), inflate='bilinear')


# --------------------------------------------------------------------------
# 3D -> 2D
# --------------------------------------------------------------------------
def test_video_weights_fold_into_the_image_model():
    video = _randomise(MorphMLP3D(ARCH, num_frames=8, out_type='avg_featmap'))
    # temporal branch at its official init, and no weight on the padded tap
    for module in video.modules():
        if isinstance(module, MorphFCTemporal):
            module.reset_official()
    with torch.no_grad():
        video.patch_embed1.proj1.weight[:, :, 0] = 0
    image = MorphMLP(ARCH).eval()
    report = load_pretrained(image, video.state_dict())
    assert 'patch_embed1.proj1.weight' in report.folded
    assert all('t_fc' in k or 't_norm1' in k for k in report.unexpected)
    assert len(report.unexpected) == 6 * sum(ARCH['depths'])
    assert report.missing == []
    torch.testing.assert_close(
        image.patch_embed1.proj1.weight,
        video.patch_embed1.proj1.weight.sum(2))
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = video(_static_clip(x, 8))
        got = image(x)[0]
    assert (got - expected).abs().max().item() <= 1e-4


def test_folded_stem_matches_every_frame_but_the_first():
    video = _randomise(MorphMLP3D(ARCH, num_frames=6), 3)
    image = MorphMLP(ARCH).eval()
    load_pretrained(image, video.state_dict())
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        stem2d = image.patch_embed1(x)[:, 0]
        stem3d = video.patch_embed1(_static_clip(x, 6))
    for t in (1, 2):
        torch.testing.assert_close(stem3d[:, t], stem2d, atol=1e-5,
                                   rtol=1e-5)
    assert (stem3d[:, 0] - stem2d).abs().max() > 1e-3


# --------------------------------------------------------------------------
# checkpoint layouts
# --------------------------------------------------------------------------
@pytest.mark.parametrize('wrap', ['flat', 'model_state', 'module'])
def test_official_layouts_load_into_the_video_backbone(tmp_path, wrap):
    source = _randomise(MorphMLP3D(ARCH, num_frames=8), 4)
    official = _official_layout(source)
    if wrap == 'model_state':
        obj = {'epoch': 10, 'model_state': official, 'cfg': 'DATA:\n'
               '  NUM_FRAMES: 8\nMODEL:\n  NUM_CLASSES: 5\n'}
    elif wrap == 'module':
        obj = {'module.' + k: v for k, v in official.items()}
    else:
        obj = official
    path = tmp_path / 'official.pth'
    torch.save(obj, path)
    target = MorphMLP3D(ARCH, num_frames=8)
    report = load_pretrained(target, str(path))
    assert report.missing == []
    assert sorted(report.unexpected) == ['head.bias', 'head.weight']
    assert report.inflated == report.folded == []
    _assert_same_params(
        target, official,
        lambda k: 'norm.' + k[6:] if k.startswith('norm3.') else k)


def test_mmaction_checkpoint_prefix_and_auto_prefix(tmp_path):
    source = _randomise(MorphMLP3D(ARCH, num_frames=8), 5)
    state = {'backbone.' + k: v for k, v in source.state_dict().items()}
    state['cls_head.fc_cls.weight'] = torch.randn(4, 112)
    state['cls_head.fc_cls.bias'] = torch.randn(4)
    path = tmp_path / 'recognizer.pth'
    torch.save({'state_dict': state, 'meta': {'num_frames': 8}}, path)
    for prefix in ('backbone', 'backbone.', None):
        target = MorphMLP3D(ARCH, num_frames=8)
        report = load_pretrained(target, str(path), prefix=prefix)
        assert report.missing == [] and report.unexpected == []
        _assert_same_params(target, source.state_dict())


def test_official_image_file_into_video_and_seg_style_backbones():
    """IN-1K-style file (video shape, no t_fc) -> video and 4-output image."""
    source = _randomise(MorphMLP3D(ARCH, num_frames=8, temporal=False), 6)
    official = _official_layout(source, num_classes=1000)
    video = MorphMLP3D(ARCH, num_frames=8)
    report = load_pretrained(video, dict(official))
    assert report.missing and all('t_fc' in k or 't_norm1' in k
                                  for k in report.missing)
    seg = MorphMLP(ARCH, out_indices=(0, 1, 2, 3), out_type='featmap')
    report = load_pretrained(seg, dict(official))
    assert sorted(report.missing) == [
        f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert torch.equal(seg.norm3.weight, official['norm.weight'])


def test_read_official_cfg_and_frame_choice():
    cfg = read_official_cfg({
        'cfg': 'DATA:\n  NUM_FRAMES: 32\nMODEL:\n  NUM_CLASSES: 174\n'
               'MORPH:\n  LAYERS: [3, 4, 9, 3]\n'})
    assert cfg == {'num_frames': 32, 'num_classes': 174,
                   'depths': [3, 4, 9, 3]}
    assert read_official_cfg({'meta': {'num_frames': 8}}) == \
        {'num_frames': 8}
    assert read_official_cfg({'cfg': ':::not yaml'}) == {}
    info = detect_arch(MorphMLP3D(ARCH, num_frames=8).state_dict())
    assert info.stem_frames == [1, 2, 4, 8]
    assert choose_num_frames(info) == 16          # official default
    assert choose_num_frames(info, recorded=8) == 8
    assert choose_num_frames(info, requested=4) == 4
    with pytest.raises(ValueError, match=r'num_frames=6 does not fit.*'
                       r'num_frames in \[1, 2, 3, 4, 7, 8, 15, 16\]'):
        choose_num_frames(info, requested=6)
    assert choose_num_frames(info, requested=7) == 7  # T' = ceil(7 / 2)
    ambiguous = dataclasses.replace(info, stem_frames=[1, 2])
    with pytest.raises(ValueError, match=r'num_frames in \[1, 2, 3, 4\] all '
                       r'fit.*num_frames=; the converter: --num-frames'):
        choose_num_frames(ambiguous)


def test_detect_arch_on_meta_models():
    with init_on_meta():
        base32 = MorphMLP3D('base', num_frames=32)
        tiny = MorphMLP('tiny')
    info = detect_arch(base32.state_dict())
    assert isinstance(info, ArchInfo)
    assert info.depths == [4, 6, 15, 4] and info.arch_name == 'base'
    assert info.temporal_dims == [112, 224, 448, 784]
    assert 16 in info.stem_frames and 8 not in info.stem_frames
    assert choose_num_frames(info) == 32
    assert next(base32.parameters()).device.type == 'meta'
    tiny_info = detect_arch(tiny.state_dict())
    assert tiny_info.arch_name == 'tiny' and not tiny_info.video
    assert tiny_info.arch() == 'tiny'
    assert tiny_info.arch([4, 8, 8, 16])['chunk_lengths'] == [4, 8, 8, 16]


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
def test_arch_mismatch_names_key_shapes_and_cause():
    source = MorphMLP3D(dict(ARCH, channels=[32, 64, 112, 224]),
                        num_frames=8)
    target = MorphMLP3D(ARCH, num_frames=8)
    with pytest.raises(ValueError) as err:
        load_pretrained(target, source.state_dict())
    msg = str(err.value)
    assert 'patch_embed1.proj1.weight' in msg
    assert '[16, 3, 3, 3, 3]' in msg and '[8, 3, 3, 3, 3]' in msg
    assert 'arch mismatch' in msg


def test_depth_mismatch_is_an_arch_error():
    with init_on_meta():
        base = MorphMLP3D('base')
    state = base.state_dict()  # meta tensors: the check needs only keys
    with init_on_meta():
        small = MorphMLP3D('small')
    with pytest.raises(ValueError, match=r"block counts differ.*arch='base'"):
        load_pretrained(small, state)


def test_num_frames_mismatch_is_named():
    source = MorphMLP3D(ARCH, num_frames=16)     # T' = 8: mlp_t 56 x 56
    target = MorphMLP3D(ARCH, num_frames=32)     # T' = 16: mlp_t 64 x 64
    with pytest.raises(ValueError) as err:
        load_pretrained(target, source.state_dict())
    msg = str(err.value)
    assert 'blocks3.0.t_fc.mlp_t.weight' in msg
    assert '[56, 56]' in msg and '[64, 64]' in msg
    assert 'num_frames mismatch' in msg and 'num_frames=32' in msg


def test_not_a_morphmlp_checkpoint(tmp_path):
    resnet_like = {'conv1.weight': torch.zeros(8, 3, 7, 7),
                   'layer1.0.bn1.weight': torch.ones(8)}
    with pytest.raises(ValueError, match='no key of .* matches MorphMLP'):
        load_pretrained(MorphMLP(ARCH), resnet_like)
    with pytest.raises(ValueError, match="prefix='encoder.' matches no key"):
        load_pretrained(MorphMLP(ARCH), resnet_like, prefix='encoder')
    with pytest.raises(ValueError, match='holds no tensors'):
        extract_state_dict({'epoch': 3})
    with pytest.raises(FileNotFoundError):
        load_pretrained(MorphMLP(ARCH), str(tmp_path / 'missing.pth'))


class _Payload:
    """Stands for arbitrary code a malicious checkpoint would run."""

    def __reduce__(self):
        return (print, ('pwned', ))


def test_untrusted_pickles_are_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': MorphMLP(ARCH).state_dict(),
                'payload': _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError, match='builtins.print'):
        load_pretrained(MorphMLP(ARCH), str(path))


def test_split_backbone_head_layouts():
    backbone = {'patch_embed1.proj1.weight': torch.zeros(1)}
    official = dict(backbone, **{'norm.weight': torch.zeros(1),
                                 'head.weight': torch.zeros(2, 1)})
    out, head, layout = split_backbone_head(official)
    assert layout == 'official' and 'norm3.weight' in out
    assert list(head) == ['weight']
    mmpre = {'backbone.norm3.weight': torch.zeros(1),
             'head.fc.bias': torch.zeros(2)}
    out, head, layout = split_backbone_head(mmpre)
    assert layout == 'mmpretrain' and list(out) == ['norm3.weight']
    assert list(head) == ['bias']
    out, head, layout = split_backbone_head(backbone)
    assert layout == 'backbone' and head == {}


# --------------------------------------------------------------------------
# recorded frame counts (shapes alone cannot tell 8 from 16 frames here)
# --------------------------------------------------------------------------
def _video_file(path, num_frames: int, layout: str, seed: int = 3) -> dict:
    """Save a ``num_frames`` video backbone with its count recorded as
    our converter (``meta``), PySlowFast (``cfg``) or mmengine's Runner
    (``meta['cfg']`` config text) records it; returns the backbone dict."""
    from mmengine.config import Config
    state = _randomise(MorphMLP3D(ARCH, num_frames=num_frames),
                       seed).state_dict()
    wrapped = OrderedDict(('backbone.' + k, v) for k, v in state.items())
    if layout == 'converter':
        obj = {'state_dict': wrapped, 'meta': {'num_frames': num_frames}}
    elif layout == 'official':
        obj = {'model_state': dict(state),
               'cfg': f'DATA:\n  NUM_FRAMES: {num_frames}\n'}
    else:
        text = Config(dict(model=dict(
            type='Recognizer3D', backbone=dict(
                type='MorphMLP3D', arch=ARCH, num_frames=num_frames),
            cls_head=dict(type='I3DHead', num_classes=5)))).pretty_text
        obj = {'state_dict': wrapped, 'meta': {'cfg': text, 'epoch': 3}}
    torch.save(obj, path)
    return state


class _Messages(list):
    """A ``logging.Logger`` for ``load_pretrained(logger=...)`` whose
    messages land in this list."""

    def __init__(self):
        super().__init__()
        import logging
        self.logger = logging.getLogger(f'test_checkpoint.{id(self)}')
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        handler = logging.Handler()
        handler.emit = lambda record: self.append(record.getMessage())
        self.logger.addHandler(handler)

    @property
    def text(self) -> str:
        return '\n'.join(self)


@pytest.mark.parametrize('layout', ['converter', 'official', 'runner'])
def test_recorded_frame_count_must_match_the_model(tmp_path, layout):
    from morphmlp_mm.checkpoint import CheckpointLoadError
    path = tmp_path / f'{layout}16.pth'
    state = _video_file(path, 16, layout)
    target = MorphMLP3D(ARCH, num_frames=8)
    # same t_fc.mlp_t shapes for 8 and 16 frames: only the record tells
    assert detect_arch(state).stem_frames == [1, 2, 4, 8]
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointLoadError) as err:
        load_pretrained(target, str(path), logger=None)
    msg = str(err.value)
    assert 'num_frames=16' in msg and 'num_frames=8' in msg
    assert "temporal_weights='init'" in msg and str(path) in msg
    for key, value in target.state_dict().items():  # nothing loaded
        assert torch.equal(value, before[key]), key
    # the fix the message names: the model of the recorded count
    report = load_pretrained(MorphMLP3D(ARCH, num_frames=16), str(path),
                             logger=None)
    assert not report.missing and not report.skipped


def test_temporal_weights_init_keeps_the_temporal_branch(tmp_path):
    from morphmlp_mm.checkpoint import is_temporal_key
    path = tmp_path / 'k16.pth'
    state = _video_file(path, 16, 'converter')
    fresh = MorphMLP3D(ARCH, num_frames=8).state_dict()
    target = MorphMLP3D(ARCH, num_frames=8)
    report = load_pretrained(target, str(path), temporal_weights='init',
                             logger=None)
    temporal = [k for k in state if is_temporal_key(k)]
    assert sorted(report.skipped) == sorted(temporal)
    assert sorted(report.missing) == sorted(temporal)
    for key, value in target.state_dict().items():
        expected = fresh[key] if is_temporal_key(key) else state[key]
        assert torch.equal(value, expected), key
    # the option in init_cfg (read by load_pretrained from the model)
    model = MorphMLP3D(ARCH, num_frames=8, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), temporal_weights='init'))
    model.init_weights()
    assert torch.equal(model.norm3.weight, state['norm3.weight'])
    assert not model.blocks1[0].t_fc.mlp_t.weight.any()
    with pytest.raises(ValueError, match=r"temporal_weights='keep'.*"
                       r"\['load', 'init'\]"):
        load_pretrained(target, str(path), temporal_weights='keep')


def test_frame_counts_with_the_same_stem_frames_load(tmp_path):
    """15 and 16 frames give T' = 8: the temporal weights mean the same."""
    path = tmp_path / 'k16.pth'
    state = _video_file(path, 16, 'official')
    target = MorphMLP3D(ARCH, num_frames=15)
    log = _Messages()
    report = load_pretrained(target, str(path), logger=log.logger)
    assert not report.missing
    assert torch.equal(target.blocks3[0].t_fc.mlp_t.weight,
                       state['blocks3.0.t_fc.mlp_t.weight'])
    assert "both give T'=8" in log.text


def test_unusable_recorded_frame_count_is_reported(tmp_path):
    path = tmp_path / 'k.pth'
    state = _video_file(path, 8, 'converter')
    torch.save({'state_dict': {'backbone.' + k: v for k, v in state.items()},
                'meta': {'num_frames': 6}}, path)  # T' = 3 does not fit
    log = _Messages()
    report = load_pretrained(MorphMLP3D(ARCH, num_frames=8), str(path),
                             logger=log.logger)
    assert not report.missing
    assert 'ignoring num_frames=6' in log.text
    assert 'num_frames in [1, 2, 3, 4, 7, 8, 15, 16]' in log.text


def test_frames_from_runner_config_text():
    from mmengine.config import Config

    from morphmlp_mm.checkpoint import (frames_from_config_text,
                                        recorded_num_frames)

    def text(**backbone):
        return Config(dict(model=dict(type='Recognizer3D',
                                      backbone=backbone))).pretty_text

    assert frames_from_config_text(
        text(type='MorphMLP3D', num_frames=8)) == 8
    assert frames_from_config_text(text(type='MorphMLP3D')) == 16  # default
    assert frames_from_config_text(text(type='MorphMLP')) is None
    assert frames_from_config_text('model = dict(') is None
    assert frames_from_config_text('x = 1') is None
    # parsed, never executed
    evil = ("model = dict(backbone=dict(type='MorphMLP3D', num_frames="
            "__import__('os').system('exit 3')))")
    assert frames_from_config_text(evil) is None
    assert read_official_cfg({'meta': {'cfg': text(
        type='MorphMLP3D', num_frames=32)}}) == {'num_frames': 32}
    assert recorded_num_frames({'meta': {'num_frames': 8, 'cfg': text(
        type='MorphMLP3D', num_frames=32)}}) == (8, "meta['num_frames']")


def test_user_facing_load_errors_are_checkpoint_load_errors():
    from morphmlp_mm.checkpoint import CheckpointLoadError
    assert issubclass(CheckpointLoadError, ValueError)
    resnet_like = {'conv1.weight': torch.zeros(8, 3, 7, 7)}
    calls = [
        lambda: load_pretrained(MorphMLP(ARCH), resnet_like),
        lambda: load_pretrained(MorphMLP(ARCH), resnet_like,
                                prefix='encoder'),
        lambda: load_pretrained(MorphMLP3D(ARCH, num_frames=32),
                                MorphMLP3D(ARCH,
                                           num_frames=16).state_dict()),
        lambda: load_pretrained(MorphMLP(ARCH), MorphMLP(
            dict(ARCH, depths=[1, 1, 1, 1])).state_dict()),
        lambda: load_pretrained(MorphMLP(ARCH), {'epoch': 3}),
    ]
    for call in calls:
        with pytest.raises(CheckpointLoadError):
            call()
    with pytest.raises(CheckpointLoadError) as err:
        calls[2]()
    assert "temporal_weights='init'" in str(err.value)
    assert 'num_frames in [1, 2, 3, 4, 7, 8, 15, 16]' in str(err.value)
