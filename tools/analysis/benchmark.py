"""Throughput, GEMM-floor ratio and peak memory of backbones, side by side.

One run times every model it is given, interleaved, on the same machine
state, and reports ratios:

* **inference** (eval mode, ``torch.no_grad``, one clip or image per call)
  and **training steps** (train mode: forward, ``mean`` loss over the
  outputs, backward, AdamW step; each timed step follows an untimed one of
  the same model, so its AdamW moments exist as in a training loop; the
  gradients and moments are dropped after the timed step so that one
  process holds every model), in seconds per call and clips (images) per
  second;
* the **GEMM floor**: the time of the model's own ``nn.Linear`` and
  ``nn.Conv{1,2,3}d`` layers run alone, one call per layer call of a
  forward, at the exact input shapes, each Linear call in the faster of
  PyTorch's two CPU GEMM libraries (its BLAS and oneDNN, see
  :class:`Floor`; the JSON keeps the floor of PyTorch's own products as
  ``*_floor_aten_s``) (training: forward + backward of each
  layer, plus the AdamW step on the model's parameters, timed inside its
  own step: no implementation of the layers avoids it; the JSON has the
  layers alone as ``train_floor_layers_s``, the optimizer as
  ``train_optimizer_s``). ``x floor`` = model time / floor time. For
  MorphMLP the layer calls are recorded on the plain twin
  (``morphmlp_mm.models.plain``), i.e. the official algorithm, so our model
  and its plain twin share one floor;
* multiply-adds per view (``mmengine.analysis``, the fvcore convention of
  the papers; MorphMLP counted on its plain twin like
  ``tools/analysis/get_flops.py``), the achieved GFLOP/s (2 x MACs / time)
  and that rate as a fraction of a dense 2048^3 fp32 matmul timed in the
  same run (the faster library);
* **per video** at each model's test views (clips x crops of its K400
  config: MorphMLP 4 x 1, Swin3D-T 4 x 3, MViTv2-S 5 x 1, UniFormer-S
  4 x 1);
* **peak memory** (``--memory``) of one inference call / training step:
  each measurement runs in a fresh subprocess that imports the libraries
  (their resident size is the baseline), builds the model, runs one warm-up
  step (parameters, gradients and AdamW state exist afterwards), releases
  free heap memory (``malloc_trim``), resets the kernel's peak-RSS counter
  (``/proc/self/clear_refs``) and reads ``VmHWM`` after the measured step.
  glibc's mmap threshold is set to 64 KiB in that process so that freed
  tensors return to the kernel and the peak RSS follows live memory. RSS
  sees every allocation (torch, MKL/oneDNN scratch); ``tracemalloc`` does
  not see torch's, and the profiler's memory events missed allocations
  here. ``mem MB`` is the peak above the libraries (weights, gradients,
  optimizer state, activations); the JSON also has the process peak and
  the part above the state before the step.

The machine is shared (other processes load the cores), so every number is
the median over ``--repeats`` rounds, the models of a round run one after the
other in a rotating order, the floor of a model is timed right after it, and
``os.getloadavg()`` is recorded before and after. Prefer the ratios; each
ratio is also given paired by round (the median of the per-round ratios,
:func:`paired_median`), which a drift of the machine's speed between rounds
does not move.

By default everything runs on the CPU in fp32 at batch 1. ``--device
cuda`` runs the models, the floor's layers and the dense product on a GPU
(the clock then waits for the queued kernels, the floor is timed as one
span per backbone part, ``--memory`` reads the CUDA allocator's peak,
``--ops`` profiles the GPU kernel time of each op category and counts the
kernel launches);
``--amp bf16`` (or ``fp16``) runs the models' forwards and the floor's
layers under autocast; ``--batch N`` times calls of N clips (throughput
and time per video stay per clip, MACs per view).

Models are named presets (``--models``, groups ``video``, ``image``,
``cp``, ``all``), any MorphMLP arch (``--arch small --frames 32``) or any
OpenMMLab config (``--config cfg.py``: its ``model.backbone``). A MorphMLP
model is always accompanied by its plain twin (same weights). Peers are
built from the hosts' registries with their class defaults (random weights).

Examples::

    # the README table: video + image peers, training, with_cp, memory
    python tools/analysis/benchmark.py --models all --modes infer train \\
        --memory --repeats 3 --json outputs/benchmark.json \\
        --png outputs/benchmark.png --md docs/benchmark.md
    # one arch against its plain twin, inference only
    python tools/analysis/benchmark.py --arch base --frames 16
    # a config (its backbone, at the config's clip length)
    python tools/analysis/benchmark.py --config configs/recognition/\\
morphmlp-small_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py
    # where a call / training step spends its time, by op category
    python tools/analysis/benchmark.py --arch small --frames 16 \\
        --modes infer train --threads 1 --ops
    # smoke run on tiny inputs
    python tools/analysis/benchmark.py --models all --quick
    # on a GPU, bf16 autocast, the training batch of the K400 configs
    python tools/analysis/benchmark.py --models video --modes infer train \\
        --with-cp --memory --device cuda --amp bf16 --batch 8
"""
import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import logging
import os
import os.path as osp
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHILD_MARK = '@@benchmark-child@@'
LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
MODES = ('infer', 'train')
#: ``--amp``: the autocast dtype of every model and of the floor's layers.
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def autocast(device: torch.device, amp: Optional[str]):
    """``torch.autocast`` to the ``--amp`` dtype, or a null context."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def make_clock(name: str, device: torch.device) -> Callable[[], float]:
    """The run's clock: process CPU time (``cpu``), wall time (``wall``) or,
    on a GPU, wall time after waiting for the device's queued work
    (``cuda``), so that a span covers the kernels it launched."""
    if name == 'cuda':
        def cuda_clock() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()
        return cuda_clock
    return time.process_time if name == 'cpu' else time.perf_counter


def device_name(device: torch.device) -> str:
    """``CPU`` or the GPU's name, for the outputs."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return device.type.upper()


def import_plugin() -> None:
    """Import ``morphmlp_mm`` (host workarounds first), from the checkout
    if it is not installed."""
    try:
        import morphmlp_mm  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != 'morphmlp_mm':
            raise
        sys.path.insert(0, REPO_ROOT)
        import morphmlp_mm  # noqa: F401


# --------------------------------------------------------------------------
# model specs
# --------------------------------------------------------------------------
@dataclass
class Spec:
    """A model to benchmark.

    Attributes:
        name: Display name.
        family: ``'video'`` or ``'image'`` (ratios compare within a family).
        build: Returns the model (random weights).
        shape: Input shape of one call, batch included.
        views: Test views per video (clips x crops); 1 for images.
        plain_of: For a plain twin, the name of the model it shares weights
            with (built from that model, never on its own).
        train_only: Only timed in training (``with_cp`` variants).
        note: Where the settings come from.
    """
    name: str
    family: str
    build: Callable[[], nn.Module]
    shape: Tuple[int, ...]
    views: int = 1
    plain_of: Optional[str] = None
    train_only: bool = False
    note: str = ''
    ours: bool = False
    results: Dict = field(default_factory=dict)


def _morph_video(arch: str, frames: int, **kwargs) -> Callable:
    def build():
        from morphmlp_mm import MorphMLP3D
        return MorphMLP3D(arch, num_frames=frames, **kwargs)
    return build


def _morph_image(arch: str, **kwargs) -> Callable:
    def build():
        from morphmlp_mm import MorphMLP
        return MorphMLP(arch, **kwargs)
    return build


def _registry(scope: str, **cfg) -> Callable:
    def build():
        import importlib
        importlib.import_module(f'{scope}.models')
        registry = importlib.import_module(f'{scope}.registry').MODELS
        return registry.build(cfg)
    return build


def morph_specs(name: str, family: str, build_ours: Callable,
                build_cp: Optional[Callable], shape: Tuple[int, ...],
                views: int, note: str) -> List[Spec]:
    """Our model, its plain twin and (optionally) its ``with_cp`` variant."""
    specs = [
        Spec(name, family, build_ours, shape, views, note=note, ours=True),
        Spec(f'{name} plain', family, build_ours, shape, views,
             plain_of=name, note='official algorithm, same weights'),
    ]
    if build_cp is not None:
        specs.append(Spec(f'{name} cp', family, build_cp, shape, views,
                          train_only=True, note='with_cp=True'))
    return specs


def preset_specs(quick: bool) -> Dict[str, List[Spec]]:
    """The named presets, grouped; ``quick`` shrinks every input."""
    size = 64 if quick else 224
    f16, f32 = (4, 8) if quick else (16, 32)

    def video(frames):
        return (1, 3, frames, size, size)

    image = (1, 3, size, size)
    groups = {
        'video': [
            *morph_specs('MorphMLP3D-S16', 'video',
                         _morph_video('small', f16),
                         _morph_video('small', f16, with_cp=True),
                         video(f16), 4, 'K400 16x4x1, 4 clips x 1 crop'),
            *morph_specs('MorphMLP3D-S32', 'video',
                         _morph_video('small', f32),
                         _morph_video('small', f32, with_cp=True),
                         video(f32), 4, 'K400 32x4x1, 4 clips x 1 crop'),
            Spec('Swin3D-T', 'video',
                 _registry('mmaction', type='SwinTransformer3D', arch='tiny',
                           pretrained=None, pretrained2d=False),
                 video(f32), 12,
                 note='mmaction2 swin-tiny 32x2x1, 4 clips x 3 crops'),
            Spec('MViTv2-S', 'video',
                 _registry('mmaction', type='MViT', arch='small',
                           temporal_size=f16, spatial_size=size),
                 video(f16), 5,
                 note='mmaction2 mvit-small 16x4x1, 5 clips x 1 crop'),
            Spec('UniFormer-S', 'video',
                 _registry('mmaction', type='UniFormer', depth=[3, 4, 8, 3],
                           embed_dim=[64, 128, 320, 512], head_dim=64,
                           img_size=size, pretrained2d=False),
                 video(f16), 4,
                 note='mmaction2 uniformer-small 16x4x1, 4 clips x 1 crop'),
        ],
        'image': [
            *morph_specs('MorphMLP-T', 'image', _morph_image('tiny'),
                         _morph_image('tiny', with_cp=True), image, 1,
                         'ImageNet 224'),
            *morph_specs('MorphMLP-S', 'image', _morph_image('small'), None,
                         image, 1, 'ImageNet 224'),
            Spec('Swin-T', 'image',
                 _registry('mmpretrain', type='SwinTransformer', arch='tiny',
                           img_size=size, pad_small_map=True),
                 image, note='mmpretrain swin-tiny'),
            Spec('ConvNeXt-T', 'image',
                 _registry('mmpretrain', type='ConvNeXt', arch='tiny'),
                 image, note='mmpretrain convnext-tiny'),
        ],
    }
    groups['cp'] = [s for s in groups['video'][:3]]
    return groups


def config_specs(path: str, shape: Optional[Sequence[int]]) -> List[Spec]:
    """The backbone of an OpenMMLab config (plus a plain twin if MorphMLP).

    Uses the config helpers of ``tools/analysis/get_flops.py`` (task, input
    shape, test views, building in the host registry).
    """
    from mmengine.config import Config
    sys.path.insert(0, REPO_ROOT)
    from tools.analysis import get_flops as gf
    cfg = Config.fromfile(path)
    task = gf.infer_task(cfg)
    if task == 'seg':
        raise ValueError(f'--config {path}: segmentation configs are not '
                         'supported; benchmark the backbone with --arch')
    full_shape = gf.resolve_shape(task, shape, cfg)
    views = 1
    if task == 'video':
        views = gf.count_test_views(gf.find_test_pipeline(cfg),
                                    gf.is_frame_recognizer(cfg))['views']

    def build():
        return gf.build_model(cfg, task).backbone

    name = osp.splitext(osp.basename(path))[0]
    family = 'video' if task == 'video' else 'image'
    backbone_type = gf._type_name(cfg.model.get('backbone', {}))
    if backbone_type.startswith('MorphMLP'):
        return morph_specs(name, family, build, None, full_shape, views,
                           'config backbone')
    return [Spec(name, family, build, full_shape, views,
                 note='config backbone')]


def arch_specs(arch: str, frames: int, size: int) -> List[Spec]:
    """A MorphMLP arch: video if ``frames`` > 0, else image."""
    if frames > 0:
        return morph_specs(f'MorphMLP3D-{arch}-{frames}f', 'video',
                           _morph_video(arch, frames),
                           _morph_video(arch, frames, with_cp=True),
                           (1, 3, frames, size, size), 4, '--arch')
    return morph_specs(f'MorphMLP-{arch}', 'image', _morph_image(arch),
                       _morph_image(arch, with_cp=True),
                       (1, 3, size, size), 1, '--arch')


def select_specs(args) -> List[Spec]:
    """The specs named on the command line, in order, without repeats."""
    groups = preset_specs(args.quick)
    by_name = {s.name.lower(): s for g in groups.values() for s in g}
    specs: List[Spec] = []
    for key in args.models or []:
        key = key.lower()
        if key == 'all':
            chosen = groups['video'] + groups['image']
        elif key in groups:
            chosen = groups[key]
        elif key in by_name:
            chosen = [by_name[key]]
            for twin in (f'{key} plain', f'{key} cp'):
                if twin in by_name:
                    chosen.append(by_name[twin])
        else:
            raise ValueError(
                f'--models: unknown model {key!r}; choose groups '
                f'{sorted(groups)} + ["all"] or names '
                f'{sorted(s.name for g in groups.values() for s in g)}')
        specs.extend(chosen)
    if args.config:
        specs.extend(config_specs(args.config, args.shape))
    if args.arch:
        specs.extend(arch_specs(args.arch, args.frames, args.size))
    if not args.with_cp:
        specs = [s for s in specs if not s.train_only]
    if 'train' not in args.modes:
        specs = [s for s in specs if not s.train_only]
    seen, unique = set(), []
    for s in specs:
        if s.name not in seen:
            seen.add(s.name)
            s.shape = (args.batch, *s.shape[1:])
            unique.append(s)
    if not unique:
        raise ValueError('nothing to benchmark: pass --models, --config or '
                         '--arch')
    return unique


class Built:
    """A spec's model, input and optimizer, built once per run."""

    def __init__(self, spec: Spec, owners: Dict[str, 'Built'],
                 compile: Optional[str] = None,
                 device: torch.device = torch.device('cpu'),
                 amp: Optional[str] = None) -> None:
        self.spec = spec
        self.device, self.amp = device, amp
        torch.manual_seed(0)
        if spec.plain_of is not None:
            from morphmlp_mm.models.plain import build_plain
            owner = owners.get(spec.plain_of)
            base = owner.model if owner is not None else spec.build()
            self.model = build_plain(base)
        else:
            self.model = spec.build()
        self.model.to(device)
        # drawn on the CPU: the same clip on every device
        self.x = torch.randn(spec.shape).to(device)
        self.optimizer = None
        # torch.compile with that backend: the first call of each mode
        # compiles, which the warm-up absorbs; the floor stays eager.
        self.fn = torch.compile(self.model, backend=compile) if compile \
            else self.model

    def infer(self) -> None:
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.amp):
            self.fn(self.x)

    def train_step(self, clock: Callable[[], float] = time.perf_counter,
                   timer: Optional['OpTimer'] = None) -> float:
        """Forward, mean loss, backward, AdamW step, as in a training loop:
        the gradients of the previous step are dropped first
        (``zero_grad(set_to_none=True)``, what mmengine's optimizer wrapper
        does), the AdamW moments persist until :meth:`release`. With
        ``--amp`` the forward and the loss run under autocast, the backward
        and the step outside it, as in mmengine's ``AmpOptimWrapper``
        (without its loss scaling, which bf16 does not need).

        Args:
            clock: The clock of the returned time.
            timer (OpTimer, optional): An active :class:`OpTimer`, which
                books the AdamW step's ops as ``optimizer``.

        Returns:
            float: time of the AdamW step alone (``clock``).
        """
        self.model.train()
        if self.optimizer is None:
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(params, lr=1e-6)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp):
            outs = _tensors(self.fn(self.x))
            loss = sum(o.float().mean() for o in outs if o.requires_grad)
        loss.backward()
        start = clock()
        with timer.booking('optimizer') if timer else contextlib.nullcontext():
            self.optimizer.step()
        return clock() - start

    def release(self) -> None:
        """Drop the gradients and the AdamW moments (re-created by the
        next step), so that one process can hold every model."""
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
            self.optimizer.state.clear()

    def run(self, mode: str,
            clock: Callable[[], float] = time.perf_counter,
            timer: Optional['OpTimer'] = None) -> float:
        """One inference call or training step; returns the optimizer's
        share of it (0 for inference)."""
        if mode == 'infer':
            self.infer()
            return 0.
        return self.train_step(clock, timer)


def _tensors(value) -> List[torch.Tensor]:
    """Every tensor of a nested output (MViT returns lists of lists)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


# --------------------------------------------------------------------------
# GEMM floor
# --------------------------------------------------------------------------
class Floor:
    """The Linear / Conv layer calls of one forward, timed alone.

    On the CPU in fp32, each ``nn.Linear`` call is timed in both of
    PyTorch's CPU GEMM libraries, its BLAS (``F.linear``: MKL in the x86
    wheels) and oneDNN (``torch.ops.mkldnn``; in training through
    :func:`morphmlp_mm.models.gemm.linear`, whose backward runs both
    gradient products in oneDNN too), and counts with the faster: the
    floor is what the machine does with the best library at hand, so a
    model cannot beat it by choosing a library, and a library slow on
    this CPU (MKL off Intel) does not flatter everyone's ratio. The floor
    of PyTorch's own products alone is kept (``last`` ``'aten'``).
    Convolutions are timed as PyTorch runs them (oneDNN where it
    chooses). Under ``--amp`` the layers run under the same autocast as
    the models (PyTorch's products only). On a GPU the calls are timed
    as one span per part (no per-call synchronisation, whose latency
    would swamp the small products), in the models' dtype.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor,
                 amp: Optional[str] = None) -> None:
        calls = []
        hooks = [
            m.register_forward_pre_hook(
                lambda mod, args: calls.append((mod, tuple(args[0].shape))))
            for m in model.modules() if isinstance(m, LAYER_TYPES)
        ]
        _infer_once(model, x, hooks)
        self.device, self.amp = x.device, amp
        # The first layer sees the network input, which needs no gradient.
        self.calls = [(mod, shape, i > 0 or shape != tuple(x.shape))
                      for i, (mod, shape) in enumerate(calls)]
        # One random input (and output gradient) per distinct shape.
        self.inputs = {shape: torch.randn(shape, device=self.device)
                       for _, shape in calls}
        self.grads: Dict[Tuple, torch.Tensor] = {}
        self.part_of = {id(mod): name for name, mod in model_parts(model)
                        for mod in mod.modules()}
        #: Totals of the last :meth:`time` / :meth:`time_parts` call:
        #: ``'best'`` (the floor) and per library (``'aten'``, ``'onednn'``
        #: over the Linear calls, the others as PyTorch runs them).
        self.last: Dict[str, float] = {}

    @property
    def per_call(self) -> bool:
        """Whether each call is timed on its own, in each library (the
        CPU), or the calls are timed as spans (other devices)."""
        return self.device.type == 'cpu'

    def libraries(self, mod: nn.Module) -> Tuple[str, ...]:
        from morphmlp_mm.models import gemm
        if isinstance(mod, nn.Linear) and self.per_call and self.amp is None:
            return gemm.libraries()
        return ('aten', )

    def _call(self, mod: nn.Module, inp: torch.Tensor,
              library: str) -> torch.Tensor:
        with autocast(self.device, self.amp):
            if library == 'aten':
                return mod(inp)
            from morphmlp_mm.models import gemm
            with gemm.use_gemm_backend(library):
                return gemm.linear(inp, mod.weight, mod.bias)

    def _book(self, totals: Dict[str, float], times: Dict[str, float]):
        for library in ('aten', 'onednn'):
            totals[library] = totals.get(library, 0.) + times.get(
                library, times['aten'])
        totals['best'] = totals.get('best', 0.) + min(times.values())

    def _spans(self, step: Callable, clock: Callable[[], float]
               ) -> Dict[str, float]:
        """``step(mod, shape, needs_grad)`` for every call, timed as one
        span per run of consecutive calls of a part."""
        parts: Dict[str, float] = {}
        current, start = None, clock()
        for mod, shape, needs_grad in self.calls:
            part = self.part_of.get(id(mod), 'other')
            if current is not None and part != current:
                now = clock()
                parts[current] = parts.get(current, 0.) + now - start
                start = now
            current = part
            step(mod, shape, needs_grad)
        if current is not None:
            parts[current] = parts.get(current, 0.) + clock() - start
        total = sum(parts.values())
        self.last = {'aten': total, 'best': total}
        return parts

    def time_parts(self, clock: Callable[[], float]) -> Dict[str, float]:
        """Inference floor, split by the parts of :func:`model_parts`."""
        parts: Dict[str, float] = {}
        totals: Dict[str, float] = {}
        for mod, _, _ in self.calls:
            mod.eval()
        with torch.no_grad():
            if not self.per_call:
                return self._spans(
                    lambda mod, shape, _: self._call(
                        mod, self.inputs[shape], 'aten'), clock)
            for mod, shape, _ in self.calls:
                times = {}
                for library in self.libraries(mod):
                    start = clock()
                    self._call(mod, self.inputs[shape], library)
                    times[library] = clock() - start
                part = self.part_of.get(id(mod), 'other')
                parts[part] = parts.get(part, 0.) + min(times.values())
                self._book(totals, times)
        self.last = totals
        return parts

    def _grad_input(self, mod: nn.Module, shape: Tuple,
                    needs_grad: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """A training call's input and its output's gradient (one random
        tensor per shape, in the output's dtype)."""
        inp = self.inputs[shape].detach().requires_grad_(needs_grad)
        key = (id(mod), shape)
        if key not in self.grads:
            with torch.no_grad():
                out = self._call(mod, inp, 'aten')
            grad = self.inputs.setdefault(
                tuple(out.shape), torch.randn(out.shape, device=self.device))
            self.grads[key] = grad.to(out.dtype)
        return inp, self.grads[key]

    def _train_call(self, mod: nn.Module, inp: torch.Tensor,
                    grad: torch.Tensor, library: str) -> None:
        self._call(mod, inp, library).backward(grad)

    @staticmethod
    def _drop_grads(mod: nn.Module, inp: torch.Tensor) -> None:
        mod.zero_grad(set_to_none=True)
        inp.grad = None

    def time(self, mode: str, clock: Callable[[], float]) -> float:
        if mode == 'infer':
            return sum(self.time_parts(clock).values())
        for mod, _, _ in self.calls:
            mod.train()
        if not self.per_call:
            # keyed like the calls: a layer called twice at one shape can
            # need its input's gradient in one call and not in the other
            prepared = {
                (id(mod), shape, needs_grad): self._grad_input(
                    mod, shape, needs_grad)
                for mod, shape, needs_grad in self.calls}

            def step(mod, shape, needs_grad):
                inp, grad = prepared[(id(mod), shape, needs_grad)]
                self._train_call(mod, inp, grad, 'aten')
                self._drop_grads(mod, inp)

            self._spans(step, clock)
            return self.last['best']
        totals: Dict[str, float] = {}
        for mod, shape, needs_grad in self.calls:
            inp, grad = self._grad_input(mod, shape, needs_grad)
            times = {}
            for library in self.libraries(mod):
                start = clock()
                self._train_call(mod, inp, grad, library)
                times[library] = clock() - start
                self._drop_grads(mod, inp)
            self._book(totals, times)
        self.last = totals
        return totals['best']


def model_parts(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The top-level parts of a backbone: each child module, the blocks of
    a ModuleList (``blocks1``...) counted as one part."""
    return [(name, child) for name, child in model.named_children()
            if any(True for _ in child.parameters())]


def time_parts(model: nn.Module, x: torch.Tensor,
               clock: Callable[[], float],
               amp: Optional[str] = None) -> Dict[str, float]:
    """One inference call of ``model`` (under the ``--amp`` autocast), its
    time split by :func:`model_parts` (forward hooks; a ModuleList part
    sums the calls of its members)."""
    parts: Dict[str, float] = {}
    starts: Dict[int, float] = {}
    hooks = []
    for name, part in model_parts(model):
        members = list(part) if isinstance(part, nn.ModuleList) else [part]
        for mod in members:
            hooks.append(mod.register_forward_pre_hook(
                lambda m, args: starts.__setitem__(id(m), clock())))
            hooks.append(mod.register_forward_hook(
                lambda m, args, out, name=name: parts.__setitem__(
                    name, parts.get(name, 0.) + clock() - starts[id(m)])))
    _infer_once(model, x, hooks, amp)
    return parts


def _infer_once(model: nn.Module, x: torch.Tensor, hooks: List,
                amp: Optional[str] = None) -> None:
    """One eval-mode, no-grad call of ``model`` (under the ``--amp``
    autocast); ``hooks`` removed after."""
    model.eval()
    try:
        with torch.no_grad(), autocast(x.device, amp):
            model(x)
    finally:
        for hook in hooks:
            hook.remove()


def dense_size(device: torch.device) -> int:
    """Side of the dense reference product: 2048 on the CPU; 8192 on a GPU,
    where a 2048^3 product takes some ten microseconds, about the latency
    of launching it and waiting for it."""
    return 2048 if device.type == 'cpu' else 8192


def dense_matmul_seconds(clock: Callable[[], float],
                         device: torch.device = torch.device('cpu'),
                         amp: Optional[str] = None) -> float:
    """One dense ``n``^3 product (:func:`dense_size`) in the run's dtype
    (fp32, or the ``--amp`` dtype): on the CPU in fp32 the faster of
    PyTorch's BLAS (``torch.mm``) and oneDNN (see :class:`Floor`), else
    PyTorch's, after one untimed product."""
    from morphmlp_mm.models import gemm
    n = dense_size(device)
    dtype = AMP_DTYPES[amp] if amp else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    if device.type != 'cpu' or amp is not None:
        torch.mm(a, b)
        start = clock()
        torch.mm(a, b)
        return clock() - start
    best = float('inf')
    for library in gemm.libraries():
        with gemm.use_gemm_backend(library):
            start = clock()
            gemm.mm(a, b)
            best = min(best, clock() - start)
    return best


# --------------------------------------------------------------------------
# time by op category (--ops)
# --------------------------------------------------------------------------
#: Categories of :func:`op_category`, in report order.
OP_CATEGORIES = ('gemm/conv', 'norm', 'activation', 'copy', 'elementwise',
                 'optimizer', 'view/alloc')
_GEMM_OPS = frozenset({
    'mm', 'addmm', 'addmm_', 'bmm', 'baddbmm', 'addbmm', 'mv', 'addmv',
    'dot', '_linear_pointwise', 'mkldnn_linear'})
_ACTIVATION_OPS = frozenset({
    'gelu', 'gelu_backward', '_softmax', '_softmax_backward_data',
    '_log_softmax', '_log_softmax_backward_data', 'sigmoid',
    'sigmoid_backward', 'silu', 'silu_backward', 'relu', 'relu_',
    'threshold_backward', 'tanh', 'tanh_backward', 'hardswish',
    'hardswish_backward'})
_COPY_OPS = frozenset({
    'clone', 'copy_', '_to_copy', 'contiguous', 'cat', 'stack',
    'constant_pad_nd', 'roll', 'flip', 'repeat', 'repeat_interleave',
    'index', 'index_select', 'gather', 'narrow_copy'})


def op_category(func) -> str:
    """The category of an aten op (an ``OpOverload``) in :class:`OpTimer`.

    ``gemm/conv``: matrix products and convolutions (forward and backward,
    oneDNN's fused ones included): what the GEMM floor times. ``norm``:
    LayerNorm / BatchNorm forward and backward. ``activation``: GELU,
    softmax and the like. ``copy``: data movement into a new layout
    (permutation copies, padding, concatenation). ``view/alloc``: views
    and allocations (metadata only). ``elementwise``: every other op
    (residual sums, scaling, reductions, gradient accumulation, fills).
    ``optimizer`` is booked by the caller, not by op name.
    """
    return category_of(func._overloadpacket.__name__, func.is_view)


def category_of(name: str, is_view: bool = False) -> str:
    """:func:`op_category` by the op's name (``'addmm'``, no ``aten::``).

    ``is_view``: the op is a view (views launch no kernels, so a profiler's
    kernel attribution, which knows only names, can leave it False).
    """
    if name in _GEMM_OPS or 'conv' in name:
        return 'gemm/conv'
    if 'norm' in name:
        return 'norm'
    if name in _ACTIVATION_OPS:
        return 'activation'
    if name in _COPY_OPS:
        return 'copy'
    if is_view or name.startswith(('empty', 'new_empty', 'detach', 'lift',
                                   'alias')):
        return 'view/alloc'
    return 'elementwise'


class OpTimer(TorchDispatchMode):
    """Times every aten op of the calls it is active for, by category.

    A Python dispatch mode sees each op as it is dispatched: the forward's
    and, on the CPU, the autograd engine's backward ops (they run on the
    calling thread); an op's own inner ops are part of it. Each op is timed
    with the run's clock; the mode's Python bookkeeping between ops is
    outside the timed spans, so the category sum stays under the traced
    call. The traced call runs slower than an untraced one, and the ops'
    own times are inflated too (the bookkeeping costs them cache: for
    MorphMLP3D-S16 training the ops summed to 1.1x the untraced step), so
    the split is for shares, the timed rounds for times. Chosen over
    ``torch.profiler``, whose CPU events inflated strided elementwise ops
    several-fold on the machines of this project.

    Args:
        clock: The clock (the run's ``--clock``).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.totals: Dict[str, float] = {}
        self._booked: Optional[str] = None

    @contextlib.contextmanager
    def booking(self, category: str):
        """Book every op inside the block as ``category``."""
        previous, self._booked = self._booked, category
        try:
            yield
        finally:
            self._booked = previous

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = self.clock()
        out = func(*args, **(kwargs or {}))
        category = self._booked or op_category(func)
        self.totals[category] = self.totals.get(category, 0.) + \
            self.clock() - start
        return out


def op_breakdown(built: Built, mode: str,
                 clock: Callable[[], float]) -> Dict[str, float]:
    """One traced inference call or training step (after an untimed step,
    as in the timed rounds): seconds per category, their ``sum`` and the
    traced ``call``."""
    if mode == 'train':
        built.run(mode)
    timer = OpTimer(clock)
    with timer:
        start = clock()
        built.run(mode, clock, timer)
        call = clock() - start
    built.release()
    totals = {c: timer.totals.get(c, 0.) for c in OP_CATEGORIES}
    totals['sum'] = sum(totals.values())
    totals['call'] = call
    return totals


def kernel_totals(events: Sequence) -> Dict[str, float]:
    """GPU kernel time of profiled ops by category (:func:`category_of`).

    ``events`` are ``torch.profiler`` CPU events (``prof.events()``): each
    kernel is booked under the innermost ``aten::`` op that launched it,
    or under ``optimizer`` when an enclosing event is named so (the AdamW
    step is wrapped in ``record_function('optimizer')``). Kernels outside
    any ``aten::`` op count as ``elementwise``.

    Returns:
        dict: seconds per category, plus ``launches`` (the number of
        kernels).
    """
    totals = {c: 0. for c in OP_CATEGORIES}
    launches = 0
    for event in events:
        kernels = getattr(event, 'kernels', None)
        if not kernels:
            continue
        category, node = None, event
        while node is not None:
            if node.name == 'optimizer':
                category = 'optimizer'
                break
            if category is None and node.name.startswith('aten::'):
                category = category_of(node.name[len('aten::'):])
            node = node.cpu_parent
        category = category or 'elementwise'
        totals[category] += sum(k.duration for k in kernels) / 1e6
        launches += len(kernels)
    totals['launches'] = launches
    return totals


class _ProfilerBooking:
    """The ``timer`` of :meth:`Built.run` under ``torch.profiler``: wraps
    a booked block (the AdamW step) in a ``record_function`` of its
    category, which :func:`kernel_totals` reads back."""

    @staticmethod
    def booking(category: str):
        return torch.profiler.record_function(category)


def kernel_breakdown(built: Built, mode: str,
                     clock: Callable[[], float]) -> Dict[str, float]:
    """``--ops`` on a GPU: one inference call or training step (after an
    untimed step) under ``torch.profiler``: GPU kernel seconds per
    category (:func:`kernel_totals`), their ``sum`` (the time the GPU was
    busy), the traced ``call`` (wall clock, synchronised) and
    ``launches``. A ``sum`` well under ``call`` means the CPU's dispatch,
    not the GPU, sets the pace."""
    from torch.profiler import ProfilerActivity, profile
    if mode == 'train':
        built.run(mode)
    with profile(activities=[ProfilerActivity.CPU,
                             ProfilerActivity.CUDA]) as prof:
        start = clock()
        built.run(mode, clock, _ProfilerBooking())
        call = clock() - start
    built.release()
    totals = kernel_totals(prof.events())
    totals['sum'] = sum(totals[c] for c in OP_CATEGORIES)
    totals['call'] = call
    return totals


# --------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------
def count_macs(spec: Spec, built: Built) -> Optional[float]:
    """fvcore-style MACs of one call (MorphMLP: on its plain twin)."""
    from mmengine.analysis import FlopAnalyzer
    model = built.model
    if spec.plain_of is None and _has_morph_blocks(model):
        from morphmlp_mm.models.plain import build_plain
        model = build_plain(model)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        logging.getLogger('mmengine').setLevel(logging.ERROR)
        try:
            analyzer = FlopAnalyzer(model, (built.x, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            return float(analyzer.total())
        except Exception as err:  # a tracer failure must not stop the run
            print(f'  [flops] {spec.name}: {type(err).__name__}: {err}')
            return None


def _has_morph_blocks(model: nn.Module) -> bool:
    from morphmlp_mm.models.blocks import MorphBlock
    return any(isinstance(m, MorphBlock) for m in model.modules())


# --------------------------------------------------------------------------
# memory (fresh subprocess per measurement)
# --------------------------------------------------------------------------
def _proc_status_kb(key: str) -> int:
    with open('/proc/self/status') as f:
        match = re.search(rf'^{key}:\s+(\d+)\s+kB', f.read(), re.M)
    return int(match.group(1)) if match else -1


def child_memory(args) -> None:
    """Run inside the subprocess: one warm-up, then the measured step."""
    torch.set_num_threads(args.threads)
    import mmaction.models  # noqa: F401  (host libraries in the baseline)
    import mmpretrain.models  # noqa: F401
    libs = _proc_status_kb('VmRSS')
    spec = {s.name: s for s in select_specs(args)}[args.child[0]]
    mode = args.child[1]
    built = Built(spec, {}, device=args.device, amp=args.amp)
    built.run(mode)
    if args.device.type == 'cuda':
        # the caching allocator counts every tensor: weights, gradients,
        # optimizer state and activations
        torch.cuda.synchronize(args.device)
        before = torch.cuda.memory_allocated(args.device)
        torch.cuda.reset_peak_memory_stats(args.device)
        built.run(mode)
        torch.cuda.synchronize(args.device)
        peak = torch.cuda.max_memory_allocated(args.device)
        print(CHILD_MARK + json.dumps(dict(
            peak_mb=peak / 2**20, step_mb=(peak - before) / 2**20,
            model_mb=peak / 2**20, libs_mb=0.,
            method='torch.cuda.max_memory_allocated')))
        return
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass
    before = _proc_status_kb('VmRSS')
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        method = 'VmHWM after clear_refs'
    except OSError:
        method = 'VmHWM since start (clear_refs unavailable)'
    built.run(mode)
    peak = _proc_status_kb('VmHWM')
    print(CHILD_MARK + json.dumps(dict(
        peak_mb=peak / 1024, step_mb=(peak - before) / 1024,
        model_mb=(peak - libs) / 1024, libs_mb=libs / 1024, method=method)))


def measure_memory(spec: Spec, mode: str, argv: List[str],
                   threads: int) -> Optional[Dict]:
    """Peak memory of one step of ``spec`` in a fresh subprocess.

    glibc's mmap threshold is set to 64 KiB there, so every freed tensor
    goes back to the kernel and the peak RSS follows the live allocations
    instead of the heap's high-water mark.
    """
    cmd = [sys.executable, osp.abspath(__file__), *argv, '--child',
           spec.name, mode, '--threads', str(threads)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(CHILD_MARK):
            return json.loads(line[len(CHILD_MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    print(f'  [memory] {spec.name} {mode} failed: {" | ".join(tail)}')
    return None


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------
def median(values: Sequence[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def paired_median(num: Optional[Sequence[float]],
                  den: Optional[Sequence[float]]) -> Optional[float]:
    """Median over rounds of ``num[r] / den[r]``; ``None`` without two
    rounds of each (one round has nothing to pair: its ratio is the ratio
    of the medians).

    The two times of a round are taken minutes apart at most (the models of
    a round run one after the other, a floor right after its model), so a
    drift of the machine's speed between rounds (other tenants, frequency)
    divides out of each round's ratio; the ratio of the two medians can
    pair a fast round of one with a slow round of the other.
    """
    if not num or not den or len(num) != len(den) or len(num) < 2:
        return None
    return statistics.median(a / b for a, b in zip(num, den))


def run_benchmark(args, specs: List[Spec]) -> Dict:
    from morphmlp_mm.models import gemm, morph_fc
    torch.set_num_threads(args.threads)
    clock = make_clock(args.clock, args.device)
    batch = specs[0].shape[0]
    meta = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        command='python ' + ' '.join(
            [osp.relpath(osp.abspath(__file__), REPO_ROOT)] + args.argv),
        torch=torch.__version__, threads=torch.get_num_threads(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu=platform.processor() or platform.machine(),
        cpu_model=gemm.cpu_model(), cpu_vendor=gemm.cpu_vendor(),
        gemm_backend=gemm.gemm_backend(),
        launch_lean=morph_fc.launch_lean_setting(),
        cores=os.cpu_count(), loadavg_start=os.getloadavg(),
        repeats=args.repeats, clock=args.clock, batch=batch,
        device=str(args.device), device_name=device_name(args.device),
        amp=args.amp, dtype=(f'{AMP_DTYPES[args.amp]} autocast'.replace(
            'torch.', '') if args.amp else 'float32'),
        dense_n=dense_size(args.device),
        compile=args.compile,
        heap='retained (--retain-heap)' if args.retain_heap else
        'glibc default')
    print(f"torch {meta['torch']}, {meta['device_name']}, {meta['dtype']}, "
          f"batch {batch}, {meta['threads']} threads, "
          f"{meta['cores']} cores ({meta['cpu_model'] or meta['cpu']}), "
          f"{args.clock} clock, loadavg "
          f"{tuple(round(v, 1) for v in meta['loadavg_start'])}, MorphMLP "
          f"training GEMMs: {meta['gemm_backend']}, MorphFC_s launch-lean "
          f"mix: {meta['launch_lean']} (MORPHMLP_LAUNCH_LEAN)")
    if args.threads > 1 and meta['loadavg_start'][0] > (os.cpu_count() or 1):
        print('WARNING: more runnable processes than cores: with several '
              'threads every parallel region waits for a descheduled '
              'thread, and times mostly count those waits. Use --threads 1 '
              '(CPU-time clock).')
    built: Dict[str, Built] = {}
    for spec in specs:
        print(f'building {spec.name} {tuple(spec.shape)}')
        built[spec.name] = Built(spec, built, compile=args.compile,
                                 device=args.device, amp=args.amp)
        spec.results.update(
            params_m=sum(p.numel() for p in built[spec.name].model
                         .parameters()) / 1e6,
            input=list(spec.shape), views=spec.views, note=spec.note,
            plain_of=spec.plain_of, family=spec.family, ours=spec.ours,
            train_only=spec.train_only)

    # One floor per model; a plain twin shares the floor of its owner, and
    # our model's layer calls are recorded on the plain twin.
    floors: Dict[str, Floor] = {}
    if not args.no_floor:
        for spec in specs:
            if spec.train_only:
                continue
            owner = spec.plain_of or spec.name
            if owner in floors:
                continue
            model = built[spec.name].model
            if spec.plain_of is None and _has_morph_blocks(model):
                from morphmlp_mm.models.plain import build_plain
                model = build_plain(model)
            floors[owner] = Floor(model, built[spec.name].x, args.amp)
            spec.results['layer_calls'] = len(floors[owner].calls)
    if not args.no_flops:
        for spec in specs:
            if spec.plain_of is None and not spec.train_only:
                macs = count_macs(spec, built[spec.name])
                # per view: the counted call holds ``batch`` clips
                spec.results['gmacs'] = None if macs is None else \
                    macs / 1e9 / batch
        for spec in specs:
            owner = spec.plain_of or spec.name
            ref = next((s for s in specs if s.name == owner), None)
            if ref is not None and 'gmacs' in ref.results:
                spec.results['gmacs'] = ref.results['gmacs']
            elif spec.train_only:
                base = spec.name[:-len(' cp')]
                base_spec = next((s for s in specs if s.name == base), None)
                if base_spec is not None:
                    spec.results['gmacs'] = base_spec.results.get('gmacs')

    dense = []
    for mode in args.modes:
        mode_specs = [s for s in specs if mode == 'train' or
                      not s.train_only]
        print(f'\n[{mode}] warm-up')
        for spec in mode_specs:
            start = time.perf_counter()
            built[spec.name].run(mode)
            spec.results[f'{mode}_warmup_s'] = time.perf_counter() - start
            built[spec.name].release()
            if args.compile:
                print(f"  {spec.name}: compiled and ran once in "
                      f"{spec.results[f'{mode}_warmup_s']:.0f} s")
            if spec.name in floors:
                floors[spec.name].time(mode, clock)
        times = {s.name: [] for s in mode_specs}
        opt_times = {s.name: [] for s in mode_specs}
        floor_times = {name: [] for name in floors}
        layer_times = {name: [] for name in floors}
        aten_times = {name: [] for name in floors}
        for r in range(args.repeats):
            order = mode_specs[r % len(mode_specs):] + \
                mode_specs[:r % len(mode_specs)]
            for spec in order:
                b = built[spec.name]
                if mode == 'train':
                    b.run(mode)  # untimed: the AdamW moments exist
                start = clock()
                opt_times[spec.name].append(b.run(mode, clock))
                times[spec.name].append(clock() - start)
                b.release()
                if spec.name in floors:
                    # training: the layers' forward + backward, plus the
                    # AdamW step on the same parameters timed inside the
                    # model's own step (no implementation of the layers
                    # avoids it)
                    layers = floors[spec.name].time(mode, clock)
                    layer_times[spec.name].append(layers)
                    floor_times[spec.name].append(
                        layers + opt_times[spec.name][-1])
                    aten_times[spec.name].append(
                        floors[spec.name].last['aten'] +
                        opt_times[spec.name][-1])
            dense.append(dense_matmul_seconds(clock, args.device, args.amp))
            print(f'  round {r + 1}/{args.repeats}: ' + ', '.join(
                f'{s.name} {times[s.name][-1]:.3f}s' for s in mode_specs) +
                  f'  load {os.getloadavg()[0]:.1f}')
        for spec in mode_specs:
            owner = spec.plain_of or spec.name
            res = spec.results
            res[f'{mode}_s'] = median(times[spec.name])
            res[f'{mode}_runs'] = times[spec.name]
            if mode == 'train':
                res['train_optimizer_s'] = median(opt_times[spec.name])
            if owner in floor_times and floor_times[owner]:
                res[f'{mode}_floor_s'] = median(floor_times[owner])
                res[f'{mode}_floor_runs'] = floor_times[owner]
                # the floor of PyTorch's own products alone (the definition
                # of sessions 1-9, when it was the faster library)
                res[f'{mode}_floor_aten_s'] = median(aten_times[owner])
                if mode == 'train':
                    res['train_floor_layers_s'] = median(layer_times[owner])
                res[f'{mode}_x_floor'] = res[f'{mode}_s'] / \
                    res[f'{mode}_floor_s']
    if args.stages and 'infer' in args.modes:
        print('\n[stages] inference split by backbone part (ms)')
        split = {s.name: [] for s in specs if not s.train_only}
        floor_split = {name: [] for name in floors}
        for _ in range(args.repeats):
            for spec in specs:
                if spec.train_only:
                    continue
                b = built[spec.name]
                split[spec.name].append(
                    time_parts(b.model, b.x, clock, args.amp))
                if spec.name in floors:
                    floor_split[spec.name].append(
                        floors[spec.name].time_parts(clock))
        for spec in specs:
            if spec.name in split:
                res = spec.results
                res['infer_parts_ms'] = _median_parts(split[spec.name])
                owner = spec.plain_of or spec.name
                if floor_split.get(owner):
                    res['infer_parts_floor_ms'] = _median_parts(
                        floor_split[owner])
                print(f'  {spec.name}: ' +
                      _fmt_parts(res['infer_parts_ms']))
                if 'infer_parts_floor_ms' in res and spec.plain_of is None:
                    print(f'  {spec.name} floor: ' +
                          _fmt_parts(res['infer_parts_floor_ms']))
    if args.ops:
        on_gpu = args.device.type == 'cuda'
        breakdown = kernel_breakdown if on_gpu else op_breakdown
        print('\n[ops] ' + ('GPU kernel time' if on_gpu else 'time') +
              ' by op category, one traced call (step) per round (ms)')
        for mode in args.modes:
            runs: Dict[str, List[Dict[str, float]]] = {}
            for _ in range(args.repeats):
                for spec in specs:
                    if mode == 'train' or not spec.train_only:
                        runs.setdefault(spec.name, []).append(
                            breakdown(built[spec.name], mode, clock))
            for name, ops in runs.items():
                launches = [r.pop('launches') for r in ops if 'launches' in r]
                res = _median_parts(ops)
                if launches:
                    res['launches'] = median(launches)
                built[name].spec.results[f'{mode}_ops_ms'] = res
                print(f'  {mode} {name}: ' + _fmt_parts(
                    built[name].spec.results[f'{mode}_ops_ms']))
    dense_s = median(dense)
    meta['dense_gflops'] = 2 * meta['dense_n']**3 / dense_s / 1e9 \
        if dense_s else None
    meta['dense_runs_s'] = dense

    if args.memory:
        print('\n[memory] one subprocess per measurement')
        for mode in args.modes:
            for spec in specs:
                if mode == 'infer' and spec.train_only:
                    continue
                mem = measure_memory(spec, mode, args.child_argv,
                                     args.threads)
                if mem is not None:
                    for key in ('peak_mb', 'step_mb', 'model_mb'):
                        spec.results[f'{mode}_{key}'] = mem[key]
                    meta['memory_method'] = mem['method']
                    meta['memory_libs_mb'] = mem['libs_mb']
    meta['loadavg_end'] = os.getloadavg()
    for spec in specs:
        res = spec.results
        if res.get('gmacs') and res.get('infer_s'):
            res['infer_gflops'] = 2 * res['gmacs'] * batch / res['infer_s']
            if meta['dense_gflops']:
                res['infer_dense_frac'] = res['infer_gflops'] / \
                    meta['dense_gflops']
        if res.get('infer_s'):
            res['video_s'] = res['infer_s'] / batch * spec.views
    return dict(meta=meta, models={s.name: s.results for s in specs},
                ratios=compute_ratios(specs, args.reference))


def _fmt_parts(parts: Dict[str, float]) -> str:
    return ', '.join(f'{k} {v:.0f}' for k, v in parts.items())


def _median_parts(runs: List[Dict[str, float]]) -> Dict[str, float]:
    """Per-part medians in ms, parts in the order of the first run."""
    return {k: 1e3 * median([r.get(k, 0.) for r in runs]) for k in runs[0]}


def compute_ratios(specs: List[Spec],
                   references: Dict[str, List[str]]) -> Dict:
    """Ours vs plain twin, ours vs the floor, ``with_cp`` cost, peers."""
    by_name = {s.name: s.results for s in specs}
    ratios: Dict[str, Dict] = {'ours_vs_plain': {}, 'with_cp': {},
                               'peers': {}}
    for spec in specs:
        if spec.plain_of and spec.plain_of in by_name:
            ours, plain = by_name[spec.plain_of], spec.results
            entry = {}
            for mode in MODES:
                if ours.get(f'{mode}_s') and plain.get(f'{mode}_s'):
                    entry[f'{mode}_speedup'] = plain[f'{mode}_s'] / \
                        ours[f'{mode}_s']
                    entry[f'{mode}_ours_x_floor'] = ours.get(
                        f'{mode}_x_floor')
                    entry[f'{mode}_plain_x_floor'] = plain.get(
                        f'{mode}_x_floor')
                    entry[f'{mode}_speedup_paired'] = paired_median(
                        plain.get(f'{mode}_runs'), ours.get(f'{mode}_runs'))
                    for who, res in (('ours', ours), ('plain', plain)):
                        entry[f'{mode}_{who}_x_floor_paired'] = \
                            paired_median(res.get(f'{mode}_runs'),
                                          res.get(f'{mode}_floor_runs'))
            ratios['ours_vs_plain'][spec.plain_of] = entry
        if spec.train_only and spec.name.endswith(' cp'):
            base = by_name.get(spec.name[:-len(' cp')])
            res = spec.results
            if base and base.get('train_s') and res.get('train_s'):
                entry = dict(step_time_increase=res['train_s'] /
                             base['train_s'] - 1)
                paired = paired_median(res.get('train_runs'),
                                       base.get('train_runs'))
                if paired is not None:
                    entry['step_time_increase_paired'] = paired - 1
                for key in ('train_peak_mb', 'train_model_mb',
                            'train_step_mb'):
                    if base.get(key) and res.get(key):
                        entry[f'{key[6:]}_reduction'] = 1 - res[key] / \
                            base[key]
                ratios['with_cp'][spec.name[:-len(' cp')]] = entry
    for family, ref_name in [(f, n) for f, names in references.items()
                             for n in names if n in by_name]:
        ref = by_name[ref_name]
        for spec in specs:
            res = spec.results
            if spec.family != family or spec.ours or spec.plain_of or \
                    spec.train_only:
                continue
            entry = {}
            for key in ('infer_s', 'train_s', 'video_s'):
                if ref.get(key) and res.get(key):
                    entry[key.replace('_s', '') + '_speedup'] = \
                        res[key] / ref[key]
            ratios['peers'][f'{spec.name} / {ref_name}'] = entry
    return ratios


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------
def _fmt(value, digits=2, suffix=''):
    if value is None:
        return '-'
    return f'{value:.{digits}f}{suffix}'


def table_rows(result: Dict) -> Tuple[List[str], List[List[str]]]:
    header = ['model', 'input', 'GMACs', 'infer s', 'clips/s', 'x floor',
              '% dense', 'train s', 'x floor', 'mem MB (inf/train)',
              'views', 's/video']
    rows = []
    for name, res in result['models'].items():
        shape = res['input']
        inp = 'x'.join(str(v) for v in shape[2:])
        mem = '/'.join(_fmt(res.get(k), 0) for k in
                       ('infer_model_mb', 'train_model_mb'))
        rows.append([
            name, inp, _fmt(res.get('gmacs'), 1), _fmt(res.get('infer_s'), 3),
            _fmt(shape[0] / res['infer_s'] if res.get('infer_s') else None,
                 2),
            _fmt(res.get('infer_x_floor'), 2),
            _fmt(100 * res['infer_dense_frac']
                 if res.get('infer_dense_frac') else None, 0),
            _fmt(res.get('train_s'), 3), _fmt(res.get('train_x_floor'), 2),
            mem, str(res.get('views', 1)), _fmt(res.get('video_s'), 2)])
    return header, rows


def ratio_lines(result: Dict) -> List[str]:
    lines = []
    r = result['ratios']
    for name, e in r['ours_vs_plain'].items():
        parts = []
        for mode in MODES:
            if f'{mode}_speedup' in e:
                parts.append(
                    f"{mode} {e[f'{mode}_speedup']:.2f}x the plain "
                    f"algorithm's throughput (ours "
                    f"{_fmt(e[f'{mode}_ours_x_floor'])} x floor, plain "
                    f"{_fmt(e[f'{mode}_plain_x_floor'])} x floor)"
                    + _paired_note(e, mode))
        lines.append(f'{name}: ' + '; '.join(parts))
    for name, e in r['with_cp'].items():
        parts = [f"step time {100 * e['step_time_increase']:+.0f}%"]
        if e.get('step_time_increase_paired') is not None:
            parts[0] += (f" (paired by round "
                         f"{100 * e['step_time_increase_paired']:+.0f}%)")
        if 'model_mb_reduction' in e:
            parts.append(f"training memory (peak RSS above the imported "
                         f"libraries) {-100 * e['model_mb_reduction']:+.0f}%")
        if 'peak_mb_reduction' in e:
            parts.append(f"process peak RSS "
                         f"{-100 * e['peak_mb_reduction']:+.0f}%")
        if 'step_mb_reduction' in e:
            parts.append(f"step memory (above weights, gradients and "
                         f"optimizer state) "
                         f"{-100 * e['step_mb_reduction']:+.0f}%")
        lines.append(f'{name} with_cp: ' + ', '.join(parts))
    for name, e in r['peers'].items():
        parts = []
        for key, label in (('infer_speedup', 'per clip'),
                           ('train_speedup', 'per training step'),
                           ('video_speedup', 'per video at the test views')):
            if key in e:
                parts.append(f'{label} {e[key]:.2f}')
        lines.append(f'time {name}: ' + ', '.join(parts) +
                     ' (> 1: ours is faster)')
    return lines


def _paired_note(entry: Dict, mode: str) -> str:
    """``[paired by round: ...]`` for :func:`ratio_lines`, or ``''``."""
    speedup = entry.get(f'{mode}_speedup_paired')
    if speedup is None:
        return ''
    return (f" [paired by round: {speedup:.2f}x, ours "
            f"{_fmt(entry.get(f'{mode}_ours_x_floor_paired'))} x floor, "
            f"plain {_fmt(entry.get(f'{mode}_plain_x_floor_paired'))} "
            f"x floor]")


def floor_lines(result: Dict) -> List[str]:
    """Where the floor of PyTorch's own products (``F.linear``: its BLAS)
    differs from the floor with the faster library per layer: both, and
    our models' ratio to each."""
    lines = []
    for name, res in result['models'].items():
        if res.get('plain_of') is not None:
            continue
        parts = []
        for mode in MODES:
            best, aten = res.get(f'{mode}_floor_s'), res.get(
                f'{mode}_floor_aten_s')
            if not best or not aten or aten <= 1.005 * best:
                continue
            ratio = res.get(f'{mode}_s', 0.) / aten
            parts.append(f"{mode} {_fmt(best, 3)} s, with PyTorch's own "
                         f"products alone {_fmt(aten, 3)} s "
                         f"(x that floor: {_fmt(ratio)})")
        if parts:
            lines.append(f'{name} floor: ' + '; '.join(parts))
    return lines


def ops_rows(result: Dict) -> Tuple[List[str], List[List[str]]]:
    """The ``--ops`` table: per model and mode, ms per op category, their
    sum, the traced and the untraced (timed rounds) call, the floor's
    layers alone, and the in-situ GEMM time over those layers."""
    header = ['model', 'mode', *OP_CATEGORIES, 'sum', 'traced',
              'untraced', 'floor layers', 'gemm x floor', 'launches']
    rows = []
    for mode in MODES:
        for name, res in result['models'].items():
            ops = res.get(f'{mode}_ops_ms')
            if not ops:
                continue
            layers = res.get('infer_floor_s' if mode == 'infer' else
                             'train_floor_layers_s')
            layers = None if layers is None else 1e3 * layers
            untraced = res.get(f'{mode}_s')
            rows.append([
                name, mode, *(_fmt(ops.get(c), 0) for c in OP_CATEGORIES),
                _fmt(ops['sum'], 0), _fmt(ops['call'], 0),
                _fmt(None if untraced is None else 1e3 * untraced, 0),
                _fmt(layers, 0),
                _fmt(ops['gemm/conv'] / layers if layers else None, 2),
                _fmt(ops.get('launches'), 0)])
    return header, rows


def _text_table(header: List[str], rows: List[List[str]]) -> List[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows))
              for i, h in enumerate(header)]
    out = ['  '.join(h.rjust(w) for h, w in zip(header, widths))]
    out.append('  '.join('-' * w for w in widths))
    out += ['  '.join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return out


def _dense_label(meta: Dict) -> str:
    """``2048^3 fp32`` / ``8192^3 bf16`` (saved runs before ``--amp`` and
    ``--device``: CPU fp32)."""
    return f"{meta.get('dense_n', 2048)}^3 {meta.get('amp') or 'fp32'}"


def _run_label(meta: Dict) -> str:
    """``CPU, fp32`` / ``NVIDIA H100 ..., bf16 autocast``."""
    device = meta.get('device_name') or 'CPU'
    precision = f"{meta['amp']} autocast" if meta.get('amp') else 'fp32'
    return f'{device}, {precision}'


def _on_gpu(meta: Dict) -> bool:
    return meta.get('device', 'cpu').startswith('cuda')


def format_text(result: Dict) -> str:
    out = _text_table(*table_rows(result))
    meta = result['meta']
    out.append('')
    load = [tuple(round(v, 1) for v in meta[k])
            for k in ('loadavg_start', 'loadavg_end')]
    out.append(f"dense {_dense_label(meta)} matmul: "
               f"{_fmt(meta['dense_gflops'], 1)} GFLOP/s; loadavg "
               f'{load[0]} -> {load[1]}')
    out += floor_lines(result)
    if meta.get('compile'):
        out.append(f"models run under torch.compile ({meta['compile']}); "
                   'the floor is the eager layers')
    if meta.get('heap', '').startswith('retained'):
        out.append('glibc heap retained (--retain-heap): no page faults on '
                   'fresh memory in the timed steps')
    out += ratio_lines(result)
    header, rows = ops_rows(result)
    if rows:
        out += ['', 'time by op category (ms, --ops):']
        out += _text_table(header, rows)
    return '\n'.join(out)


def format_markdown(result: Dict) -> str:
    header, rows = table_rows(result)
    meta = result['meta']
    threads = f"{meta['threads']} thread" + ('s' if meta['threads'] > 1
                                             else '')
    clock = {'cpu': 'process CPU time',
             'cuda': 'wall-clock time, GPU synchronised'}.get(
                 meta.get('clock'), 'wall-clock time')
    lines = [
        '# Speed, FLOPs and memory',
        '',
        f"Produced by `tools/analysis/benchmark.py` ({_run_label(meta)}, "
        f"batch {meta['batch']}, {threads}, {clock}, torch {meta['torch']}, "
        f"{meta['date']}"
        + (f", under torch.compile ({meta['compile']}), the floor eager"
           if meta.get('compile') else '')
        + (', glibc heap retained' if meta.get('heap', '').startswith(
            'retained') else '') + '):',
        '',
        '```bash',
        meta['command'],
        '```',
        '',
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join('---' if i == 0 else '---:'
                       for i in range(len(header))) + '|',
    ]
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    device = (f"GPU: {meta.get('device_name')} (CPU: "
              f"{meta.get('cpu_model') or meta.get('cpu')}). "
              if _on_gpu(meta) else
              f"CPU: {meta.get('cpu_model') or meta.get('cpu')}; MorphMLP's "
              f"training GEMMs in {meta.get('gemm_backend', 'aten')} "
              '(`MORPHMLP_GEMM`, `morphmlp_mm.models.gemm`). ')
    lines += [
        '',
        device +
        f"Dense {_dense_label(meta)} matmul in the same run: "
        f"{_fmt(meta['dense_gflops'], 1)} GFLOP/s. Load average "
        f"{tuple(round(v, 1) for v in meta['loadavg_start'])} at the start, "
        f"{tuple(round(v, 1) for v in meta['loadavg_end'])} at the end "
        f"(the machine is shared; times are medians of {meta['repeats']} "
        'interleaved rounds, prefer the ratios; `paired by round`: the '
        'median of the per-round ratios, which a drift of the machine\'s '
        'speed between rounds does not move).'
        + ('' if _on_gpu(meta) else
           ' With more runnable processes than cores, a multi-threaded run '
           'mostly measures threads waiting for a descheduled sibling, so '
           'shared machines are measured with one thread and its CPU '
           'time.'),
        '',
    ]
    lines += [f'- {line}' for line in ratio_lines(result)]
    lines += [f'- {line}' for line in floor_lines(result)]
    lines += [
        '',
        'Columns: `GMACs` per view (fvcore convention; MorphMLP counted on '
        'its plain twin); `infer s` one call (a batch of '
        f"{meta['batch']} clips or images), eval mode, no grad; "
        '`clips/s` clips (images) per second; '
        '`x floor` the time over the GEMM floor (the model\'s own Linear and '
        'Conv layers run alone at their exact shapes, same run, '
        + ('in the models\' dtype, timed as one span per backbone part; '
           if _on_gpu(meta) or meta.get('amp') else
           'each Linear in the faster of PyTorch\'s BLAS and oneDNN; ')
        + 'for '
        'training their forward + backward plus the AdamW step on the '
        'model\'s parameters); `% dense` '
        'achieved 2 x MACs / s over the dense matmul rate (the faster '
        'library); `train s` one '
        'step (forward, mean loss, backward, AdamW; timed after an untimed '
        'step of the same model, so the AdamW moments exist as in '
        'training); `mem MB` '
        + ('peak CUDA memory allocated in one call / step (everything '
           'live: weights, gradients, optimizer state and activations), '
           'in a fresh process after a warm-up step; '
           if _on_gpu(meta) else
           'peak RSS of one call / step above the imported libraries, in '
           'a fresh process after a warm-up step (weights, gradients, '
           'optimizer state and activations); ')
        + '`s/video` the time of one clip x test views. `plain`: the '
        'official MorphFC algorithm '
        '(`morphmlp_mm.models.plain`) on the same weights; `cp`: '
        '`with_cp=True`.',
    ]
    header, rows = ops_rows(result)
    if rows:
        lines += [
            '',
            '## Time by op category (`--ops`)',
            '',
            ('One call (training: one step, after an untimed one) per '
             'round under torch.profiler; each category is the GPU time of '
             'the kernels its aten ops launched, `sum` the time the GPU was '
             'busy (a `sum` well under `traced` means the CPU\'s dispatch '
             'sets the pace), `launches` the kernels per call; medians in '
             'ms. ' if _on_gpu(result['meta']) else
             'One call (training: one step, after an untimed one) per round '
             'under a dispatch mode that times every aten op with the run\'s '
             'clock, forward and backward; medians in ms. ') +
            '`gemm/conv`: '
            'matrix products and convolutions; `norm`: LayerNorm / '
            'BatchNorm; `activation`: GELU, softmax; `copy`: permutation '
            'copies, padding, concatenation; `elementwise`: residual sums, '
            'scaling, reductions, gradient accumulation; `optimizer`: the '
            'AdamW step; `view/alloc`: metadata-only ops. `traced`: the '
            'traced call, `untraced`: the timed rounds\' median; '
            '`floor layers`: the GEMM floor\'s layers alone (training: '
            'without the AdamW step); `gemm x floor`: the in-situ '
            '`gemm/conv` time over them.',
            '',
            '| ' + ' | '.join(header) + ' |',
            '|' + '|'.join('---' if i < 2 else '---:'
                           for i in range(len(header))) + '|',
        ]
        lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines) + '\n'


def save_png(result: Dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = result['models']
    names = [n for n, r in models.items() if r.get('infer_s')]
    fig, axes = plt.subplots(1, 3, figsize=(18, 0.45 * len(names) + 2))
    panels = [
        ('clips (images) / s, inference (log)', 'infer_s', True),
        ('inference time / GEMM floor', 'infer_x_floor', False),
        ('seconds per video at the test views (log)', 'video_s', False),
    ]
    for ax, (title, key, invert) in zip(axes, panels):
        values = []
        for n in names:
            v = models[n].get(key)
            batch = models[n].get('input', [1])[0]
            values.append((batch / v if invert else v) if v else 0)
        colors = ['tab:blue' if not models[n].get('plain_of') else 'tab:gray'
                  for n in names]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(title)
        for i, v in enumerate(values):
            if v:
                ax.text(v, i, f' {v:.2f}', va='center', fontsize=8)
        if key == 'infer_x_floor':
            ax.axvline(1.0, color='k', lw=0.8)
            ax.axvline(1.15, color='tab:red', lw=0.8, ls='--')
        else:
            ax.set_xscale('log')
    meta = result['meta']
    fig.suptitle(f"{_run_label(meta)}, batch {meta['batch']}, "
                 f"{meta['threads']} "
                 f"thread(s), {meta.get('clock', 'wall')} clock, torch "
                 f"{meta['torch']} (gray: plain twin)")
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Throughput, GEMM-floor ratio and memory of backbones.')
    parser.add_argument(
        '--models', nargs='*', default=None,
        help='presets or groups: video, image, cp, all, or names such as '
        '"MorphMLP3D-S32" (case-insensitive; the plain twin comes along)')
    parser.add_argument('--config', help='an OpenMMLab config: its backbone')
    parser.add_argument('--shape', nargs='+', type=int,
                        help='input shape for --config (as get_flops.py)')
    parser.add_argument('--arch', help='a MorphMLP arch (tiny/small/base/'
                        'large or t/s/b/l)')
    parser.add_argument('--frames', type=int, default=16,
                        help='frames for --arch; 0 builds the image model')
    parser.add_argument('--size', type=int, default=224,
                        help='input side for --arch')
    parser.add_argument('--modes', nargs='+', default=['infer'],
                        choices=MODES)
    parser.add_argument('--with-cp', action='store_true',
                        help='add with_cp variants (training only)')
    parser.add_argument('--memory', action='store_true',
                        help='peak memory, one subprocess per measurement')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int,
                        default=torch.get_num_threads())
    parser.add_argument(
        '--device', default='cpu',
        help='cpu (default) or cuda[:N]: where the models, the floor\'s '
        'layers and the dense product run; on a GPU the clock waits for '
        'the queued kernels and --memory reads the CUDA allocator\'s peak')
    parser.add_argument(
        '--amp', choices=sorted(AMP_DTYPES),
        help='run the models and the floor\'s layers under autocast to '
        'this dtype (the backward and the AdamW step outside it, no loss '
        'scaling); the dense product in it too. Default: fp32')
    parser.add_argument(
        '--batch', type=int, default=1,
        help='clips (images) per call; times stay per call, clips/s and '
        's/video are per clip, GMACs per view')
    parser.add_argument(
        '--clock', choices=('auto', 'wall', 'cpu'), default='auto',
        help='cpu: process CPU time, immune to waiting for a loaded CPU '
        '(only meaningful with --threads 1); auto: cpu for one thread, '
        'wall otherwise; on a GPU always wall time after synchronising')
    parser.add_argument('--compile', nargs='?', const='inductor',
                        metavar='BACKEND',
                        help='time every model under torch.compile (backend '
                        'inductor unless named); the GEMM floor stays the '
                        'eager layers')
    parser.add_argument('--retain-heap', action='store_true',
                        help='glibc: serve every allocation from the heap '
                        'and never give freed memory back to the kernel, '
                        'so that no step pays page faults on fresh memory '
                        '(what caching allocators such as jemalloc or '
                        'tcmalloc approach); the default leaves glibc as '
                        'a training process gets it')
    parser.add_argument('--no-floor', action='store_true')
    parser.add_argument('--no-flops', action='store_true')
    parser.add_argument('--stages', action='store_true',
                        help='after the timed rounds, split one inference '
                        'per round by backbone part (stem, each stage\'s '
                        'blocks, each downsampling; eager models), the GEMM '
                        'floor split the same way')
    parser.add_argument('--ops', action='store_true',
                        help='after the timed rounds, time one call (step) '
                        'per round op by op and split it by category: '
                        'GEMM/conv, norm, activation, layout copies, other '
                        'elementwise, optimizer (eager models only); with '
                        '--device cuda: the GPU kernel time of each '
                        'category (torch.profiler) and the kernel launches')
    parser.add_argument('--quick', action='store_true',
                        help='tiny inputs, for a smoke run')
    parser.add_argument('--reference', nargs=2, action='append',
                        metavar=('FAMILY', 'MODEL'),
                        help='a model peers are compared with, per family; '
                        'repeat for several (default: video MorphMLP3D-S32 '
                        'and -S16, image MorphMLP-T and -S)')
    parser.add_argument('--from-json', help='re-print and re-write the '
                        'outputs of a saved run (no measurement)')
    parser.add_argument('--json', help='write all results here')
    parser.add_argument('--png', help='write a chart here')
    parser.add_argument('--md', help='write a markdown table here')
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    return parser


def specs_from_json(result: Dict) -> List[Spec]:
    """Specs carrying the saved results of a run (for ``--from-json``)."""
    names = set(result['models'])
    specs = []
    for name, res in result['models'].items():
        spec = Spec(name, res['family'], build=None,
                    shape=tuple(res['input']), views=res.get('views', 1),
                    plain_of=res.get('plain_of'),
                    train_only=res.get('train_only', name.endswith(' cp')),
                    ours=res.get('ours', f'{name} plain' in names))
        spec.results = res
        specs.append(spec)
    return specs


def write_outputs(result: Dict, args) -> None:
    print()
    print(format_text(result))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
        print(f'\nwrote {args.json}')
    if args.png:
        save_png(result, args.png)
        print(f'wrote {args.png}')
    if args.md:
        os.makedirs(osp.dirname(osp.abspath(args.md)), exist_ok=True)
        with open(args.md, 'w') as f:
            f.write(format_markdown(result))
        print(f'wrote {args.md}')


def parse_device(name: str) -> torch.device:
    """``--device``: ``cpu`` or ``cuda[:N]`` (not yet checked for a GPU,
    see :func:`present_device`)."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f'--device {name!r} is not a device name; use cpu '
                         f'or cuda[:N] ({err})') from err
    if device.type not in ('cpu', 'cuda'):
        raise ValueError(f'--device {name!r}: only cpu and cuda[:N] are '
                         'supported')
    return device


def present_device(device: torch.device) -> torch.device:
    """``device`` with its index, after checking that the GPU exists."""
    name = str(device)
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() \
            else 0
        if count == 0:
            raise ValueError(f'--device {name!r}: no CUDA device is '
                             'available here (torch.cuda.is_available() '
                             'is False)')
        if device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
        elif device.index >= count:
            raise ValueError(f'--device {name!r}: this machine has {count} '
                             f'CUDA device(s), indices 0-{count - 1}')
    return device


def retain_heap() -> None:
    """glibc ``mallopt``: no mmap for large blocks (M_MMAP_THRESHOLD), no
    trimming of the heap top (M_TRIM_THRESHOLD), both set to 1 GiB."""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError as err:
        raise RuntimeError(f'--retain-heap needs glibc (libc.so.6), which '
                           f'this system does not load: {err}') from err
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_mmap_threshold, 1 << 30)
            and libc.mallopt(m_trim_threshold, 1 << 30)):
        raise RuntimeError('--retain-heap: glibc mallopt refused the '
                           'thresholds')


def main(argv: Optional[List[str]] = None) -> Dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import_plugin()
    if args.repeats < 1:
        raise ValueError(f'--repeats must be >= 1, got {args.repeats}')
    if args.threads < 1:
        raise ValueError(f'--threads must be >= 1, got {args.threads}')
    if args.batch < 1:
        raise ValueError(f'--batch must be >= 1, got {args.batch}')
    if args.ops and args.compile:
        raise ValueError('--ops times eager aten ops one by one; it cannot '
                         'be combined with --compile')
    args.device = parse_device(args.device)
    if args.device.type == 'cuda':
        if args.clock == 'cpu':
            raise ValueError('--clock cpu counts this process\'s CPU time, '
                             'not the GPU\'s: use --clock wall or auto with '
                             '--device cuda')
        args.clock = 'cuda'
    elif args.clock == 'auto':
        args.clock = 'cpu' if args.threads == 1 else 'wall'
    args.device = present_device(args.device)
    if args.child:
        child_memory(args)
        return {}
    if args.retain_heap:
        retain_heap()
    args.argv = argv
    # what a memory subprocess needs to rebuild the same specs
    keep = []
    skip_next = 0
    for i, token in enumerate(argv):
        if skip_next:
            skip_next -= 1
            continue
        if token in ('--json', '--png', '--md', '--repeats', '--threads'):
            skip_next = 1
            continue
        if token == '--memory':
            continue
        keep.append(token)
    args.child_argv = keep
    references = {'video': ['MorphMLP3D-S32', 'MorphMLP3D-S16'],
                  'image': ['MorphMLP-T', 'MorphMLP-S']}
    if args.reference:
        references = {}
        for family, model in args.reference:
            references.setdefault(family, []).append(model)
    args.reference = references
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        result['ratios'] = compute_ratios(specs_from_json(result),
                                          args.reference)
        write_outputs(result, args)
        return result
    if not args.models and not args.config and not args.arch:
        raise ValueError('pass --models, --config or --arch')
    specs = select_specs(args)
    result = run_benchmark(args, specs)
    write_outputs(result, args)
    return result


if __name__ == '__main__':
    main()
