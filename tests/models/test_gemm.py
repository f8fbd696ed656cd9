"""The GEMM library layer of our training products (``models.gemm``)."""
import pytest
import torch
import torch.nn.functional as F

from morphmlp_mm.models import gemm
from morphmlp_mm.models.blocks import MorphBlock

needs_onednn = pytest.mark.skipif(not gemm._HAS_ONEDNN_LINEAR,
                                  reason='PyTorch built without oneDNN')
BACKENDS = ['aten', pytest.param('onednn', marks=needs_onednn)]


@pytest.fixture(autouse=True)
def restore_setting():
    saved = gemm._request, gemm._resolved
    yield
    gemm._request, gemm._resolved = saved


@pytest.mark.parametrize('vendor,has_mkl,has_onednn,expected', [
    ('AuthenticAMD', True, True, 'onednn'),   # MKL's generic path
    ('HygonGenuine', True, True, 'onednn'),
    ('GenuineIntel', True, True, 'aten'),     # MKL's own kernels
    ('AuthenticAMD', False, True, 'aten'),    # another BLAS (OpenBLAS)
    ('AuthenticAMD', True, False, 'aten'),    # no oneDNN
    ('', True, True, 'aten'),                 # unknown (ARM, macOS)
])
def test_auto_picks_by_vendor_and_build(vendor, has_mkl, has_onednn,
                                        expected):
    assert gemm.auto_backend(vendor, has_mkl, has_onednn) == expected


def test_auto_resolves_for_this_machine(monkeypatch):
    monkeypatch.delenv('MORPHMLP_GEMM', raising=False)
    gemm.set_gemm_backend(None)
    assert gemm.gemm_backend() == gemm.auto_backend(
        gemm.cpu_vendor(), torch.backends.mkl.is_available(),
        gemm._HAS_ONEDNN_LINEAR)


def test_environment_variable_and_setter(monkeypatch):
    monkeypatch.setenv('MORPHMLP_GEMM', ' ATEN ')
    gemm.set_gemm_backend(None)
    assert gemm.gemm_backend() == 'aten'
    with gemm.use_gemm_backend('auto'):
        assert gemm.gemm_backend() in ('aten', 'onednn')
    assert gemm.gemm_backend() == 'aten'  # restored
    monkeypatch.setenv('MORPHMLP_GEMM', 'mkl')
    gemm.set_gemm_backend(None)
    with pytest.raises(ValueError, match=r"MORPHMLP_GEMM.*'mkl'"):
        gemm.gemm_backend()
    with pytest.raises(ValueError, match=r"set_gemm_backend.*'fast'"):
        gemm.set_gemm_backend('fast')


def _close(a, b):
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize('backend', BACKENDS)
def test_products_equal_torch(backend):
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    a, b = rand(40, 12), rand(12, 30)
    tall_a, tall_b = rand(300, 7), rand(300, 19)
    with gemm.use_gemm_backend(backend):
        _close(gemm.mm(a, b), a @ b)
        # both orientations of the weight-gradient product
        _close(gemm.mm_tn(tall_a, tall_b), tall_a.t() @ tall_b)
        _close(gemm.mm_tn(tall_b, tall_a), tall_b.t() @ tall_a)
        acc = rand(7, 19)
        expected = acc + tall_a.t() @ tall_b
        _close(gemm.addmm_tn_(acc, tall_a, tall_b), expected)
        _close(acc, expected)  # in place
        for batch in (1, 3):
            x, y = rand(batch, 20, 6), rand(batch, 6, 9)
            _close(gemm.bmm(x, y), torch.bmm(x, y))
            out = torch.empty(batch, 20, 9)
            assert gemm.bmm(x, y, out=out) is out
            _close(out, torch.bmm(x, y))
            u, v = rand(batch, 50, 9), rand(batch, 50, 6)
            _close(gemm.bmm_tn(v, u), torch.bmm(v.transpose(1, 2), u))
        x, w, bias, res = rand(25, 8), rand(5, 8), rand(5), rand(25, 5)
        _close(gemm.linear_into(x, w), x @ w.t())
        _close(gemm.linear_into(x, w, bias), x @ w.t() + bias)
        _close(gemm.linear_into(x, w, bias, residual=res),
               res + x @ w.t() + bias)
        out = torch.empty(40, 5)
        assert gemm.linear_into(x, w, bias, out=out[:25]).data_ptr() == \
            out.data_ptr()
        _close(out[:25], x @ w.t() + bias)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('needs', [(True, True), (False, True), (True, False)])
def test_linear_equals_f_linear(backend, bias, needs):
    """Outputs and only the requested gradients, N-D input."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 16, generator=gen)
    w = torch.randn(24, 16, generator=gen)
    b = torch.randn(24, generator=gen) if bias else None
    g = torch.randn(2, 3, 4, 24, generator=gen)
    results = []
    for fn in (F.linear, gemm.linear):
        xs = x.clone().requires_grad_(needs[0])
        ws = w.clone().requires_grad_(needs[1])
        bs = None if b is None else b.clone().requires_grad_(needs[1])
        with gemm.use_gemm_backend(backend):
            y = fn(xs, ws, bs)
        y.backward(g)
        results.append((y, xs.grad, ws.grad, None if bs is None else bs.grad))
    for ours, ref in zip(*results):
        if ref is None:
            assert ours is None
        else:
            _close(ours, ref)


@needs_onednn
def test_products_autograd_would_record_stay_pytorchs():
    """oneDNN's linear has no derivative: a product of tensors that
    autograd records falls back to PyTorch's own."""
    a = torch.randn(6, 4, requires_grad=True)
    b = torch.randn(4, 5)
    with gemm.use_gemm_backend('onednn'):
        y = gemm.mm(a, b)
        assert y.grad_fn is not None
        y.sum().backward()
        with torch.no_grad():
            assert gemm._use_onednn(a, b)
    _close(a.grad, torch.ones(6, 5) @ b.t())


@pytest.mark.parametrize('backend', BACKENDS)
def test_training_block_runs_its_products_in_the_chosen_library(
        backend, monkeypatch):
    calls = []
    real = gemm._onednn_matmul
    monkeypatch.setattr(gemm, '_onednn_matmul',
                        lambda a, b: calls.append(a.shape) or real(a, b))
    monkeypatch.setattr(MorphBlock, 'train_mlp_chunk', 16)
    block = MorphBlock(24, (1, 4), 3., frames=4).train()
    x = torch.randn(1, 4, 6, 8, 24, requires_grad=True)
    with gemm.use_gemm_backend(backend):
        block(x).sum().backward()
    assert x.grad is not None
    assert bool(calls) == (backend == 'onednn')


@needs_onednn
def test_linear_backward_stays_in_the_library_of_its_forward(monkeypatch):
    """The benchmark's floor runs ``gemm.linear`` under a forced setting and
    calls backward outside it: the products of the backward must be
    oneDNN's all the same."""
    calls = []
    real = gemm._onednn_matmul
    monkeypatch.setattr(gemm, '_onednn_matmul',
                        lambda a, b: calls.append(a.shape) or real(a, b))
    x = torch.randn(30, 7, requires_grad=True)
    w = torch.randn(9, 7, requires_grad=True)
    with gemm.use_gemm_backend('onednn'):
        y = gemm.linear(x, w)
    with gemm.use_gemm_backend('aten'):
        y.backward(torch.ones(30, 9))
    assert len(calls) == 2  # input and weight gradients
    _close(x.grad, torch.ones(30, 9) @ w.detach())
    _close(w.grad, torch.ones(30, 9).t() @ x.detach())
