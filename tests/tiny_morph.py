"""A small MorphMLP arch and helpers shared by the equivalence tests
(``tests/models/test_plain_equivalence.py`` on the CPU,
``tests/models/test_cuda.py`` on a GPU)."""
import torch
import torch.nn as nn

# Official chunk lengths scaled down: windows (1, 4), (1, 8), (2, 14), (7, 7)
# at the 224 reference, i.e. a row window, a transposed-row window, a
# two-row window and the 2-branch 7x7 stage; S = C / L = 2 everywhere.
ARCH = dict(depths=[1, 1, 2, 1], channels=[8, 16, 56, 98],
            chunk_lengths=[4, 8, 28, 49])


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights everywhere (the official init zeroes mlp_t)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(0.2 * noise)
        for name, b in module.named_buffers():
            if name.endswith('running_var'):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
            elif name.endswith('running_mean'):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
    return module


def as_tuple(out):
    return out if isinstance(out, tuple) else (out, )


def scaled_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Max error relative to the largest entry of ``ref`` (at least 1):
    parameter gradients are sums over every token, so they are compared
    at the tensor's own scale."""
    return (ours - ref).abs().max().item() / max(1., ref.abs().max().item())
