"""Our MorphFC / block fast paths against the plain algorithm, same weights.

``morphmlp_mm.models.plain`` runs the official step-by-step algorithm on the
parameters of our modules; every fast path (the fused MorphFC forward used
with autograd, the streamed no-grad block, gradient checkpointing) must stay
within 1e-5 of it in fp32. Every test runs twice: with our training products
in PyTorch's own GEMMs and in oneDNN's (``morphmlp_mm.models.gemm``), whatever
this machine's CPU would pick.
"""
import pytest
import torch
import torch.nn as nn
from device_check import KernelCount, OneDevicePerOp
from tiny_morph import ARCH, as_tuple, randomize, scaled_err

from morphmlp_mm import MorphMLP, MorphMLP3D
from morphmlp_mm.models import (MorphFCSpatial, MorphFCTemporal, chunk_mix,
                                morph_fc)
from morphmlp_mm.models import blocks, gemm
from morphmlp_mm.models.blocks import MorphBlock, Stem
from morphmlp_mm.models.plain import (PlainMorphFCSpatial,
                                      PlainMorphFCTemporal, build_plain,
                                      plain_window_mix)

ATOL = RTOL = 1e-5


@pytest.fixture(autouse=True, params=['aten', 'onednn'])
def gemm_library(request):
    """Every test once per library of our training products."""
    with gemm.use_gemm_backend(request.param):
        yield request.param


def assert_outputs_close(ours, plain):
    for a, b in zip(as_tuple(ours), as_tuple(plain)):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)


def grads(model, x, weight):
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    outs = as_tuple(model(x))
    loss = sum((o * w).sum() for o, w in zip(outs, weight))
    loss.backward()
    named = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return outs, x.grad, named


def check_grads(ours, plain, x, seed=None):
    """Outputs and gradients of ``ours`` equal those of ``plain``; with
    ``seed``, each model's step starts from that global seed (random
    layers draw the same). Returns the outputs of ``ours``."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        shapes = [o.shape for o in as_tuple(plain(x))]
    weight = [torch.randn(s, generator=gen) for s in shapes]
    results = []
    for model in (ours, plain):
        if seed is not None:
            torch.manual_seed(seed)
        results.append(grads(model, x, weight))
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = results
    assert_outputs_close(out_a, out_b)
    assert_grad_close(gx_a, gx_b, 'input')
    assert gp_a.keys() == gp_b.keys() and gp_a
    for name in gp_a:
        assert_grad_close(gp_a[name], gp_b[name], name)
    return out_a


def assert_grad_close(ours, plain, name):
    """Within 1e-5 of the gradient's own scale.

    Parameter gradients are sums over every token, so they are compared
    relative to the largest entry of the tensor (at least 1).
    """
    err = scaled_err(ours, plain)
    assert err <= ATOL, f'{name}: max error {err:.3g} of its scale'


# ------------------------------------------------------------------ modules
@pytest.mark.parametrize('hw', [(8, 8), (5, 7), (3, 9)])
@pytest.mark.parametrize('window', [(1, 4), (2, 2), (2, 4)])
@pytest.mark.parametrize('transpose', [False, True])
def test_chunk_mix_equals_plain_window_mix(hw, window, transpose):
    torch.manual_seed(0)
    C = window[0] * window[1] * 2
    x = torch.randn(2, 3, *hw, C)
    linear = nn.Linear(C, C)
    if transpose:
        ref = plain_window_mix(x.transpose(2, 3), linear,
                               window).transpose(2, 3)
    else:
        ref = plain_window_mix(x, linear, window)
    torch.testing.assert_close(chunk_mix(x, linear, window, transpose), ref,
                               atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('num_branches,window', [(3, (1, 4)), (3, (2, 4)),
                                                 (2, (2, 2)), (2, (3, 3))])
@pytest.mark.parametrize('shape', [(2, 3, 6, 8), (1, 2, 5, 7), (2, 1, 2, 3)])
@pytest.mark.parametrize('grad', [False, True])
def test_spatial_module_equals_plain(num_branches, window, shape, grad):
    C = window[0] * window[1] * 3
    ours = randomize(MorphFCSpatial(C, window, num_branches))
    plain = PlainMorphFCSpatial(ours)
    x = torch.randn(*shape, C, generator=torch.Generator().manual_seed(2))
    if grad:
        check_grads(ours, plain, x)
    else:
        with torch.no_grad():
            assert_outputs_close(ours(x), plain(x))


def test_spatial_module_without_bias():
    ours = randomize(MorphFCSpatial(12, (1, 4), 3, qkv_bias=False))
    plain = PlainMorphFCSpatial(ours)
    x = torch.randn(1, 2, 5, 6, 12)
    check_grads(ours, plain, x)


@pytest.mark.parametrize('grouped', [True, False])
@pytest.mark.parametrize('num_branches,window,shape', [
    (3, (1, 4), (2, 3, 8, 8)),  # unpadded, two clips
    (3, (2, 4), (2, 2, 5, 7)),  # padded H and W
    (2, (2, 2), (1, 3, 6, 5)),
])
def test_spatial_backward_paths_equal_plain(grouped, num_branches, window,
                                            shape, monkeypatch):
    """Both backwards of the hand-written mix (per-group GEMMs, or the
    stored branch output) give the plain algorithm's gradients."""
    calls = []

    def force(rows, channels, groups):
        calls.append((rows, channels, groups))
        return grouped

    monkeypatch.setattr(morph_fc._SpatialMixFunction, 'grouped',
                        staticmethod(force))
    C = window[0] * window[1] * 3
    ours = randomize(MorphFCSpatial(C, window, num_branches))
    x = torch.randn(*shape, C, generator=torch.Generator().manual_seed(3))
    check_grads(ours, PlainMorphFCSpatial(ours), x)
    # asked once per windowed branch, in the forward
    assert len(calls) == num_branches - 1


@pytest.mark.parametrize('num_branches,window,shape', [
    (3, (1, 4), (2, 3, 8, 8)),
    (3, (2, 4), (2, 2, 5, 7)),
])
def test_spatial_autograd_path_equals_plain(num_branches, window, shape,
                                            monkeypatch):
    """Where the hand-written mix steps aside (autocast, graph capture),
    autograd of the out-of-place mix (in-place ops only on the C-branch's
    fresh GEMM output) gives the plain algorithm's gradients."""
    monkeypatch.setattr(morph_fc._SpatialMixFunction, 'applies',
                        staticmethod(lambda x, channels: False))
    C = window[0] * window[1] * 3
    ours = randomize(MorphFCSpatial(C, window, num_branches))
    x = torch.randn(*shape, C, generator=torch.Generator().manual_seed(4))
    check_grads(ours, PlainMorphFCSpatial(ours), x)


def test_spatial_backward_grouped_where_rows_dominate():
    grouped = morph_fc._SpatialMixFunction.grouped
    # MorphMLP-S at 16 x 224 x 224: stage 1 (C 112, 14 groups, 25088 rows
    # per clip) uses per-group GEMMs, stage 2 (C 224, 28 groups, 6272 rows)
    # and stage 3 (C 392, 28 groups, 1568 rows) do not
    assert grouped(25088, 112, 14)
    assert not grouped(6272, 224, 28)
    assert not grouped(1568, 392, 28)


@pytest.mark.parametrize('frames', [1, 4, 5])
def test_temporal_module_equals_plain(frames):
    ours = randomize(MorphFCTemporal(12, frames))
    plain = PlainMorphFCTemporal(ours)
    check_grads(ours, plain, torch.randn(2, frames, 3, 2, 12))


# ------------------------------------------------------------ full models
def image_model(**kwargs):
    return randomize(MorphMLP(ARCH, out_indices=(0, 1, 2, 3),
                              out_type='featmap', **kwargs))


def video_model(**kwargs):
    return randomize(MorphMLP3D(ARCH, num_frames=8, **kwargs))


@pytest.mark.parametrize('build,shape', [
    (image_model, (2, 3, 64, 64)),   # no padding at any stage
    (image_model, (1, 3, 61, 47)),   # padded windows everywhere
    (video_model, (2, 3, 8, 64, 64)),
    (video_model, (1, 3, 8, 45, 70)),
])
@pytest.mark.parametrize('stream_tokens', [4096, 24])
@pytest.mark.parametrize('onednn', [True, False])
def test_inference_equals_plain(build, shape, stream_tokens, onednn,
                                monkeypatch):
    """The streamed no-grad path, in one chunk and in many small ones,
    with oneDNN's fused linears and with the plain-op fallback."""
    monkeypatch.setattr(MorphBlock, 'stream_tokens', stream_tokens)
    if not onednn:
        monkeypatch.setattr(morph_fc, '_HAS_ONEDNN_LINEAR', False)
    model = build().eval()
    plain = build_plain(model)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert_outputs_close(model(x), plain(x))


@pytest.mark.parametrize('build,shape', [(image_model, (2, 3, 40, 52)),
                                         (video_model, (2, 3, 8, 36, 28))])
@pytest.mark.parametrize('with_cp', [False, True])
@pytest.mark.parametrize('mlp_chunk,temporal_chunk', [(0, 0), (7, 10)])
def test_training_equals_plain(build, shape, with_cp, mlp_chunk,
                               temporal_chunk, monkeypatch):
    """Autograd path (train mode) and checkpointing: outputs and grads,
    with the channel MLP and MorphFC_t given to autograd (chunks 0), and
    with the MLP in chunks of 7 tokens
    (:class:`~morphmlp_mm.models.blocks._ResidualMlpFunction`: every block
    of these clips has more tokens, most counts with a partial last chunk)
    and MorphFC_t in tiles of 2 positions x 4 frames
    (:class:`~morphmlp_mm.models.blocks._TemporalMixFunction`, partial last
    tiles at the odd position counts); under with_cp the recompute of
    :class:`~morphmlp_mm.models.blocks._CheckpointFunction`.

    ``norm_eval`` keeps the stem's BatchNorm on its running statistics: with
    batch statistics the gradients of the conv biases in front of it are
    zero up to rounding noise, which no tolerance can compare.
    """
    monkeypatch.setattr(MorphBlock, 'train_mlp_chunk', mlp_chunk)
    monkeypatch.setattr(MorphBlock, 'train_temporal_chunk', temporal_chunk)
    calls, tiles = [], []
    real_run = blocks._ResidualMlpFunction.run
    monkeypatch.setattr(
        blocks._ResidualMlpFunction, 'run',
        staticmethod(lambda *args, output=True: calls.append(output) or
                     real_run(*args, output=output)))
    real_tiles = blocks._TemporalMixFunction.tiles
    monkeypatch.setattr(
        blocks._TemporalMixFunction, 'tiles',
        staticmethod(lambda *args: tiles.append(1) or real_tiles(*args)))
    model = build(with_cp=with_cp, norm_eval=True).train()
    plain = build_plain(model)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(4))
    check_grads(model, plain, x)
    blocks_run = sum(len(getattr(model, f'blocks{i}')) for i in range(1, 5))
    # with_cp: the first forward streams, the recompute runs the chunked
    # MLP up to fc1 (no output)
    assert calls == ([not with_cp] * blocks_run if mlp_chunk else [])
    # video: every block's MorphFC_t in tiles, forward and backward
    tiled = temporal_chunk and len(shape) == 5
    assert len(tiles) == (2 * blocks_run if tiled else 0)


def test_eval_with_grad_equals_plain():
    """Grad enabled in eval mode (e.g. saliency) takes the autograd path."""
    model = video_model().eval()
    check_grads(model, build_plain(model), torch.randn(1, 3, 8, 32, 32))


def test_no_temporal_branch_equals_plain():
    model = video_model(temporal=False).eval()
    x = torch.randn(1, 3, 8, 32, 40)
    with torch.no_grad():
        assert_outputs_close(model(x), build_plain(model)(x))


def test_plain_shares_parameters_and_keys():
    model = video_model()
    plain = build_plain(model)
    assert list(plain.state_dict()) == list(model.state_dict())
    ours = dict(model.named_parameters())
    for name, p in plain.named_parameters():
        assert p is ours[name]
    # Loading the state dict of ours into the plain twin is a no-op.
    plain.load_state_dict(model.state_dict())


def test_streaming_only_without_graph_or_randomness():
    block = MorphBlock(8, (1, 4), 3., frames=2, drop_path=0.1)
    x = torch.randn(1, 2, 4, 4, 8)
    block.eval()
    with torch.no_grad():
        assert block._can_stream(x)
    assert not block._can_stream(x)  # grad enabled, parameters need grad
    block.train()
    with torch.no_grad():
        assert not block._can_stream(x)  # drop path draws per sample


def test_no_streaming_off_the_cpu(monkeypatch):
    """The cache-sized chunks are a CPU design: a tensor on another device
    (here ``meta``, which runs every op's shape logic without a GPU) takes
    the whole-clip path, in a block and in the whole backbone."""
    def refuse(self, x):
        raise AssertionError('forward_streamed called off the CPU')

    block = MorphBlock(8, (1, 4), 3., frames=2).eval()
    x = torch.randn(2, 2, 8, 8, 8)
    with torch.no_grad():
        assert block._can_stream(x)
        assert not block._can_stream(x.to('meta'))
    monkeypatch.setattr(MorphBlock, 'forward_streamed', refuse)
    model = MorphMLP3D(ARCH, num_frames=4).to('meta').eval()
    with torch.no_grad(), OneDevicePerOp() as check:
        assert block.to('meta')(x.to('meta')).shape == x.shape
        outs = model(torch.empty(2, 3, 4, 64, 64, device='meta'))
    assert outs[-1].device.type == 'meta'
    assert check.devices == {torch.device('meta')}
    with torch.no_grad(), pytest.raises(AssertionError, match='off the CPU'):
        MorphBlock(8, (1, 4), 3., frames=2).eval()(x)


@pytest.mark.parametrize('with_cp', [False, True])
def test_training_paths_off_the_cpu(with_cp, monkeypatch):
    """A training step on another device than the CPU (``meta``: shapes
    and devices without a GPU) takes MorphFC_s's launch-lean mix in every
    block, with autograd, and no CPU-only path (the hand-written backward,
    the chunked MLP, the tiled MorphFC_t): a tensor made on the CPU inside
    that meets the device's tensors fails here (:class:`OneDevicePerOp`),
    forward or backward, as it would on a GPU."""
    lean = []
    mix_lean = MorphFCSpatial._mix_lean

    def spy(self, x):
        lean.append(tuple(x.shape))
        return mix_lean(self, x)

    def refuse(*args, **kwargs):
        raise AssertionError('a CPU-only training path ran off the CPU')

    monkeypatch.setattr(MorphFCSpatial, '_mix_lean', spy)
    monkeypatch.setattr(morph_fc._SpatialMixFunction, 'forward', refuse)
    monkeypatch.setattr(blocks._ResidualMlpFunction, 'forward', refuse)
    monkeypatch.setattr(blocks._TemporalMixFunction, 'forward', refuse)
    model = MorphMLP3D(ARCH, num_frames=4, drop_path_rate=0.1,
                       with_cp=with_cp).to('meta').train()
    with OneDevicePerOp() as check:
        outs = model(torch.empty(2, 3, 4, 64, 64, device='meta'))
        forward_ops = check.ops
        sum(o.mean() for o in outs).backward()
    assert check.ops > 2 * forward_ops  # the backward ran under the check
    assert check.devices == {torch.device('meta')}
    # every block, in forward order; with_cp recomputes each in backward
    maps = [(2, 2, 16, 16, 8), (2, 2, 8, 8, 16), (2, 2, 4, 4, 56),
            (2, 2, 4, 4, 56), (2, 2, 2, 2, 98)]
    assert lean == (maps + maps[::-1] if with_cp else maps)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.device.type == 'meta', name


@pytest.mark.parametrize('num_branches,window,shape', [
    (3, (1, 4), (2, 3, 8, 8)),   # unpadded, two clips
    (3, (2, 4), (2, 2, 5, 7)),   # padded H and W
    (3, (1, 4), (1, 1, 6, 7)),   # an image, padded W
    (2, (2, 2), (1, 3, 6, 5)),
    (2, (3, 3), (2, 1, 2, 3)),   # fewer tokens than channels
])
@pytest.mark.parametrize('bias', [True, False])
def test_spatial_lean_path_equals_plain(num_branches, window, shape, bias,
                                        monkeypatch):
    """The launch-lean mix (the default off the CPU, forced here): branch
    means from the window rows, the real tokens only where the map is
    padded; outputs and gradients of the plain algorithm."""
    monkeypatch.setattr(MorphFCSpatial, 'launch_lean', True)
    monkeypatch.setattr(morph_fc._SpatialMixFunction, 'applies',
                        staticmethod(lambda *args: pytest.fail('not lean')))
    C = window[0] * window[1] * 3
    ours = randomize(MorphFCSpatial(C, window, num_branches, qkv_bias=bias))
    plain = PlainMorphFCSpatial(ours)
    x = torch.randn(*shape, C, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert_outputs_close(ours(x), plain(x))
    check_grads(ours, plain, x)


def test_lean_path_trains_after_inference_mode(monkeypatch):
    """The mask of real tokens that a padded map needs is kept per map
    geometry, but not one made under ``torch.inference_mode`` (a test
    loop's): autograd refuses such tensors in a later training step."""
    monkeypatch.setattr(MorphFCSpatial, 'launch_lean', True)
    monkeypatch.setattr(morph_fc, '_REAL_TOKEN_MASKS', {})
    ours = randomize(MorphFCSpatial(24, (2, 4)))
    x = torch.randn(1, 2, 5, 7, 24)
    with torch.inference_mode():
        ours(x)
    assert not morph_fc._REAL_TOKEN_MASKS
    check_grads(ours, PlainMorphFCSpatial(ours), x)
    assert len(morph_fc._REAL_TOKEN_MASKS) == 2  # one per windowed branch


@pytest.mark.parametrize('with_cp', [False, True])
def test_training_lean_path_equals_plain(with_cp, monkeypatch):
    """A whole video model with the launch-lean mix in every block (padded
    maps at 36 x 28), against the plain algorithm."""
    monkeypatch.setattr(MorphFCSpatial, 'launch_lean', True)
    model = video_model(with_cp=with_cp, norm_eval=True).train()
    x = torch.randn(2, 3, 8, 36, 28,
                    generator=torch.Generator().manual_seed(7))
    check_grads(model, build_plain(model), x)


@pytest.mark.parametrize('env,attr,device,lean', [
    ('', None, 'cpu', False), ('', None, 'meta', True),
    ('auto', None, 'meta', True), ('on', None, 'cpu', True),
    ('off', None, 'meta', False), ('ON ', None, 'cpu', True),
    ('on', False, 'cpu', False), ('off', True, 'meta', True)])
def test_launch_lean_setting(env, attr, device, lean, monkeypatch):
    """``MORPHMLP_LAUNCH_LEAN`` (auto / on / off, any case) chooses where
    the launch-lean mix runs; a module's ``launch_lean`` overrides it."""
    monkeypatch.setenv('MORPHMLP_LAUNCH_LEAN', env)
    calls = []
    mix_lean = MorphFCSpatial._mix_lean
    monkeypatch.setattr(MorphFCSpatial, '_mix_lean',
                        lambda self, x: calls.append(1) or mix_lean(self, x))
    fc = MorphFCSpatial(8, (1, 4)).to(device)
    fc.launch_lean = attr
    with torch.no_grad():
        fc(torch.zeros(1, 2, 4, 4, 8, device=device))
    assert calls == ([1] if lean else [])


def test_launch_lean_setting_refuses_other_values(monkeypatch):
    monkeypatch.setenv('MORPHMLP_LAUNCH_LEAN', 'sometimes')
    with pytest.raises(ValueError, match="MORPHMLP_LAUNCH_LEAN.*'auto', "
                       "'on', 'off'.*'sometimes'"):
        MorphFCSpatial(8, (1, 4))(torch.zeros(1, 2, 4, 4, 8))


@pytest.mark.parametrize('step', ['inference', 'training'])
def test_fewer_kernels_than_plain_off_the_cpu(step):
    """Off the CPU a step launches no more kernels than the plain
    algorithm's (counted on ``meta``: every op but views and allocations).
    At the configs' 8 clips per GPU the CPU that queues the kernels sets
    the pace of a step, so their count is what the speed follows there;
    with the pooling from window sums, which saves memory traffic on the
    CPU, a training step launched about 1.5x the plain algorithm's."""
    model = MorphMLP3D(ARCH, num_frames=4).to('meta').train()
    plain = build_plain(model)
    x = torch.empty(8, 3, 4, 64, 64, device='meta')
    totals = []
    for m in (model, plain):
        with torch.set_grad_enabled(step == 'training'), \
                KernelCount() as count:
            outs = m(x)
            if step == 'training':
                sum(o.mean() for o in outs).backward()
        model.zero_grad(set_to_none=True)
        totals.append(count.total)
    assert 0 < totals[0] <= totals[1], totals


@pytest.mark.parametrize('kind', ['plain', 'gelu', 'residual'])
def test_fused_linear_matches_plain_ops(kind, monkeypatch):
    """oneDNN's fused matmul (no grad, fp32 CPU) equals the plain ops; with
    autograd the plain ops run and gradients flow."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 37, 24, generator=gen)
    w, b = torch.randn(40, 24, generator=gen), torch.randn(40, generator=gen)
    res = torch.randn(2, 37, 40, generator=gen)
    kwargs = dict(gelu=kind == 'gelu',
                  residual=res if kind == 'residual' else None)
    ref = nn.functional.linear(x, w, b)
    ref = nn.functional.gelu(ref) if kind == 'gelu' else ref
    ref = ref + res if kind == 'residual' else ref
    calls = []
    if morph_fc._HAS_ONEDNN_LINEAR:
        real = morph_fc._onednn_ok
        monkeypatch.setattr(morph_fc, '_onednn_ok',
                            lambda t: calls.append(real(t)) or real(t))
    with torch.no_grad():
        out = morph_fc.fused_linear(x, w, b, **kwargs)
    assert out.shape == (2, 37, 40) and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    if morph_fc._HAS_ONEDNN_LINEAR:
        assert calls == [True]  # the fused oneDNN op ran
    w.requires_grad_(True)
    morph_fc.fused_linear(x, w, b, **kwargs).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='cannot be combined'):
        morph_fc.fused_linear(x, w, b, gelu=True, residual=res)


@pytest.mark.parametrize('video,shape', [(False, (2, 3, 30, 22)),
                                         (True, (1, 3, 6, 30, 22))])
def test_stem_fused_inference_equals_layers(video, shape):
    """BN folded into the convolutions, GELU in oneDNN's epilogue: equal to
    the layer-by-layer stem; training, grad mode and the plain twin keep
    the layers (whose calls the benchmark's GEMM floor records)."""
    stem = randomize(Stem(3, 16, video=video)).eval()
    plain = build_plain(stem)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        fused = stem._can_fuse(x)
        out, ref = stem(x), plain(x)
        assert not plain._can_fuse(x)
    assert fused == blocks._HAS_ONEDNN_CONV
    assert out.shape == ref.shape and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)
    assert not stem._can_fuse(x)  # grad enabled
    stem.train()
    with torch.no_grad():
        assert not stem._can_fuse(x)  # BN on batch statistics


def test_with_cp_first_forward_streams(monkeypatch):
    """Under with_cp the first forward runs without autograd and streams
    (once per block); the backward recomputes on the autograd path. With
    an active DropPath it never streams (its masks must match)."""
    calls = []
    real = MorphBlock.forward_streamed
    monkeypatch.setattr(MorphBlock, 'forward_streamed',
                        lambda self, x: calls.append(1) or real(self, x))
    x = torch.randn(1, 3, 8, 32, 32)
    model = video_model(with_cp=True, norm_eval=True).train()
    n_blocks = sum(isinstance(m, MorphBlock) for m in model.modules())
    check_grads(model, build_plain(model), x)
    assert len(calls) == n_blocks
    calls.clear()
    model = video_model(with_cp=True, drop_path_rate=0.1).train()
    model(x.requires_grad_(True)).sum().backward()
    # the stochastic-depth schedule starts at 0: only that block streams
    without_drop = [isinstance(m.drop_path, nn.Identity)
                    for m in model.modules() if isinstance(m, MorphBlock)]
    assert without_drop.count(False) >= 1
    assert len(calls) == without_drop.count(True)


@pytest.mark.parametrize('shape', [(3, 4, 6, 5, 24), (1, 2, 7, 9, 24)])
def test_chunked_mlp_with_drop_path_equals_layers(shape, monkeypatch):
    """DropPath enters the chunked MLP as the per-sample factor the module
    draws itself: same seed, same samples dropped, same outputs and
    gradients as the layer-by-layer block."""
    block = randomize(MorphBlock(24, (1, 4), 3., frames=shape[1],
                                 drop_path=0.5)).train()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(6))
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    results = []
    for chunk in (0, 16):
        monkeypatch.setattr(MorphBlock, 'train_mlp_chunk', chunk)
        torch.manual_seed(3)
        results.append(grads(block, x, [weight]))
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = results
    assert_outputs_close(out_a, out_b)
    assert_grad_close(gx_b, gx_a, 'input')
    for name in gp_a:
        assert_grad_close(gp_b[name], gp_a[name], name)
    with torch.no_grad():  # the draws did drop paths
        assert not torch.allclose(out_b[0], block.eval()(x), atol=1e-3)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('prob', [0.1, 0.5])
def test_path_scale_is_drop_paths_draw(dtype, prob):
    """The per-sample factor a block multiplies its branches by is exactly
    what mmcv's DropPath multiplies a tensor of the branch's batch and dtype
    by, draw for draw (same seed, same samples dropped)."""
    from mmcv.cnn.bricks import DropPath
    block = MorphBlock(8, (1, 4), 3., drop_path=prob).train()
    branch = torch.randn(16, 2, 3, 4, 8).to(dtype)
    for seed in range(5):
        torch.manual_seed(seed)
        scale = block._path_scale(branch)
        torch.manual_seed(seed)
        ref = DropPath(prob)(torch.ones(16, 1, 1, 1, 1, dtype=dtype))
        assert scale.dtype == dtype and torch.equal(scale, ref)
    assert block.eval()._path_scale(branch) is None
    assert MorphBlock(8, (1, 4), 3.).train()._path_scale(branch) is None


def test_block_residuals_equal_drop_path_modules():
    """A training block adds its MorphFC_s and MLP branches times the
    DropPath factor; the plain block calls the module on each branch. Same
    seed: the same outputs and gradients (and paths were dropped)."""
    model = video_model(drop_path_rate=0.5, norm_eval=True).train()
    x = torch.randn(4, 3, 8, 32, 32,
                    generator=torch.Generator().manual_seed(8))
    outs = check_grads(model, build_plain(model), x, seed=5)
    with torch.no_grad():
        assert not torch.allclose(outs[-1], model.eval()(x)[-1], atol=1e-3)


@pytest.mark.parametrize('drop_path', [0., 0.5])
def test_checkpointed_block_equals_block(drop_path, monkeypatch):
    """with_cp through :class:`~morphmlp_mm.models.blocks._CheckpointFunction`
    (the recompute stops after fc1): same outputs and gradients as the
    block without checkpointing, DropPath included (the recompute replays
    the random state: same seed, same samples dropped), and the recompute
    never runs the MLP's output GEMM. MorphFC_t runs in tiles of 4
    positions in both."""
    monkeypatch.setattr(MorphBlock, 'train_mlp_chunk', 16)
    monkeypatch.setattr(MorphBlock, 'train_temporal_chunk', 12)
    shape = (4, 3, 6, 5, 24)
    block = randomize(MorphBlock(24, (1, 4), 3., frames=3,
                                 drop_path=drop_path)).train()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(8))
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    fc2 = []
    block.mlp.fc2.weight.register_hook(lambda g: fc2.append(1))
    real_run = blocks._ResidualMlpFunction.run
    runs = []
    monkeypatch.setattr(
        blocks._ResidualMlpFunction, 'run',
        staticmethod(lambda *args, output=True: runs.append(output) or
                     real_run(*args, output=output)))
    results = []
    for with_cp in (False, True):
        block.with_cp = with_cp
        torch.manual_seed(3)
        results.append(grads(block, x, [weight]))
    assert runs == [True, False]  # layer path, then the recompute
    assert fc2 == [1, 1]  # fc2's gradient comes from the function
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = results
    assert_outputs_close(out_b, out_a)
    assert_grad_close(gx_b, gx_a, 'input')
    assert gp_a.keys() == gp_b.keys()
    for name in gp_a:
        assert_grad_close(gp_b[name], gp_a[name], name)
    if drop_path:  # the seed mattered: another one drops other samples
        torch.manual_seed(4)
        with torch.no_grad():
            assert not torch.allclose(block(x), out_a[0], atol=1e-3)


def test_checkpointed_block_refuses_autograd_grad(monkeypatch):
    """Like reentrant checkpointing, with_cp accumulates the block's
    gradients inside ``backward()``; ``torch.autograd.grad`` gets a clear
    error instead of silently missing gradients."""
    monkeypatch.setattr(MorphBlock, 'train_mlp_chunk', 16)
    block = MorphBlock(24, (1, 4), 3., frames=2, with_cp=True).train()
    x = torch.randn(1, 2, 6, 8, 24, requires_grad=True)
    with pytest.raises(RuntimeError, match='torch.autograd.grad'):
        torch.autograd.grad(block(x).sum(), x)


def _temporal_block(shape, drop_path=0., bias=True):
    block = randomize(MorphBlock(24, (1, 4), 3., frames=shape[1],
                                 drop_path=drop_path)).train()
    if not bias:
        block.t_fc.mlp_t.register_parameter('bias', None)
    return block


@pytest.mark.parametrize('shape,chunk', [((3, 4, 6, 5, 24), 12),
                                         ((1, 2, 7, 9, 24), 5),
                                         ((2, 3, 4, 4, 24), 1)])
@pytest.mark.parametrize('bias', [True, False])
def test_temporal_tiles_equal_layers(shape, chunk, bias, monkeypatch):
    """MorphFC_t and both LayerNorms in tiles of positions
    (:class:`~morphmlp_mm.models.blocks._TemporalMixFunction`; 3 positions
    with a partial last tile, 2 positions, 1 position) give the outputs and
    gradients of autograd of the layers, DropPath of MorphFC_s included,
    with and without the bias of ``mlp_t``."""
    block = _temporal_block(shape, drop_path=0.5, bias=bias)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(6))
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    results = []
    for temporal_chunk in (0, chunk):
        monkeypatch.setattr(MorphBlock, 'train_temporal_chunk',
                            temporal_chunk)
        assert blocks._TemporalMixFunction.applies(
            block, x) == bool(temporal_chunk)
        torch.manual_seed(3)
        results.append(grads(block, x, [weight]))
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = results
    assert_outputs_close(out_b, out_a)
    assert_grad_close(gx_b, gx_a, 'input')
    assert gp_a.keys() == gp_b.keys()
    assert ('t_fc.mlp_t.bias' in gp_a) == bias
    for name in gp_a:
        assert_grad_close(gp_b[name], gp_a[name], name)


def test_temporal_tiles_store_less(monkeypatch):
    """The tiled MorphFC_t keeps one block input's worth of activations
    less than autograd of the layers (not ``mlp_t``'s permuted input)."""
    shape = (2, 4, 8, 6, 24)
    block = _temporal_block(shape)
    x = torch.randn(shape, requires_grad=True)
    stored = []
    for chunk in (0, 10):
        monkeypatch.setattr(MorphBlock, 'train_temporal_chunk', chunk)
        storages = {}

        def pack(t):
            if t.numel() >= x.numel() // 2:  # activations, not weights
                storage = t.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            block._forward_mixing(x)
        stored.append(sum(storages.values()))
    layers, tiled = stored
    assert layers - tiled == x.numel() * x.element_size()


@pytest.mark.parametrize('function,chunk,add_dropout', [
    ('_ResidualMlpFunction', 'train_mlp_chunk',
     lambda block: setattr(block.mlp, 'drop', nn.Dropout(0.1))),
    ('_TemporalMixFunction', 'train_temporal_chunk',
     lambda block: setattr(block.t_fc, 'proj_drop', nn.Dropout(0.1))),
])
def test_chunked_paths_only_where_they_apply(function, chunk, add_dropout,
                                             monkeypatch):
    """The chunked MLP and the tiled MorphFC_t: not under autocast, not for
    no-grad calls, not with an active dropout in what they compute, not
    for clips of at most one chunk; the tiles not without MorphFC_t."""
    block = randomize(MorphBlock(24, (1, 4), 3., frames=2)).train()
    x = torch.randn(1, 2, 6, 8, 24, requires_grad=True)
    applies = getattr(blocks, function).applies
    monkeypatch.setattr(MorphBlock, chunk, 16)
    assert applies(block, x)
    with torch.no_grad():
        assert not applies(block, x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not applies(block, x)
    monkeypatch.setattr(MorphBlock, chunk, 96)
    assert not applies(block, x)
    monkeypatch.setattr(MorphBlock, chunk, 16)
    image_block = MorphBlock(24, (1, 4), 3.)
    assert applies(image_block, x) == (function == '_ResidualMlpFunction')
    add_dropout(block)
    assert not applies(block, x)


@pytest.mark.parametrize('path', ['layers', 'tiles', 'streamed'])
def test_block_refuses_another_frame_count(path, monkeypatch):
    """A block built for 2 frames refuses a 3-frame input on every path
    with the parameter and both counts in the message. With 24 channels,
    3 frames would fit ``mlp_t``'s 24 x 24 weight with 3 channel groups
    instead of 2: without the check the tiled path ran, silently wrong."""
    monkeypatch.setattr(MorphBlock, 'train_temporal_chunk',
                        16 if path == 'tiles' else 0)
    block = _temporal_block((1, 2, 6, 8, 24))
    x = torch.randn(1, 3, 6, 8, 24, requires_grad=path != 'streamed')
    if path == 'tiles':
        assert blocks._TemporalMixFunction.applies(block, x)
    with torch.set_grad_enabled(path != 'streamed'):
        block.train(path != 'streamed')
        with pytest.raises(ValueError, match=r'frames=2.*\(1, 3, 6, 8, 24\)'):
            block(x)
