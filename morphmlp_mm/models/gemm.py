"""Which library runs the CPU matrix products of MorphMLP training.

PyTorch ships two fp32 GEMM libraries for the CPU: the BLAS it was built
with (Intel MKL in the official x86 wheels), which ``torch.mm``,
``F.linear`` and ``nn.Linear`` call, and oneDNN, which it uses for
convolutions and exposes for linears as ``torch.ops.mkldnn``. MKL runs its
fast AVX-512 kernels only on Intel CPUs; on an AMD EPYC (Zen 5, AVX-512)
of this project's machines its single-thread sgemm reached 106 GFLOP/s on a
2048^3 product where oneDNN reached 243, and the products of MorphMLP-S's
layers at 16 x 224 x 224 ran 1.3x-4.1x faster in oneDNN (forward
1.5x-4.1x, input gradient 1.4x-3.0x, weight gradient 1.3x-2.3x;
``docs/benchmark.md``, tenth session). On the Intel Xeons of earlier
sessions the two were close.

So the library is a setting, resolved once per process:

* ``'auto'`` (default): oneDNN on x86 CPUs of other vendors than Intel
  (``AuthenticAMD``, ``HygonGenuine``) when PyTorch has MKL and oneDNN,
  else PyTorch's own products (``'aten'``). Deterministic: it reads the
  CPU vendor, it does not time anything.
* ``'onednn'`` / ``'aten'``: forced.

Set it with the environment variable ``MORPHMLP_GEMM`` or
:func:`set_gemm_backend`. It governs the products of the autograd paths
(:func:`linear`, and :func:`mm` / :func:`mm_tn` inside the hand-written
backwards of :mod:`~morphmlp_mm.models.morph_fc` and
:mod:`~morphmlp_mm.models.blocks`). The no-grad inference path uses
oneDNN's fused matmul everywhere (bias, GELU and residual in the GEMM
epilogue, :func:`~morphmlp_mm.models.morph_fc.fused_linear`), as before.
Off the CPU, in other dtypes, under autocast, tracing and
``torch.compile`` every product is PyTorch's own.
"""
import contextlib
import os
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

#: Accepted values of :func:`set_gemm_backend` and ``MORPHMLP_GEMM``.
GEMM_BACKENDS = ('auto', 'onednn', 'aten')

#: x86 vendors whose CPUs MKL serves with its generic code path.
NON_INTEL_X86 = ('AuthenticAMD', 'HygonGenuine')

_HAS_ONEDNN_LINEAR = (torch.backends.mkldnn.is_available() and hasattr(
    torch.ops.mkldnn, '_linear_pointwise'))

_request: Optional[str] = None  # None: read MORPHMLP_GEMM
_resolved: Optional[str] = None


def graph_capture() -> bool:
    """Whether a graph is being recorded (jit tracing / scripting, FLOP
    counters, ``torch.compile``): eager-only shortcuts must step aside."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.compiler.is_compiling())


def autocast_on(device_type: str) -> bool:
    """``torch.is_autocast_enabled(device_type)``, False for device types
    autocast does not know (``meta``, on which shape-only runs and tests
    of the non-CPU paths go), where PyTorch raises."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


def autocast_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` in autocast's dtype, contiguous, when autocast is on for its
    device and ``x`` is float32 (the permuted inputs of MorphFC's products);
    else ``x`` itself.

    Autocast would cast the input of every product itself; casting a
    permuted view once, in the same pass that lays it out, replaces a
    float32 permutation copy plus a cast per product with one copy of half
    the bytes, and gives the products the very operands autocast would.
    """
    if x.dtype != torch.float32 or not autocast_on(x.device.type):
        return x
    return x.to(torch.get_autocast_dtype(x.device.type),
                memory_format=torch.contiguous_format)


def _cpuinfo(key: str) -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                name, _, value = line.partition(':')
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return ''


def cpu_vendor() -> str:
    """The CPU vendor id of ``/proc/cpuinfo`` (``'GenuineIntel'``,
    ``'AuthenticAMD'``...), ``''`` where there is none (other systems,
    ARM)."""
    return _cpuinfo('vendor_id')


def _check(value: str, name: str) -> str:
    if value not in GEMM_BACKENDS:
        raise ValueError(f'{name} must be one of {GEMM_BACKENDS}, got '
                         f'{value!r}')
    if value == 'onednn' and not _HAS_ONEDNN_LINEAR:
        raise ValueError(f"{name}='onednn' needs PyTorch built with oneDNN "
                         '(torch.backends.mkldnn.is_available() is False)')
    return value


def set_gemm_backend(name: Optional[str]) -> None:
    """Choose the library of the CPU training products.

    Args:
        name (str, optional): ``'auto'``, ``'onednn'`` or ``'aten'``;
            ``None`` goes back to the environment variable
            ``MORPHMLP_GEMM`` (``'auto'`` when unset).
    """
    global _request, _resolved
    _request = None if name is None else _check(name, 'set_gemm_backend')
    _resolved = None


@contextlib.contextmanager
def use_gemm_backend(name: str) -> Iterator[None]:
    """Run a block with :func:`set_gemm_backend` ``(name)``, then restore
    the previous setting."""
    global _request, _resolved
    previous = _request, _resolved
    set_gemm_backend(name)
    try:
        yield
    finally:
        _request, _resolved = previous


def cpu_model() -> str:
    """The CPU model name of ``/proc/cpuinfo``, ``''`` where there is
    none."""
    return _cpuinfo('model name')


def auto_backend(vendor: str, has_mkl: bool, has_onednn: bool) -> str:
    """What ``'auto'`` resolves to for a CPU vendor and a PyTorch build."""
    if has_onednn and has_mkl and vendor in NON_INTEL_X86:
        return 'onednn'
    return 'aten'


def gemm_backend() -> str:
    """The resolved library: ``'onednn'`` or ``'aten'``."""
    global _resolved
    if _resolved is None:
        request = _request
        if request is None:
            request = _check(
                os.environ.get('MORPHMLP_GEMM', '').strip().lower()
                or 'auto', 'MORPHMLP_GEMM')
        if request == 'auto':
            request = auto_backend(cpu_vendor(),
                                   torch.backends.mkl.is_available(),
                                   _HAS_ONEDNN_LINEAR)
        _resolved = request
    return _resolved


def onednn_eligible(*tensors: torch.Tensor) -> bool:
    """Whether oneDNN's linear can take these tensors: fp32 on the CPU,
    oneDNN enabled, no autocast and no graph capture (tracing, FLOP
    counters and TorchScript see plain linears; ``torch.compile`` fuses
    its own). Whether it is built in is checked by the callers."""
    return (torch.backends.mkldnn.enabled and not graph_capture()
            and not torch.is_autocast_enabled('cpu')
            and all(t.device.type == 'cpu' and t.dtype == torch.float32
                    for t in tensors))


def _use_onednn(*tensors: torch.Tensor, autograd: bool = False) -> bool:
    """Whether the products of ``tensors`` go to oneDNN: the backend says
    so and :func:`onednn_eligible`. oneDNN's linear has no derivative, so
    unless the caller differentiates it itself (``autograd=True``), a
    product autograd would record stays PyTorch's."""
    if not autograd and torch.is_grad_enabled() and any(
            t.requires_grad for t in tensors):
        return False
    return gemm_backend() == 'onednn' and onednn_eligible(*tensors)


def libraries() -> Tuple[str, ...]:
    """The libraries this PyTorch build can run products in: ``('aten',
    'onednn')``, or ``('aten', )`` without oneDNN."""
    return ('aten', 'onednn') if _HAS_ONEDNN_LINEAR else ('aten', )


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor,
                   bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x @ weight.T + bias`` in oneDNN, no autograd."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')


def _onednn_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` (2-D) as oneDNN's linear: ``b.t()`` is its weight (a
    strided view is fine; oneDNN reads any plain strides)."""
    return _onednn_linear(a, b.t())


def mm(a: torch.Tensor, b: torch.Tensor,
       out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``a @ b`` of 2-D tensors in the chosen library, no autograd.

    Args:
        a (Tensor): (M, K).
        b (Tensor): (K, N).
        out (Tensor, optional): A buffer for PyTorch's product to write
            into; oneDNN's returns a new tensor. Use the return value.

    Returns:
        Tensor: (M, N), contiguous.
    """
    if _use_onednn(a, b):
        return _onednn_matmul(a, b)
    return torch.mm(a, b, out=out)


def bmm(a: torch.Tensor, b: torch.Tensor,
        out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``a @ b`` of (G, M, K) and (G, K, N) tensors, no autograd: one
    product per entry in oneDNN (written into ``out`` when given), else
    ``torch.bmm``."""
    if _use_onednn(a, b):
        if a.shape[0] == 1 and out is None:
            return _onednn_matmul(a[0], b[0]).unsqueeze(0)
        if out is None:
            return torch.stack([_onednn_matmul(x, y) for x, y in zip(a, b)])
        for i in range(a.shape[0]):
            out[i].copy_(_onednn_matmul(a[i], b[i]))
        return out
    return torch.bmm(a, b, out=out)


def mm_tn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.t() @ b`` for (K, M) and (K, N) tensors with a long K: the
    weight-gradient product, no autograd.

    oneDNN runs this shape several times faster when its output has fewer
    rows than columns (25088 x 112 by 25088 x 336: 12 ms as (112, 336),
    28 ms as (336, 112)), so the wider orientation is computed and, if
    that is the transpose, returned as a transposed view.
    """
    if _use_onednn(a, b):
        return _onednn_mm_tn(a, b)
    return torch.mm(a.t(), b)


def _onednn_mm_tn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.shape[1] > b.shape[1]:
        return _onednn_matmul(b.t(), a).t()
    return _onednn_matmul(a.t(), b)


def addmm_tn_(acc: torch.Tensor, a: torch.Tensor,
              b: torch.Tensor) -> torch.Tensor:
    """``acc += a.t() @ b`` in place (see :func:`mm_tn`), no autograd."""
    if _use_onednn(a, b):
        return acc.add_(_onednn_mm_tn(a, b))
    return acc.addmm_(a.t(), b)


def linear_into(x: torch.Tensor,
                weight: torch.Tensor,
                bias: Optional[torch.Tensor] = None,
                residual: Optional[torch.Tensor] = None,
                out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[residual +] x @ weight.T [+ bias]`` of 2-D tensors, no autograd.

    oneDNN adds the bias and the residual in the GEMM's epilogue and the
    result is copied into ``out`` (a chunk of a larger buffer, warm in
    cache); PyTorch's product writes into ``out`` itself.

    Returns:
        Tensor: ``out`` when given, else a new tensor.
    """
    if _use_onednn(x, weight):
        if residual is None:
            y = _onednn_linear(x, weight, bias)
        else:
            y = torch.ops.mkldnn._linear_pointwise.binary(
                x, residual, weight, bias, 'add')
        return y if out is None else out.copy_(y)
    if residual is not None:
        y = torch.addmm(residual, x, weight.t(), out=out)
        return y if bias is None else y.add_(bias)
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def bmm_tn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.transpose(1, 2) @ b`` of (G, K, M) and (G, K, N) tensors (see
    :func:`mm_tn`), no autograd."""
    if _use_onednn(a, b):
        return torch.stack([_onednn_mm_tn(x, y) for x, y in zip(a, b)])
    return torch.bmm(a.transpose(1, 2), b)


class _LinearFunction(torch.autograd.Function):
    """``F.linear`` with its forward and backward products in oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> torch.Tensor:
        # oneDNN takes the N-D input as it is; its (..., N) output is a view
        # of its 2-D result, which autograd forbids modifying in place
        x = x.contiguous()
        y = _onednn_linear(x, weight, bias)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        # oneDNN whatever the setting is when the backward runs: the
        # forward chose it
        x, weight = ctx.saved_tensors
        x2 = x.view(-1, x.shape[-1])
        g2 = grad.reshape(-1, grad.shape[-1])
        needs = ctx.needs_input_grad
        gx = gw = gb = None
        if needs[0]:
            gx = _onednn_matmul(g2, weight).view(*grad.shape[:-1],
                                                 weight.shape[1])
        if needs[1]:
            gw = _onednn_mm_tn(g2, x2)
        if ctx.has_bias and needs[2]:
            gb = g2.sum(0)
        return gx, gw, gb


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear`` whose products (forward and, when autograd records
    them, backward) run in the chosen library.

    The backward computes only the gradients autograd asks for, as
    ``F.linear``'s does, and matches it up to float rounding. Through
    oneDNN the output of an N-D input is a view made inside a custom
    autograd Function, which autograd does not let the caller modify in
    place: use out-of-place ops on it.
    """
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if _use_onednn(*tensors, autograd=True):
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return _LinearFunction.apply(x, weight, bias)
        return _onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)
