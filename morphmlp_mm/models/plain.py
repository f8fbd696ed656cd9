"""A plain reshape/permute implementation of MorphFC, run on our weights.

This is the reference that :mod:`morphmlp_mm.models.morph_fc` and the fast
paths of :class:`~morphmlp_mm.models.blocks.MorphBlock` are measured and
tested against (``tools/analysis/benchmark.py``,
``tests/models/test_plain_equivalence.py``). It follows the algorithm of the
official code (MTLab/MorphMLP ``MorphFC_S``, ``MorphFC_S2``, ``MorphFC_T``
and ``PermutatorBlock``; written here, not copied) step by step, one tensor
op at a time:

* H-branch: transpose H and W, cut the map into chunks, permute every
  (chunk, group) into a vector, apply ``mlp_h``, permute back, transpose
  back. W-branch: the same without the transposes. C-branch: ``mlp_c``.
* ``a = mean(h + w + c)`` over (T, H, W), the reweighting Mlp, a softmax over
  the branches, ``h * a0 + w * a1 + c * a2``, then ``proj``.
* MorphFC_t: permute (T, S_t) of every (position, group) into a vector,
  ``mlp_t``, permute back, ``proj``.
* Block: ``xt = x + t_fc(t_norm1(x))``, ``x = x + fc(norm1(xt))``,
  ``x = x + mlp(norm2(x))``.
* Downsampling: channels-first Conv3d (Conv2d for images), LayerNorm.

The chunks are the windows of :mod:`~morphmlp_mm.models.morph_fc` (a run of
L row-major tokens at the 224 reference, zero padding for other sizes), so
outputs agree with ours at every size; at 224 x 224 the chunks are exactly
the official flat chunks.

:func:`build_plain` returns a model that shares every parameter, buffer and
other module with the model it is given and runs the blocks and the
downsampling layers with the plain forward, so both can be timed on the same
weights::

    model = MorphMLP3D('small').eval()
    plain = build_plain(model)       # same parameters, plain algorithm
    torch.testing.assert_close(plain(x), model(x), rtol=0, atol=1e-5)
"""
import copy
import math
from collections import OrderedDict
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from .blocks import Downsample, MorphBlock, Stem
from .morph_fc import MorphFCSpatial, MorphFCTemporal


def plain_window_mix(x: torch.Tensor, linear: nn.Linear,
                     window: Tuple[int, int]) -> torch.Tensor:
    """Mix the ``r x c`` windows of a (B, T, H, W, C) map, official style.

    Pads H and W to window multiples, permutes each (window, group) into a
    vector of L * S = C values (token-major, channel-minor), applies
    ``linear`` and undoes every step.
    """
    B, T, H, W, C = x.shape
    r, c = window
    groups = r * c
    S = C // groups
    Hp, Wp = math.ceil(H / r) * r, math.ceil(W / c) * c
    if (Hp, Wp) != (H, W):
        x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
    nh, nw = Hp // r, Wp // c
    y = x.reshape(B, T, nh, r, nw, c, groups, S)
    y = y.permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(B, T, nh, nw, groups, C)
    y = linear(y)
    y = y.reshape(B, T, nh, nw, groups, r, c, S)
    y = y.permute(0, 1, 2, 5, 3, 6, 4, 7).reshape(B, T, Hp, Wp, C)
    return y[:, :, :H, :W]


class PlainMorphFCSpatial(nn.Module):
    """MorphFC_s with the plain algorithm, on the Linears of ``ref``.

    Args:
        ref (MorphFCSpatial): The module whose layers (and therefore
            parameters) are used; they are registered here under the same
            names, so state dicts are interchangeable.
    """

    def __init__(self, ref: MorphFCSpatial) -> None:
        super().__init__()
        self.window = ref.window
        self.num_branches = ref.num_branches
        self.mlp_h = ref.mlp_h
        if ref.num_branches == 3:
            self.mlp_w = ref.mlp_w
        self.mlp_c = ref.mlp_c
        self.reweight = ref.reweight
        self.proj = ref.proj
        self.proj_drop = ref.proj_drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H, W, C = x.shape
        if self.num_branches == 3:
            # H: windows of the transposed map (chunks run down columns).
            h = plain_window_mix(x.transpose(2, 3), self.mlp_h,
                                 self.window).transpose(2, 3)
            w = plain_window_mix(x, self.mlp_w, self.window)
            branches = [h, w, self.mlp_c(x)]
        else:
            # Official stage-4 form: mlp_h over row-major windows, mlp_c.
            branches = [plain_window_mix(x, self.mlp_h, self.window),
                        self.mlp_c(x)]
        total = branches[0]
        for branch in branches[1:]:
            total = total + branch
        a = total.permute(0, 4, 1, 2, 3).flatten(2).mean(2)
        a = self.reweight(a).reshape(B, C, self.num_branches)
        a = a.permute(2, 0, 1).softmax(dim=0)
        a = a.unsqueeze(2).unsqueeze(2).unsqueeze(2)
        out = branches[0] * a[0]
        for k in range(1, self.num_branches):
            out = out + branches[k] * a[k]
        return self.proj_drop(self.proj(out))


class PlainMorphFCTemporal(nn.Module):
    """MorphFC_t with the plain algorithm, on the Linears of ``ref``."""

    def __init__(self, ref: MorphFCTemporal) -> None:
        super().__init__()
        self.groups = ref.groups
        self.mlp_t = ref.mlp_t
        self.proj = ref.proj
        self.proj_drop = ref.proj_drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H, W, C = x.shape
        G, S = self.groups, C // self.groups
        t = x.reshape(B, T, H, W, G, S).permute(0, 4, 2, 3, 1, 5)
        t = self.mlp_t(t.reshape(B, G, H, W, T * S))
        t = t.reshape(B, G, H, W, T, S).permute(0, 4, 2, 3, 1, 5)
        return self.proj_drop(self.proj(t.reshape(B, T, H, W, C)))


class PlainMorphBlock(nn.Module):
    """The official ``PermutatorBlock`` forward on the layers of ``ref``."""

    def __init__(self, ref: MorphBlock) -> None:
        super().__init__()
        self.with_cp = ref.with_cp
        self.norm1 = ref.norm1
        if ref.temporal:
            self.t_norm1 = ref.t_norm1
            self.t_fc = PlainMorphFCTemporal(ref.t_fc)
        self.fc = PlainMorphFCSpatial(ref.fc)
        self.drop_path = ref.drop_path
        self.norm2 = ref.norm2
        self.mlp = ref.mlp

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, 't_fc'):
            xt = x + self.t_fc(self.t_norm1(x))
        else:
            xt = x
        x = x + self.drop_path(self.fc(self.norm1(xt)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class PlainDownsample(nn.Module):
    """The official ``Downsample`` forward on the layers of ``ref``.

    Channels-first Conv3d (Conv2d for images) called as a module, then
    LayerNorm in channels-last layout.
    """

    def __init__(self, ref: Downsample) -> None:
        super().__init__()
        self.proj = ref.proj
        self.norm = ref.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.proj, nn.Conv3d):
            y = self.proj(x.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
        else:
            y = self.proj(x[:, 0].permute(0, 3, 1, 2))
            y = y.permute(0, 2, 3, 1).unsqueeze(1)
        return self.norm(y)


def _plain_copy(module: nn.Module) -> nn.Module:
    if isinstance(module, Stem):
        new = copy.copy(module)  # same layers, called one by one
        new.fast_paths = False
        return new
    if isinstance(module, Downsample):
        return PlainDownsample(module)
    if isinstance(module, MorphBlock):
        return PlainMorphBlock(module)
    if isinstance(module, MorphFCSpatial):
        return PlainMorphFCSpatial(module)
    if isinstance(module, MorphFCTemporal):
        return PlainMorphFCTemporal(module)
    new = copy.copy(module)  # shares parameters, buffers and attributes
    new._modules = OrderedDict(
        (name, None if child is None else _plain_copy(child))
        for name, child in module._modules.items())
    return new


def build_plain(model: nn.Module) -> nn.Module:
    """A view of ``model`` whose MorphFC blocks run the plain algorithm.

    Every parameter and buffer is shared with ``model`` (an optimizer step
    on one changes the other), and the parameter names are the same, so
    ``build_plain(model).state_dict()`` has the keys of ``model``. Modules
    other than blocks and MorphFC (stem, downsampling, norms, Linears) are
    the very same objects; only the containers are shallow copies, so
    ``train()``/``eval()`` on the result also switches those shared layers.

    Args:
        model (nn.Module): A MorphMLP / MorphMLP3D backbone, a host model
            that contains one, or a single block or MorphFC module.

    Returns:
        nn.Module: The plain-forward twin of ``model``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f'model must be an nn.Module, got {type(model)}')
    return _plain_copy(model)


__all__ = ['plain_window_mix', 'PlainMorphFCSpatial', 'PlainMorphFCTemporal',
           'PlainMorphBlock', 'PlainDownsample', 'build_plain']
