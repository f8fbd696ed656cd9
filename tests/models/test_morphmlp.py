"""MorphMLP / MorphMLP3D backbone behaviour."""

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from morphmlp_mm import MorphMLP, MorphMLP3D

TINY = dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64],
            chunk_lengths=[4, 4, 8, 16])


def n_params(model, classes):
    return (sum(p.numel() for p in model.parameters()) +
            model.channels[-1] * classes + classes)


@pytest.mark.parametrize('arch,millions', [('tiny', 23.39), ('s', 40.55),
                                           ('base', 57.98), ('L', 76.19)])
def test_image_param_counts(arch, millions):
    with torch.device('meta'):  # shapes only, skips the random init
        model = MorphMLP(arch)
    assert n_params(model, 1000) / 1e6 == pytest.approx(
        millions, abs=0.01)


@pytest.mark.parametrize('arch,frames,millions', [('small', 16, 47.04),
                                                  ('small', 32, 47.46),
                                                  ('base', 16, 67.78),
                                                  ('base', 32, 68.49)])
def test_video_param_counts(arch, frames, millions):
    with torch.device('meta'):
        model = MorphMLP3D(arch, num_frames=frames)
    assert n_params(model, 400) / 1e6 == pytest.approx(millions, abs=0.01)


def test_official_key_layout_and_shapes():
    """Keys as the official 32-frame model, incl. the 448-wide stage 3."""
    with torch.device('meta'):
        sd = MorphMLP3D('small', num_frames=32).state_dict()
    assert sd['patch_embed1.proj1.weight'].shape == (56, 3, 3, 3, 3)
    assert sd['patch_embed1.proj2.weight'].shape == (112, 56, 1, 3, 3)
    assert sd['patch_embed2.proj.weight'].shape == (224, 112, 1, 3, 3)
    assert sd['blocks3.0.t_fc.mlp_t.weight'].shape == (448, 448)
    assert sd['blocks1.0.t_fc.mlp_t.weight'].shape == (112, 112)
    assert sd['blocks4.2.fc.reweight.fc2.weight'].shape == (1568, 196)
    assert 'blocks4.0.fc.mlp_w.weight' not in sd
    assert sd['blocks3.8.fc.reweight.fc2.weight'].shape == (1176, 98)
    assert sd['blocks2.0.mlp.fc1.weight'].shape == (672, 224)
    assert 'norm3.weight' in sd and 'blocks3.9.norm1.weight' not in sd
    assert 'patch_embed1.norm1.running_var' in sd


def test_official_init():
    model = MorphMLP3D(TINY, num_frames=8)
    sd = model.state_dict()
    for key, value in sd.items():
        if key.endswith('t_fc.mlp_t.weight') or key.endswith(
                't_fc.mlp_t.bias') or key.endswith('t_fc.proj.bias'):
            assert torch.all(value == 0), key
        elif key.endswith('t_fc.proj.weight'):
            assert torch.all(value == 1), key
    w = model.blocks3[0].fc.mlp_c.weight
    # timm/mmengine trunc_normal bounds are absolute (+-2): ~N(0, 0.02)
    assert 0.018 < w.std() < 0.022 and w.abs().max() < 0.2
    assert torch.all(model.blocks3[0].fc.mlp_c.bias == 0)
    assert torch.all(model.blocks1[0].norm1.weight == 1)


# ------------------------------------------------------------------- archs
@pytest.mark.parametrize('arch,pattern', [
    ('huge', "arch='huge' is not a known MorphMLP arch"),
    (dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
     r"missing \['chunk_lengths'\]"),
    (dict(TINY, window=3), r"unknown \['window'\]"),
    (dict(TINY, depths=[1, 1, 1]), r"arch\['depths'\] must be a list of 4"),
    (dict(TINY, channels=[8, 16, 30, 64]),
     r"arch\['channels'\]\[2\]=30 is not divisible by the chunk length 8"),
    (dict(TINY, chunk_lengths=[4, 4, 0, 16]),
     r"arch\['chunk_lengths'\]\[2\] must be a positive int"),
    (dict(TINY, mlp_ratio=-1), r"arch\['mlp_ratio'\]"),
    (dict(TINY, depths=[1, 0, 1, 1]), r"arch\['depths'\] must hold positive"),
    (3, 'arch must be a str or a dict'),
])
def test_bad_arch(arch, pattern):
    with pytest.raises(ValueError, match=pattern):
        MorphMLP(arch)


def test_custom_arch_windows_and_ratios():
    arch = dict(TINY, chunk_lengths=[4, (2, 2), 8, (4, 4)],
                mlp_ratio=[1, 2, 3, 4])
    model = MorphMLP(arch)
    assert model.arch_settings['chunk_windows'] == [(1, 4), (2, 2), (1, 8),
                                                    (4, 4)]
    assert model.blocks4[0].mlp.fc1.out_features == 256
    assert model.blocks1[0].fc.window == (1, 4)


@pytest.mark.parametrize('kwargs,pattern', [
    (dict(out_indices=4), 'out_indices'), (dict(out_indices=()),
                                           'out_indices'),
    (dict(out_type='cls_token'), 'out_type'),
    (dict(frozen_stages=4), 'frozen_stages'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(in_channels=0), 'in_channels'),
    (dict(with_cp=(True, False)), r'with_cp .* 4 bools .* \(True, False\)'),
    (dict(with_cp='yes'), "with_cp .* got 'yes'"),
    (dict(with_cp=(1, 0, 0, 0)), 'with_cp'),
    (dict(drop_path_rate='0.1'),
     r"drop_path_rate must be in \[0, 1\) and a number .* str '0.1'"),
    (dict(drop_path_rate=True), 'drop_path_rate .* bool True'),
    (dict(drop_path_rate=float('nan')), 'drop_path_rate'),
    (dict(norm_eval='yes'), "norm_eval must be a bool .* str 'yes'"),
    (dict(norm_eval=1), 'norm_eval must be a bool .* int 1'),
    (dict(in_channels=True), 'in_channels must be a positive int'),
    (dict(frozen_stages=True), 'frozen_stages'),
])
def test_bad_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        MorphMLP(TINY, **kwargs)


def test_drop_path_rate_accepts_ints_and_floats():
    assert MorphMLP(TINY, drop_path_rate=0).blocks1[0].drop_path is not None
    MorphMLP(TINY, drop_path_rate=0.3)


def test_video_temporal_must_be_a_bool():
    with pytest.raises(ValueError, match="temporal must be a bool .* 'no'"):
        MorphMLP3D(TINY, num_frames=4, temporal='no')


# ------------------------------------------------------------- norm_cfg
@pytest.mark.parametrize('cls,norm_cfg,pattern', [
    (MorphMLP, dict(type='LN'),
     r"norm_cfg=\{'type': 'LN'\}: type 'LN' is not a norm the MorphMLP "
     r"stem can use; allowed types are \['BN', 'BN2d', 'SyncBN'"),
    (MorphMLP, dict(type='BatchNorm'), r"type 'BatchNorm' .* \['BN', "),
    (MorphMLP, dict(type='BN3d'), r"type 'BN3d' .* the official model uses "
     'BN'),
    (MorphMLP3D, dict(type='BN'), r"type 'BN' .*MorphMLP3D.* \['BN3d', "
     r"'SyncBN', 'GN', 'IN3d'\]"),
    (MorphMLP3D, dict(type=torch.nn.BatchNorm2d), 'BatchNorm2d'),
    (MorphMLP, 'BN', 'norm_cfg must be None or a dict'),
    (MorphMLP, dict(requires_grad=True), 'norm_cfg must be None or a dict'),
    (MorphMLP, dict(type='GN'), 'GN needs num_groups.* widths 4 and 8'),
    (MorphMLP, dict(type='GN', num_groups=3), 'num_groups=3'),
    (MorphMLP, dict(type='BN', momentun=0.1),
     r"norm_cfg=.*momentun.* cannot build the stem norm"),
])
def test_bad_norm_cfg(cls, norm_cfg, pattern):
    kwargs = dict(num_frames=4) if cls is MorphMLP3D else {}
    with pytest.raises(ValueError, match=pattern):
        cls(TINY, norm_cfg=norm_cfg, **kwargs)


@pytest.mark.parametrize('cls,norm_cfg,norm', [
    (MorphMLP, dict(type='BN2d', requires_grad=False), 'BatchNorm2d'),
    (MorphMLP, dict(type='GN', num_groups=2), 'GroupNorm'),
    (MorphMLP, dict(type='IN', affine=True), 'InstanceNorm2d'),
    (MorphMLP, dict(type=torch.nn.BatchNorm2d), 'BatchNorm2d'),
    (MorphMLP3D, dict(type='BN3d'), 'BatchNorm3d'),
    (MorphMLP3D, dict(type='GN', num_groups=4), 'GroupNorm'),
    (MorphMLP3D, dict(type='mmaction.SyncBN'), 'SyncBatchNorm'),
])
def test_allowed_norm_cfg_runs(cls, norm_cfg, norm):
    video = cls is MorphMLP3D
    model = cls(TINY, norm_cfg=norm_cfg,
                **(dict(num_frames=2) if video else {})).eval()
    assert type(model.patch_embed1.norm1).__name__ == norm
    x = torch.rand(1, 3, 2, 32, 32) if video else torch.rand(1, 3, 32, 32)
    out = model(x)
    assert (out if video else out[0]).shape[:2] == (1, 64)


# ------------------------------------------------------------- init_cfg
@pytest.mark.parametrize('init_cfg,pattern', [
    (dict(type='Pretrained'), "'Pretrained' needs checkpoint="),
    ([dict(type='Constant', layer='Linear', val=0),
      dict(type='Pretrained', checkpoint=None)], 'needs checkpoint'),
    (dict(type='Pretrained', checkpoint='a.pth', prefix=1),
     'prefix must be a str'),
    (dict(type='Pretrained', checkpoint='a.pth', inflate='mean'),
     r"inflate must be one of \['center', 'average'\]"),
    (dict(type='Pretrained', checkpoint='a.pth', temporal_weights='skip'),
     r"temporal_weights must be one of \['load', 'init'\]"),
    ([dict(layer='Linear')], "each with a 'type' key"),
])
def test_bad_init_cfg(init_cfg, pattern):
    with pytest.raises(ValueError, match=pattern):
        MorphMLP(TINY, init_cfg=init_cfg).init_weights()


@pytest.mark.parametrize('pretrained_first', [True, False])
def test_init_cfg_list_applies_every_entry(tmp_path, pretrained_first):
    """mmengine semantics: the other entries apply, Pretrained last."""
    torch.manual_seed(0)
    source = MorphMLP(TINY)
    for m in source.modules():
        if isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.normal_(m.weight)
    state = {k: v for k, v in source.state_dict().items()
             if not k.startswith('norm3.')}  # a key the checkpoint lacks
    path = tmp_path / 'no_norm3.pth'
    torch.save({'state_dict': state}, path)
    pretrained = dict(type='Pretrained', checkpoint=str(path))
    constant = dict(type='Constant', layer='LayerNorm', val=0.25, bias=0.5)
    init_cfg = [pretrained, constant] if pretrained_first else \
        [constant, pretrained]
    model = MorphMLP(TINY, init_cfg=init_cfg)
    model.init_weights()
    # the Constant entry reached the key the checkpoint lacks ...
    assert torch.all(model.norm3.weight == 0.25)
    assert torch.all(model.norm3.bias == 0.5)
    # ... and the checkpoint won on the keys it holds
    torch.testing.assert_close(model.blocks1[0].norm1.weight,
                               source.blocks1[0].norm1.weight)
    torch.testing.assert_close(model.patch_embed1.proj1.weight,
                               source.patch_embed1.proj1.weight)
    assert model.is_init and model.init_cfg == init_cfg
    # a second call is a no-op, as for any mmengine module
    model.norm3.weight.data.fill_(3.)
    model.init_weights()
    assert torch.all(model.norm3.weight == 3.)


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
def test_shapes_in_input_errors_are_plain_ints_when_traced():
    """FLOP counters trace the model: sizes are 0-d tensors there."""
    with pytest.raises(ValueError) as err:
        torch.jit.trace(MorphMLP(TINY), torch.rand(1, 1, 32, 32))
    assert 'got an input with 1 channels (shape (1, 1, 32, 32))' in \
        str(err.value)
    with pytest.raises(ValueError) as err:
        torch.jit.trace(MorphMLP3D(TINY, num_frames=4),
                        torch.rand(1, 3, 6, 32, 32))
    assert 'a clip of 6 frames (shape (1, 3, 6, 32, 32))' in str(err.value)
    assert 'tensor(' not in str(err.value)


# ----------------------------------------------------------------- outputs
@pytest.mark.parametrize('hw', [(64, 64), (97, 131), (32, 48), (35, 35)])
def test_image_featmap_shapes(hw):
    model = MorphMLP(TINY, out_indices=(0, 1, 2, 3), out_type='featmap')
    outs = model(torch.rand(2, 3, *hw))
    for i, out in enumerate(outs):
        h, w = hw
        for _ in range(i + 2):
            h, w = (h + 1) // 2, (w + 1) // 2
        assert out.shape == (2, TINY['channels'][i], h, w)


def test_negative_out_indices_and_avg_featmap():
    model = MorphMLP(TINY, out_indices=(-1, 1))
    assert model.out_indices == (1, 3)
    outs = model(torch.rand(2, 3, 32, 32))
    assert [o.shape for o in outs] == [(2, 16), (2, 64)]
    assert not hasattr(model, 'norm0') and hasattr(model, 'norm1')


def test_avg_featmap_is_mean_of_normed_featmap():
    torch.manual_seed(0)
    model = MorphMLP(TINY, out_type='featmap').eval()
    avg = MorphMLP(TINY).eval()
    avg.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 40, 56)
    torch.testing.assert_close(avg(x)[0], model(x)[0].mean(dim=(2, 3)))


@pytest.mark.parametrize('frames', [1, 2, 8, 16, 32, 64])
def test_video_any_frame_count(frames):
    model = MorphMLP3D(TINY, num_frames=frames).eval()
    out = model(torch.rand(1, 3, frames, 32, 32))
    assert out.shape == (1, 64, (frames + 1) // 2, 1, 1)


def test_video_tiny_channels_at_8_frames():
    arch = dict(MorphMLP.arch_zoo['tiny'], depths=[1, 1, 1, 1])
    model = MorphMLP3D(arch, num_frames=8).eval()
    assert model.blocks1[0].t_fc.groups == 4  # largest divisor of 84 <= 4
    assert model(torch.rand(1, 3, 8, 64, 64)).shape == (1, 588, 4, 2, 2)


def test_video_multi_scale_and_temporal_off():
    model = MorphMLP3D(TINY, num_frames=4, temporal=False,
                       out_indices=(0, 3))
    assert not any('t_fc' in k for k in model.state_dict())
    outs = model(torch.rand(2, 3, 4, 32, 32))
    assert [o.shape for o in outs] == [(2, 8, 2, 8, 8), (2, 64, 2, 1, 1)]


def test_video_without_temporal_branch_is_per_frame():
    """temporal=False: each output frame depends on its own stem frames."""
    torch.manual_seed(0)
    model = MorphMLP3D(TINY, num_frames=8, temporal=False).eval()
    x = torch.rand(1, 3, 8, 32, 32)
    y = x.clone()
    y[:, :, 6:] = torch.rand(1, 3, 2, 32, 32)  # touches stem frames 3 (pad) 
    out_x, out_y = model(x), model(y)
    torch.testing.assert_close(out_x[:, :, :2], out_y[:, :, :2])
    assert not torch.allclose(out_x[:, :, 3], out_y[:, :, 3])


def test_video_order_blind_control():
    """temporal=False + stem_temporal_kernel=1: no frame mixing at all.

    Permuting the frames the stem samples (every second one) permutes the
    output frames the same way, so a clip-level (time-pooled) feature cannot
    tell a clip from its reverse; the official 3-tap stem can.
    """
    torch.manual_seed(0)
    blind = MorphMLP3D(TINY, num_frames=8, temporal=False,
                       stem_temporal_kernel=1).eval()
    assert blind.patch_embed1.proj1.kernel_size == (1, 3, 3)
    x = torch.rand(1, 3, 8, 32, 32)
    rev = x[:, :, [6, 1, 4, 3, 2, 5, 0, 7]]  # sampled slots: 6, 4, 2, 0
    out, out_rev = blind(x), blind(rev)
    torch.testing.assert_close(out_rev, out.flip(2), rtol=0, atol=1e-6)
    seeing = MorphMLP3D(TINY, num_frames=8, temporal=False).eval()
    assert not torch.allclose(seeing(rev).mean(2), seeing(x).mean(2),
                              atol=1e-4)
    with pytest.raises(ValueError, match='stem_temporal_kernel .* got 2'):
        MorphMLP3D(TINY, num_frames=8, stem_temporal_kernel=2)


@pytest.mark.parametrize('x,pattern', [
    (torch.rand(1, 3, 32, 32), r'\(B, 3, H, W\), got \(1, 3, 32, 32\)'),
    (torch.rand(1, 4, 16, 16, 16), 'in_channels=3'),
    (torch.rand(1, 3, 6, 32, 32), 'num_frames=8, got a clip of 6 frames'),
])
def test_video_bad_input(x, pattern):
    model = MorphMLP3D(TINY, num_frames=8)
    if x.dim() == 4:
        model = MorphMLP(TINY)
        x = torch.rand(1, 3, 4, 32, 32)
        pattern = r'expects an input of shape \(B, 3, H, W\)'
    with pytest.raises(ValueError, match=pattern):
        model(x)


def test_image_bad_channels():
    with pytest.raises(ValueError, match='in_channels=3, got an input with 1'):
        MorphMLP(TINY)(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize('bad', [0, 2.5, True])
def test_video_bad_num_frames(bad):
    with pytest.raises(ValueError, match='num_frames'):
        MorphMLP3D(TINY, num_frames=bad)


# ------------------------------------------------------------------ options
def test_frozen_stages():
    model = MorphMLP(TINY, frozen_stages=1, out_indices=(0, 1, 2, 3))
    model.train()
    for name, param in model.named_parameters():
        frozen = name.split('.')[0] in ('patch_embed1', 'patch_embed2',
                                        'blocks1', 'blocks2', 'norm0',
                                        'norm1')
        assert param.requires_grad != frozen, name
    assert not model.patch_embed1.norm1.training
    assert model.blocks3.training and model.patch_embed3.training


def test_norm_eval():
    model = MorphMLP3D(TINY, num_frames=4, norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    assert model.blocks1.training
    stats = model.patch_embed1.norm1.running_mean.clone()
    model(torch.rand(2, 3, 4, 32, 32))
    torch.testing.assert_close(model.patch_embed1.norm1.running_mean, stats)


@pytest.mark.parametrize('with_cp', [True, [True, False, True, False]])
def test_with_cp_same_outputs_and_grads(with_cp):
    torch.manual_seed(0)
    ref = MorphMLP3D(TINY, num_frames=4)
    cp = MorphMLP3D(TINY, num_frames=4, with_cp=with_cp)
    cp.load_state_dict(ref.state_dict())
    ref.eval(), cp.eval()  # BN in eval so both see the same statistics
    x = torch.rand(1, 3, 4, 32, 32)
    out_ref, out_cp = ref(x), cp(x)
    torch.testing.assert_close(out_cp, out_ref)
    out_ref.sum().backward()
    out_cp.sum().backward()
    for (name, a), (_, b) in zip(ref.named_parameters(),
                                 cp.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)
    stages = (with_cp, ) * 4 if with_cp is True else with_cp
    for i, flag in enumerate(stages):
        assert all(b.with_cp is flag for b in getattr(cp, f'blocks{i + 1}'))


def test_drop_path_schedule():
    model = MorphMLP(TINY, drop_path_rate=0.4)
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, 'drop_prob')
             else 0. for i in range(4) for b in getattr(model, f'blocks{i+1}')]
    assert rates == pytest.approx(torch.linspace(0, 0.4, 5).tolist())


def test_sync_bn_norm_cfg():
    model = MorphMLP(TINY, norm_cfg=dict(type='SyncBN'))
    assert type(model.patch_embed1.norm1).__name__ == 'SyncBatchNorm'


def test_layer_depth():
    model = MorphMLP(TINY)
    total = sum(TINY['depths']) + 2
    assert model.get_layer_depth('backbone.patch_embed1.proj1.weight',
                                 'backbone.') == (0, total)
    assert model.get_layer_depth('backbone.blocks3.1.fc.mlp_h.weight',
                                 'backbone.') == (4, total)
    assert model.get_layer_depth('backbone.patch_embed3.proj.weight',
                                 'backbone.') == (3, total)
    assert model.get_layer_depth('backbone.norm3.weight',
                                 'backbone.') == (total - 1, total)


def test_gradients_reach_every_parameter():
    model = MorphMLP3D(TINY, num_frames=4)
    # non-zero temporal weights so mlp_t receives gradients
    for block in model.blocks1:
        torch.nn.init.normal_(block.t_fc.mlp_t.weight, std=0.02)
    model(torch.rand(2, 3, 4, 33, 31)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


# --------------------------------------------------------------- full size
def test_full_size_official_resolutions_run():
    model = MorphMLP('tiny', out_indices=(0, 1, 2, 3),
                     out_type='featmap').eval()
    with torch.no_grad():
        for hw in [(256, 256), (512, 683)]:
            outs = model(torch.rand(1, 3, *hw))
            assert outs[-1].shape == (1, 588, (hw[0] + 31) // 32,
                                      (hw[1] + 31) // 32)


def test_full_size_flops():
    from tools.analysis.model_table import count_macs
    image = count_macs(MorphMLP('tiny').eval(), (1, 3, 224, 224)) / 1e9
    assert image == pytest.approx(3.96, rel=0.01)
    video = count_macs(
        MorphMLP3D('small', num_frames=16).eval(), (1, 3, 16, 224, 224))
    assert video / 1e9 == pytest.approx(66.0, rel=0.01)


@pytest.mark.parametrize('temporal_init,trains', [('official', False),
                                                  ('learnable', True)])
def test_temporal_init_gradients(temporal_init, trains):
    """The official init leaves MorphFC_t without gradient (LayerNorm after
    an all-ones projection); 'learnable' keeps the identity start and
    trains."""
    torch.manual_seed(0)
    model = MorphMLP3D(TINY, num_frames=8, temporal_init=temporal_init)
    x = torch.randn(2, 3, 8, 32, 32)
    t_fc = model.blocks2[0].t_fc
    assert torch.count_nonzero(t_fc(torch.randn(1, 4, 2, 2, 16))) == 0
    (model(x)**2).mean().backward()
    ref = model.blocks2[0].fc.mlp_c.weight.grad.abs().max()
    grad = t_fc.mlp_t.weight.grad.abs().max()
    if trains:
        assert grad > 1e-3 * ref
    else:
        assert grad < 1e-6 * ref
        assert t_fc.proj.weight.grad.abs().max() == 0


def test_bad_temporal_init():
    with pytest.raises(ValueError, match="temporal_init must be"):
        MorphMLP3D(TINY, num_frames=4, temporal_init='zeros')
