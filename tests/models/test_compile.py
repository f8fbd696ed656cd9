"""torch.compile (inductor, CPU) builds the backbone and matches eager mode.

No-grad inference takes the whole-clip path under compile (no oneDNN fused
calls, whose weights inductor cannot lower, and no streaming loops), so the
compiled graph is inductor's own fusion of the same algorithm.
"""
import shutil

import pytest
import torch

from morphmlp_mm.models import MorphMLP3D

needs_cxx = pytest.mark.skipif(
    not any(shutil.which(c) for c in ('g++', 'c++', 'clang++')),
    reason='inductor needs a C++ compiler on the CPU')

TINY = dict(depths=[1, 1, 1, 1], channels=[16, 32, 32, 64],
            chunk_lengths=[4, 4, 4, 4], mlp_ratio=2.)


@needs_cxx
def test_inductor_inference_matches_eager():
    torch.manual_seed(0)
    model = MorphMLP3D(arch=TINY, num_frames=4).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_compiled_training_step_matches_eager():
    """Forward and backward graphs captured whole (AOT autograd, no C++
    build: inductor's kernels are covered by the inference test)."""
    torch.manual_seed(0)
    model = MorphMLP3D(arch=TINY, num_frames=4, temporal_init='learnable')
    x = torch.randn(2, 3, 4, 32, 32)
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    model.train()
    ref = model(x)
    ref.square().mean().backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    out = compiled(x)
    out.square().mean().backward()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-3,
                                   atol=1e-5, msg=n)
