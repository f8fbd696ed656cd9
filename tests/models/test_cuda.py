"""MorphMLP on a CUDA GPU: the same function as on the CPU and as the plain
algorithm, in fp32 and under bf16 autocast, with and without ``with_cp``.

Skipped where no GPU is visible (CI has none); run on a GPU machine with
``pytest tests/models/test_cuda.py``. fp32 comparisons switch TF32 off, so
that the matrix products round as the CPU's do.
"""
import contextlib
import statistics

import pytest
import torch
import torch.nn as nn
from tiny_morph import ARCH, as_tuple, randomize, scaled_err

from morphmlp_mm import MorphMLP, MorphMLP3D
from morphmlp_mm.models.plain import build_plain

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA GPU')


@pytest.fixture(autouse=True)
def no_tf32():
    """fp32 products in full fp32 (TF32 would round to 10 mantissa bits)."""
    saved = (torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    (torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32) = saved


def video_model(**kwargs) -> nn.Module:
    return randomize(MorphMLP3D(ARCH, num_frames=8, norm_eval=True,
                                **kwargs))


def image_model(**kwargs) -> nn.Module:
    return randomize(MorphMLP(ARCH, out_indices=(0, 1, 2, 3),
                              out_type='featmap', norm_eval=True, **kwargs))


def run(model: nn.Module, x: torch.Tensor, amp: bool = False):
    """Outputs, input gradient and parameter gradients of a weighted sum
    of the outputs (weights fixed by seed)."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    ctx = torch.autocast('cuda', dtype=torch.bfloat16) if amp \
        else contextlib.nullcontext()
    with ctx:
        outs = as_tuple(model(x))
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(o.shape, generator=gen).to(o.device)
               for o in outs]
    loss = sum((o.float() * w).sum() for o, w in zip(outs, weights))
    loss.backward()
    # copies: ``model.cuda()`` later moves the gradient tensors themselves
    grads = {n: p.grad.float().cpu().clone()
             for n, p in model.named_parameters() if p.grad is not None}
    return ([o.detach().float().cpu().clone() for o in outs],
            x.grad.float().cpu().clone(), grads)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative-norm error of ``a`` against ``b``."""
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def errors(got, ref, measure=scaled_err):
    """``{name: error}`` of every output and gradient of ``got``."""
    outs_a, gx_a, gp_a = got
    outs_b, gx_b, gp_b = ref
    assert len(outs_a) == len(outs_b) and gp_a.keys() == gp_b.keys()
    assert gp_a
    for name, t in [*enumerate(outs_a), ('input', gx_a), *gp_a.items()]:
        assert torch.isfinite(t).all(), f'{name} is not finite'
    found = {f'output {i}': measure(a, b)
             for i, (a, b) in enumerate(zip(outs_a, outs_b))}
    found['input grad'] = measure(gx_a, gx_b)
    found.update({n: measure(gp_a[n], gp_b[n]) for n in gp_a})
    return found


def assert_same(got, ref, tol: float) -> None:
    """Every output and gradient within ``tol`` (``scaled_err``, as
    ``test_plain_equivalence.py`` compares)."""
    bad = {k: v for k, v in errors(got, ref).items() if not v <= tol}
    assert not bad, f'over {tol}: {bad}'


CASES = [(video_model, (2, 3, 8, 64, 64)), (video_model, (1, 3, 8, 45, 70)),
         (image_model, (2, 3, 61, 47))]


@pytest.mark.parametrize('build,shape', CASES)
@pytest.mark.parametrize('with_cp', [False, True])
def test_cuda_training_equals_cpu_and_plain(build, shape, with_cp):
    """fp32 on the GPU: ours equals ours on the CPU and the plain algorithm
    on the GPU (outputs and every gradient)."""
    model = build(with_cp=with_cp).train()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(4))
    on_cpu = run(model, x)
    model.cuda()
    on_gpu = run(model, x.cuda())
    plain_gpu = run(build_plain(model), x.cuda())
    assert_same(on_gpu, plain_gpu, 1e-5)
    # other kernels, other summation orders than the CPU's
    assert_same(on_gpu, on_cpu, 1e-4)


@pytest.mark.parametrize('build,shape', CASES)
def test_cuda_inference_equals_plain(build, shape):
    model = build().cuda().eval()
    plain = build_plain(model)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(6)).cuda()
    with torch.no_grad():
        for a, b in zip(as_tuple(model(x)), as_tuple(plain(x))):
            assert scaled_err(a, b) <= 1e-5


@pytest.mark.parametrize('with_cp', [False, True])
def test_cuda_bf16_autocast_training_close_to_fp32(with_cp):
    """bf16 autocast: finite, and no further from the fp32 result than the
    plain algorithm under the same autocast (up to bf16 noise)."""
    model = video_model(with_cp=with_cp).cuda().train()
    x = torch.randn(2, 3, 8, 64, 64,
                    generator=torch.Generator().manual_seed(5)).cuda()
    ref = run(model, x)
    ours = run(model, x, amp=True)
    plain = run(build_plain(model), x, amp=True)
    ours_err = errors(ours, ref, rel_err)
    plain_err = errors(plain, ref, rel_err)
    # one parameter gradient can be off by tens of percent in bf16 for
    # either (a small sum that cancels): compare the outputs, the input
    # gradient and the typical parameter gradient
    for key in ('output 0', 'input grad'):
        assert ours_err[key] <= 2 * plain_err[key] + 1e-3, (key, ours_err,
                                                            plain_err)
    params = [k for k in ours_err if k not in ('output 0', 'input grad')]
    typical = [statistics.median(e[k] for k in params)
               for e in (ours_err, plain_err)]
    assert typical[1] < 0.05, plain_err
    assert typical[0] <= 2 * typical[1], typical


def test_cuda_full_size_step_and_memory():
    """MorphMLP-S 16x224x224: one bf16 training step, with_cp storing
    less."""
    peaks = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = MorphMLP3D('small', num_frames=16, with_cp=with_cp).cuda()
        x = torch.randn(2, 3, 16, 224, 224, device='cuda')
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autocast('cuda', dtype=torch.bfloat16):
            out = model(x)
        assert out.shape == (2, 784, 8, 7, 7)
        out.float().square().mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters()
                   if p.grad is not None)
        peaks.append(torch.cuda.max_memory_allocated() - base)
        del model, x, out
        torch.cuda.empty_cache()
    assert peaks[1] < 0.7 * peaks[0], peaks
