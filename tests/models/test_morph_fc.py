"""MorphFC token mixing against naive references."""
import math

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from morphmlp_mm.models import (MorphFCSpatial, MorphFCTemporal, chunk_mix,
                                default_chunk_window, temporal_groups)


@pytest.mark.parametrize('channels,frames,groups', [
    (112, 8, 8), (112, 16, 16), (392, 16, 14), (392, 8, 8), (784, 16, 16),
    (84, 8, 7), (588, 8, 7), (168, 32, 28), (84, 1, 1), (7, 64, 7)])
def test_temporal_groups(channels, frames, groups):
    assert temporal_groups(channels, frames) == groups


def test_temporal_groups_rejects_nonpositive():
    with pytest.raises(ValueError, match='frames'):
        temporal_groups(8, 0)


@pytest.mark.parametrize('length,size,window', [(14, 56, (1, 14)),
                                                (28, 28, (1, 28)),
                                                (28, 14, (2, 14)),
                                                (49, 7, (7, 7)),
                                                (3, 56, (1, 3))])
def test_default_chunk_window(length, size, window):
    assert default_chunk_window(length, size) == window


def naive_chunk_mix(x, linear, window, transpose):
    """Loop over windows and groups; zero-pad the map explicitly."""
    if transpose:
        return naive_chunk_mix(x.transpose(2, 3), linear, window,
                               False).transpose(2, 3)
    B, T, H, W, C = x.shape
    r, c = window
    L = r * c
    S = C // L
    Hp, Wp = math.ceil(H / r) * r, math.ceil(W / c) * c
    xp = x.new_zeros(B, T, Hp, Wp, C)
    xp[:, :, :H, :W] = x
    out = torch.zeros_like(xp)
    for i in range(0, Hp, r):
        for j in range(0, Wp, c):
            win = xp[:, :, i:i + r, j:j + c]  # B T r c C
            for g in range(L):
                vec = win[..., g * S:(g + 1) * S].reshape(B, T, L * S)
                res = linear(vec).reshape(B, T, r, c, S)
                out[:, :, i:i + r, j:j + c, g * S:(g + 1) * S] = res
    return out[:, :, :H, :W]


def official_flat_chunk_mix(x, linear, L):
    """The official W-branch: chunks of L consecutive row-major tokens."""
    B, T, H, W, C = x.shape
    S = C // L
    y = x.reshape(B, T, H * W // L, L, L, S).permute(0, 1, 2, 4, 3, 5)
    y = linear(y.reshape(B, T, H * W // L, L, L * S))
    y = y.reshape(B, T, H * W // L, L, L, S).permute(0, 1, 2, 4, 3, 5)
    return y.reshape(B, T, H, W, C)


@pytest.mark.parametrize('hw', [(4, 6), (5, 7), (3, 3), (8, 4)])
@pytest.mark.parametrize('window', [(1, 2), (2, 2), (1, 4), (3, 1)])
@pytest.mark.parametrize('transpose', [False, True])
def test_chunk_mix_matches_naive_loops(hw, window, transpose):
    torch.manual_seed(0)
    C = window[0] * window[1] * 3
    x = torch.randn(2, 3, *hw, C)
    linear = nn.Linear(C, C)
    expected = naive_chunk_mix(x, linear, window, transpose)
    got = chunk_mix(x, linear, window, transpose)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('size,length', [(56, 14), (28, 28), (14, 28),
                                         (7, 49)])
def test_windows_equal_official_flat_chunks_at_224(size, length):
    """At the 224 reference the windows are the official flat chunks."""
    torch.manual_seed(0)
    C = length * 2
    x = torch.randn(1, 2, size, size, C)
    linear = nn.Linear(C, C)
    window = default_chunk_window(length, size)
    torch.testing.assert_close(
        chunk_mix(x, linear, window, transpose=False),
        official_flat_chunk_mix(x, linear, length))
    torch.testing.assert_close(
        chunk_mix(x, linear, window, transpose=True),
        official_flat_chunk_mix(x.transpose(2, 3), linear,
                                length).transpose(2, 3))


def test_padding_acts_like_truncated_weights():
    """A padded window equals the Linear restricted to the real tokens."""
    torch.manual_seed(0)
    C, L = 8, 4  # groups 4, S = 2
    x = torch.randn(1, 1, 1, 3, C)  # W = 3, window (1, 4) pads one token
    linear = nn.Linear(C, C)
    out = chunk_mix(x, linear, (1, 4), transpose=False)
    S = C // L
    for g in range(L):
        vec = x[0, 0, 0, :, g * S:(g + 1) * S].reshape(-1)  # 3 tokens * S
        w = linear.weight[:3 * S, :3 * S]
        ref = w @ vec + linear.bias[:3 * S]
        torch.testing.assert_close(
            out[0, 0, 0, :, g * S:(g + 1) * S].reshape(-1), ref)


def test_spatial_reweighting_by_hand():
    torch.manual_seed(0)
    m = MorphFCSpatial(8, (1, 4), num_branches=3)
    x = torch.randn(2, 1, 2, 4, 8)
    h = chunk_mix(x, m.mlp_h, (1, 4), True)
    w = chunk_mix(x, m.mlp_w, (1, 4), False)
    c = m.mlp_c(x)
    a = m.reweight((h + w + c).mean(dim=(1, 2, 3))).reshape(2, 8, 3)
    a = a.softmax(-1)
    ref = m.proj(h * a[:, None, None, None, :, 0] +
                 w * a[:, None, None, None, :, 1] +
                 c * a[:, None, None, None, :, 2])
    torch.testing.assert_close(m(x), ref)


def test_spatial_two_branch_form():
    m = MorphFCSpatial(16, (2, 2), num_branches=2)
    assert not hasattr(m, 'mlp_w')
    assert m.reweight.fc2.out_features == 32
    assert m(torch.randn(1, 2, 3, 5, 16)).shape == (1, 2, 3, 5, 16)


def test_spatial_rejects_indivisible_channels():
    with pytest.raises(ValueError, match='channels=30.*chunk length 4'):
        MorphFCSpatial(30, (1, 4))
    with pytest.raises(ValueError, match='num_branches'):
        MorphFCSpatial(8, (1, 4), num_branches=4)


def test_temporal_mixing_by_hand():
    torch.manual_seed(0)
    m = MorphFCTemporal(12, frames=4)  # groups 4, S = 3
    x = torch.randn(1, 4, 2, 3, 12)
    out = m(x)
    ref = torch.empty_like(x)
    for g in range(4):
        vec = x[..., g * 3:(g + 1) * 3].permute(0, 2, 3, 1, 4).reshape(
            1, 2, 3, 12)  # frame-major
        res = m.mlp_t(vec).reshape(1, 2, 3, 4, 3).permute(0, 3, 1, 2, 4)
        ref[..., g * 3:(g + 1) * 3] = res
    torch.testing.assert_close(out, m.proj(ref))


def test_temporal_official_init_is_identity_skip():
    m = MorphFCTemporal(16, frames=8)
    m.reset_official()
    assert torch.all(m.mlp_t.weight == 0) and torch.all(m.proj.weight == 1)
    assert torch.count_nonzero(m(torch.randn(1, 8, 2, 2, 16))) == 0


def test_frame_mean_equals_mean_with_a_view_gradient():
    """The frame mean of the reweighting is ``x.mean(1)`` (bitwise), and
    its gradient reaches ``x`` as a stride-0 expansion, not a copy."""
    from morphmlp_mm.models.morph_fc import frame_mean
    x = torch.randn(2, 5, 3, 4, 6, requires_grad=True)
    y = frame_mean(x)
    assert torch.equal(y, x.mean(1))
    g = torch.randn_like(y)
    (gx, ) = torch.autograd.grad(y, x, g)
    assert gx.stride(1) == 0
    assert torch.allclose(gx, (g / 5).unsqueeze(1).expand_as(x))


class _CopiedBytes(TorchDispatchMode):
    """Bytes written by copy ops (casts, permutation copies)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in ('_to_copy', 'clone', 'copy_'):
            self.bytes += out.numel() * out.element_size()
        return out


def _lean(module: MorphFCSpatial) -> MorphFCSpatial:
    module.launch_lean = True  # the mix of devices other than the CPU
    return module


@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('module,copies', [
    (lambda: MorphFCSpatial(112, (1, 14), 3), 3),   # cast + 2 branch windows
    (lambda: _lean(MorphFCSpatial(112, (1, 14), 3)), 3),
    (lambda: MorphFCTemporal(112, 4), 2)],          # cast-permute + back
    ids=['spatial', 'spatial-lean', 'temporal'])
def test_autocast_casts_float32_input_once(module, copies, grad):
    """Under autocast a float32 input (CUDA's LayerNorm gives one) is cast
    once, in the pass that lays it out: copies total ``copies`` x the input
    in bf16 (plus the weights' casts), where casting before each product
    wrote float32 permutations and a cast per product (about twice that);
    the result stays within bf16 rounding of float32."""
    torch.manual_seed(0)
    mod = module()
    x = torch.randn(2, 4, 28, 28, 112, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        ref = mod(x)
        counter = _CopiedBytes()
        with counter, torch.autocast('cpu', dtype=torch.bfloat16):
            out = mod(x)
    assert out.dtype == torch.bfloat16
    weights = sum(p.numel() * 2 for p in mod.parameters())
    assert counter.bytes <= copies * x.numel() * 2 + 2 * weights + 2**16
    err = ((out.float() - ref).norm() / ref.norm()).item()
    assert err < 1e-2, err
    if grad:
        out.float().sum().backward()
        assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
