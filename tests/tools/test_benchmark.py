"""Smoke runs of tools/analysis/benchmark.py at tiny shapes (no timing asserts)."""
import ctypes
import json
import os
import subprocess
import sys
import time

import pytest
from device_check import OneDevicePerOp
from tool_scripts import load_script

#: A one-block-per-stage MorphMLP3D arch for in-process Floor tests.
TINY_ARCH = dict(depths=[1, 1, 1, 1], channels=[8, 16, 56, 98],
                 chunk_lengths=[4, 8, 28, 49])

TINY = ['--arch', 'tiny', '--frames', '4', '--size', '64', '--modes', 'infer',
        'train', '--repeats', '1', '--threads', '1', '--quick', '--no-flops']


def run_benchmark(repo_root, tmp_path, *extra):
    """Run the tool on the tiny arch; returns (stdout, JSON result)."""
    out = tmp_path / 'b.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', *TINY, *extra,
         '--json', str(out), '--md', str(tmp_path / 'b.md')],
        cwd=repo_root, env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_benchmark_smoke(tmp_path, repo_root):
    _, result = run_benchmark(repo_root, tmp_path, '--with-cp', '--png',
                              str(tmp_path / 'b.png'))
    name = 'MorphMLP3D-tiny-4f'
    ours = result['models'][name]
    assert ours['infer_s'] > 0 and ours['train_s'] > 0
    assert ours['infer_x_floor'] > 0 and ours['infer_floor_s'] > 0
    # the training floor: the layers' forward + backward plus the AdamW
    # step, which is timed inside the model's own step
    assert 0 < ours['train_optimizer_s'] < ours['train_s']
    assert ours['train_floor_s'] > ours['train_floor_layers_s'] > 0
    ratios = result['ratios']['ours_vs_plain'][name]
    assert ratios['infer_speedup'] > 0 and ratios['train_speedup'] > 0
    assert name in result['ratios']['with_cp']
    assert result['meta']['compile'] is None
    assert (tmp_path / 'b.png').stat().st_size > 5000
    assert name in (tmp_path / 'b.md').read_text()


def test_benchmark_under_torch_compile(tmp_path, repo_root):
    """--compile runs every model through torch.compile (here the aot_eager
    backend: no C++ build) and says so in the outputs."""
    stdout, result = run_benchmark(repo_root, tmp_path, '--compile',
                                   'aot_eager')
    assert 'compiled and ran once' in stdout
    assert 'torch.compile (aot_eager)' in stdout
    assert result['meta']['compile'] == 'aot_eager'
    ours = result['models']['MorphMLP3D-tiny-4f']
    assert ours['infer_s'] > 0 and ours['train_s'] > 0
    assert ours['infer_warmup_s'] > 0
    assert 'torch.compile (aot_eager)' in (tmp_path / 'b.md').read_text()


def test_benchmark_stages_and_ops_split(tmp_path, repo_root):
    """--stages splits one inference per round by backbone part, for ours,
    the plain twin and the floor, with the same part names (here with the
    glibc heap retained, which the outputs say); --ops splits a call and a
    training step by op category."""
    stdout, result = run_benchmark(repo_root, tmp_path, '--stages',
                                   '--retain-heap', '--ops')
    assert '[stages]' in stdout
    assert result['meta']['heap'].startswith('retained')
    assert 'glibc heap retained' in stdout
    ours = result['models']['MorphMLP3D-tiny-4f']
    plain = result['models']['MorphMLP3D-tiny-4f plain']
    parts = ['patch_embed1', 'blocks1', 'patch_embed2', 'blocks2',
             'patch_embed3', 'blocks3', 'patch_embed4', 'blocks4']
    for res in (ours, plain):
        assert [p for p in res['infer_parts_ms'] if p in parts] == parts
        assert all(v > 0 for v in res['infer_parts_ms'].values())
    floor = ours['infer_parts_floor_ms']
    assert set(floor) <= set(ours['infer_parts_ms'])
    assert all(floor[p] > 0 for p in parts)
    # --ops: every category of both modes; only training has an optimizer
    assert '[ops]' in stdout
    for res in (ours, plain):
        for mode in ('infer', 'train'):
            ops = res[f'{mode}_ops_ms']
            for category in ('gemm/conv', 'norm', 'activation', 'copy',
                             'elementwise'):
                assert ops[category] > 0, (mode, category, ops)
            assert 0 < ops['sum'] <= ops['call']
        assert res['infer_ops_ms']['optimizer'] == 0
        assert res['train_ops_ms']['optimizer'] > 0
    md = (tmp_path / 'b.md').read_text()
    assert '## Time by op category' in md and md.count('| train |') == 2


def test_op_categories():
    """The --ops categories of the ops a MorphMLP step runs."""
    import torch
    tool = load_script('tools/analysis/benchmark.py')
    aten = torch.ops.aten
    expected = {
        aten.mm.default: 'gemm/conv',
        aten.addmm_.default: 'gemm/conv',
        aten.convolution_backward.default: 'gemm/conv',
        aten.native_layer_norm_backward.default: 'norm',
        aten.native_batch_norm.default: 'norm',
        aten.gelu_backward.default: 'activation',
        aten._softmax.default: 'activation',
        aten.clone.default: 'copy',
        aten.constant_pad_nd.default: 'copy',
        aten.addcmul_.default: 'elementwise',
        aten.sum.dim_IntList: 'elementwise',
        aten.permute.default: 'view/alloc',
        aten.empty_like.default: 'view/alloc',
    }
    assert {op: tool.op_category(op) for op in expected} == expected


def test_kernel_totals_books_each_kernel_once():
    """``--ops`` on a GPU: a kernel counts under the innermost aten op that
    launched it, under ``optimizer`` inside that range, and once only
    (parents' kernels are their own, not their children's)."""
    from types import SimpleNamespace as Event
    tool = load_script('tools/analysis/benchmark.py')

    def event(name, parent=None, kernels=()):
        return Event(name=name, cpu_parent=parent,
                     kernels=[Event(duration=us) for us in kernels])

    linear = event('aten::linear')
    addmm = event('aten::addmm', linear, [300.])
    to_copy = event('aten::_to_copy', linear)
    copy = event('aten::copy_', to_copy, [20., 30.])
    norm = event('aten::native_layer_norm', None, [100.])
    engine = event('autograd::engine::evaluate_function: AddBackward0')
    stray = event('cudaLaunchKernel', engine, [5.])
    step = event('optimizer')
    foreach = event('aten::_foreach_mul_', step, [40., 2.])
    totals = tool.kernel_totals(
        [linear, addmm, to_copy, copy, norm, engine, stray, step, foreach])
    assert totals.pop('launches') == 7
    expected = dict.fromkeys(tool.OP_CATEGORIES, 0.)
    expected.update({'gemm/conv': 300e-6, 'copy': 50e-6, 'norm': 100e-6,
                     'elementwise': 5e-6, 'optimizer': 42e-6})
    assert totals.keys() == expected.keys()
    for key, value in expected.items():
        assert totals[key] == pytest.approx(value), key


def test_category_of_names_matches_ops():
    import torch
    tool = load_script('tools/analysis/benchmark.py')
    aten = torch.ops.aten
    for op in (aten.mm.default, aten.native_layer_norm.default,
               aten.gelu.default, aten.copy_.default, aten.add.Tensor,
               aten.empty.memory_format):
        assert tool.category_of(op._overloadpacket.__name__) == \
            tool.op_category(op)


def test_ops_with_compile_is_refused():
    tool = load_script('tools/analysis/benchmark.py')
    with pytest.raises(ValueError, match='--ops .* --compile'):
        tool.main(['--arch', 'tiny', '--ops', '--compile'])


def test_retain_heap_without_glibc_says_so(monkeypatch):
    """--retain-heap on a system without glibc: a clear error naming the
    option, not an OSError from ctypes."""
    tool = load_script('tools/analysis/benchmark.py')

    def no_glibc(name):
        raise OSError(f'{name}: cannot open shared object file')

    monkeypatch.setattr(ctypes, 'CDLL', no_glibc)
    with pytest.raises(RuntimeError, match='--retain-heap needs glibc'):
        tool.retain_heap()


def test_paired_ratios_follow_rounds_not_medians():
    """A model that is 1.3x faster in every round is reported as 1.3x
    paired by round, even where the rounds' medians pair a fast round of
    one model with a slow round of the other (here 2.6x)."""
    tool = load_script('tools/analysis/benchmark.py')
    ours = tool.Spec('M', 'video', lambda: None, (1, 3, 4, 8, 8), ours=True)
    plain = tool.Spec('M plain', 'video', lambda: None, (1, 3, 4, 8, 8),
                      plain_of='M')
    cp = tool.Spec('M cp', 'video', lambda: None, (1, 3, 4, 8, 8),
                   train_only=True)
    ours_runs, plain_runs = [1.0, 1.0, 2.0], [1.3, 2.6, 2.6]
    floor_runs = [0.8, 0.5, 1.6]
    for spec, runs in ((ours, ours_runs), (plain, plain_runs)):
        spec.results.update(infer_s=tool.median(runs), infer_runs=runs,
                            infer_floor_runs=floor_runs,
                            infer_x_floor=tool.median(runs) /
                            tool.median(floor_runs))
    ours.results.update(train_s=1.0, train_runs=[1.0, 2.0, 1.0])
    cp.results.update(train_s=1.2, train_runs=[1.1, 2.2, 1.1])
    ratios = tool.compute_ratios([ours, plain, cp], {})
    entry = ratios['ours_vs_plain']['M']
    assert entry['infer_speedup'] == pytest.approx(2.6)
    assert entry['infer_speedup_paired'] == pytest.approx(1.3)
    # ours / floor per round: 1.25, 2.0, 1.25; plain: 1.625, 5.2, 1.625
    assert entry['infer_ours_x_floor_paired'] == pytest.approx(1.25)
    assert entry['infer_plain_x_floor_paired'] == pytest.approx(1.625)
    assert ratios['with_cp']['M']['step_time_increase'] == \
        pytest.approx(0.2)
    assert ratios['with_cp']['M']['step_time_increase_paired'] == \
        pytest.approx(0.1)
    lines = tool.ratio_lines(dict(ratios=ratios))
    assert '[paired by round: 1.30x, ours 1.25 x floor, plain 1.62 x floor]' \
        in lines[0]
    assert 'step time +20% (paired by round +10%)' in lines[1]
    # one round has nothing to pair: no paired ratio, no paired note
    assert tool.paired_median([2.0], [1.0]) is None
    assert tool.paired_median([1.0, 2.0], [1.0]) is None
    for spec in (ours, plain, cp):
        for key in ('infer_runs', 'infer_floor_runs', 'train_runs'):
            if key in spec.results:
                spec.results[key] = spec.results[key][:1]
    ratios = tool.compute_ratios([ours, plain, cp], {})
    assert ratios['ours_vs_plain']['M']['infer_speedup_paired'] is None
    assert 'step_time_increase_paired' not in ratios['with_cp']['M']
    assert not any('paired' in line
                   for line in tool.ratio_lines(dict(ratios=ratios)))


@pytest.mark.parametrize('mode', ['infer', 'train'])
def test_floor_takes_the_faster_library_per_layer(mode, monkeypatch):
    """The floor records every Linear / Conv call of the plain twin (the
    MLP's fc1 / fc2 included) and books each Linear call at the faster of
    the two libraries; the floor of PyTorch's own products alone is kept.
    A fake clock makes oneDNN 1 tick per Linear call, PyTorch's 2 (and 3
    per conv, PyTorch's only)."""
    import torch
    import torch.nn as nn
    from morphmlp_mm import MorphMLP3D
    from morphmlp_mm.models import gemm
    from morphmlp_mm.models.plain import build_plain
    tool = load_script('tools/analysis/benchmark.py')
    model = MorphMLP3D(TINY_ARCH, num_frames=4)
    plain = build_plain(model)
    floor = tool.Floor(plain, torch.randn(1, 3, 4, 32, 32))
    linears = {id(m) for m in plain.modules() if isinstance(m, nn.Linear)}
    called = {id(mod) for mod, _, _ in floor.calls}
    assert linears <= called  # fc1, fc2, proj, reweight... all recorded
    now = [0.]
    real_call = tool.Floor._call

    def fake_call(self, mod, inp, library):
        if isinstance(mod, nn.Linear):
            now[0] += 2. if library == 'aten' else 1.
        else:
            now[0] += 3.
        return real_call(self, mod, inp, library)

    monkeypatch.setattr(tool.Floor, '_call', fake_call)
    n_linear = sum(isinstance(mod, nn.Linear) for mod, _, _ in floor.calls)
    n_conv = len(floor.calls) - n_linear
    total = floor.time(mode, lambda: now[0])
    if len(gemm.libraries()) == 2:
        assert total == floor.last['best'] == n_linear + 3 * n_conv
        assert floor.last['onednn'] == n_linear + 3 * n_conv
    else:
        assert total == 2 * n_linear + 3 * n_conv
    assert floor.last['aten'] == 2 * n_linear + 3 * n_conv


def test_benchmark_amp_and_batch(tmp_path, repo_root):
    """--amp bf16 --batch 2 (on the CPU): models and floor under autocast,
    per-clip throughput and per-view MACs, the run labelled as such, and
    memory measured in the child processes with the same settings."""
    tiny = ['--arch', 'tiny', '--frames', '4', '--size', '64', '--modes',
            'infer', 'train', '--repeats', '1', '--threads', '1', '--quick']
    args = [*tiny, '--no-flops', '--amp', 'bf16', '--batch', '2',
            '--memory']
    out = tmp_path / 'b.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', *args, '--json',
         str(out), '--md', str(tmp_path / 'b.md')],
        cwd=repo_root, env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    meta = result['meta']
    assert meta['amp'] == 'bf16' and meta['dtype'] == 'bfloat16 autocast'
    assert meta['batch'] == 2 and meta['device'] == 'cpu'
    ours = result['models']['MorphMLP3D-tiny-4f']
    assert ours['input'] == [2, 3, 4, 64, 64]
    assert ours['infer_x_floor'] > 0 and ours['train_x_floor'] > 0
    assert ours['train_model_mb'] > 0 and ours['infer_model_mb'] > 0
    assert ours['video_s'] == pytest.approx(ours['infer_s'] / 2 * 4)
    md = (tmp_path / 'b.md').read_text()
    assert '(CPU, bf16 autocast, batch 2,' in md
    assert 'Dense 2048^3 bf16 matmul' in md
    row = next(line for line in md.splitlines()
               if line.startswith('| MorphMLP3D-tiny-4f |'))
    assert f"| {2 / ours['infer_s']:.2f} |" in row  # clips/s per clip
    # per-view MACs do not depend on the batch (counted in-process)
    tool = load_script('tools/analysis/benchmark.py')
    macs = {}
    for batch in (1, 2):
        res = tool.main([*tiny[:6], '--modes', 'infer', '--repeats', '1',
                         '--quick', '--no-floor', '--batch', str(batch)])
        macs[batch] = res['models']['MorphMLP3D-tiny-4f']['gmacs']
    assert macs[2] == pytest.approx(macs[1]) and macs[1] > 0


def test_floor_under_amp_uses_the_models_dtype():
    """Under --amp the floor's Linear calls run under the same autocast
    (PyTorch's products only) and the backward gets a gradient in the
    output's dtype."""
    import torch
    import torch.nn as nn
    from morphmlp_mm import MorphMLP3D
    from morphmlp_mm.models.plain import build_plain
    tool = load_script('tools/analysis/benchmark.py')
    model = MorphMLP3D(TINY_ARCH, num_frames=4)
    floor = tool.Floor(build_plain(model), torch.randn(1, 3, 4, 32, 32),
                       amp='bf16')
    linear = next(mod for mod, _, _ in floor.calls
                  if isinstance(mod, nn.Linear))
    assert floor.libraries(linear) == ('aten', )
    assert floor.time('train', time.perf_counter) > 0
    dtypes = {floor.grads[(id(mod), shape)].dtype
              for mod, shape, _ in floor.calls if isinstance(mod, nn.Linear)}
    assert dtypes == {torch.bfloat16}


@pytest.mark.parametrize('mode', ['infer', 'train'])
def test_floor_off_the_cpu_is_timed_in_spans(mode):
    """Off the CPU (here ``meta``: a GPU's code path without a GPU) the
    floor reads the clock once per run of a backbone part's calls, not
    around every call (on a GPU each read waits for the device), and books
    each span to its part."""
    import torch
    from morphmlp_mm import MorphMLP3D
    from morphmlp_mm.models.plain import build_plain
    tool = load_script('tools/analysis/benchmark.py')
    plain = build_plain(MorphMLP3D(TINY_ARCH, num_frames=4)).to('meta')
    floor = tool.Floor(plain, torch.empty(1, 3, 4, 32, 32, device='meta'))
    assert not floor.per_call
    reads = []

    def clock():
        reads.append(len(reads))
        return float(len(reads))

    total = floor.time(mode, clock)
    parts = [floor.part_of.get(id(mod), 'other') for mod, _, _ in floor.calls]
    runs = 1 + sum(a != b for a, b in zip(parts, parts[1:]))
    assert len(reads) == runs + 1
    assert total == floor.last['best'] == floor.last['aten'] == runs
    split = floor.time_parts(clock)
    assert list(split) == list(dict.fromkeys(parts))
    assert sum(split.values()) == runs


def test_device_option_errors():
    """--device: clear errors naming the option and the value."""
    import torch
    tool = load_script('tools/analysis/benchmark.py')
    with pytest.raises(ValueError, match="--device 'gpu0' is not a device"):
        tool.main(['--arch', 'tiny', '--device', 'gpu0'])
    with pytest.raises(ValueError, match="--device 'meta': only cpu and"):
        tool.main(['--arch', 'tiny', '--device', 'meta'])
    with pytest.raises(ValueError, match='--clock cpu .* --device cuda'):
        tool.main(['--arch', 'tiny', '--device', 'cuda', '--clock', 'cpu'])
    with pytest.raises(ValueError, match='--batch must be >= 1, got 0'):
        tool.main(['--arch', 'tiny', '--batch', '0'])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device 'cuda': no CUDA"):
            tool.main(['--arch', 'tiny', '--device', 'cuda'])


def test_stages_split_runs_under_amp():
    """--stages times the model parts under the same autocast as the
    timed rounds."""
    import torch
    from morphmlp_mm import MorphMLP3D
    tool = load_script('tools/analysis/benchmark.py')
    model = MorphMLP3D(TINY_ARCH, num_frames=4)
    dtypes = []
    model.blocks1[0].register_forward_hook(
        lambda mod, args, out: dtypes.append(out.dtype))
    x = torch.randn(1, 3, 4, 32, 32)
    parts = tool.time_parts(model, x, time.perf_counter, 'bf16')
    parts_fp32 = tool.time_parts(model, x, time.perf_counter)
    assert dtypes == [torch.bfloat16, torch.float32]
    assert list(parts) == list(parts_fp32) and 'blocks1' in parts


def test_whole_run_with_device_cuda_on_meta(tmp_path, monkeypatch):
    """``--device cuda`` end to end without a GPU: the device is replaced by
    ``meta`` (shapes, no data) after the option checks. Our model, its
    plain twin and its ``with_cp`` twin, the floor's layers and the dense
    product all run there, and :class:`OneDevicePerOp` fails any op that
    takes tensors on two devices, as a GPU would (``meta`` alone lets some
    through, a product with a CPU operand for one); and every read of the
    clock first synchronises the device."""
    import torch
    tool = load_script('tools/analysis/benchmark.py')
    syncs = []
    monkeypatch.setattr(torch.cuda, 'synchronize',
                        lambda device=None: syncs.append(device))
    monkeypatch.setattr(tool, 'present_device',
                        lambda device: torch.device('meta'))
    monkeypatch.setattr(tool, 'device_name', lambda device: 'stand-in GPU')
    out = tmp_path / 'b.json'
    with OneDevicePerOp() as check:
        tool.main(['--arch', 'tiny', '--frames', '4', '--size', '64',
                   '--device', 'cuda', '--modes', 'infer', 'train',
                   '--repeats', '1', '--quick', '--no-flops', '--with-cp',
                   '--batch', '2', '--json', str(out), '--md',
                   str(tmp_path / 'b.md')])
    # models are built and the clip drawn on the CPU, then moved
    assert torch.device('meta') in check.devices
    result = json.loads(out.read_text())
    meta = result['meta']
    assert (meta['clock'], meta['device'], meta['batch']) == ('cuda', 'meta',
                                                              2)
    assert meta['dense_n'] == 8192 and meta['device_name'] == 'stand-in GPU'
    assert syncs and set(syncs) == {torch.device('meta')}
    ours = result['models']['MorphMLP3D-tiny-4f']
    for key in ('infer_s', 'infer_floor_s', 'train_s', 'train_floor_s'):
        assert ours[key] > 0, key
    assert 'MorphMLP3D-tiny-4f' in result['ratios']['with_cp']


def test_child_memory_on_a_gpu_reads_the_caching_allocator(monkeypatch,
                                                          capsys):
    """The memory child on a GPU: one warm-up step, then the allocator's
    peak over the measured step, reset in between; the step's memory is
    the peak less what was allocated before it (weights, gradients, AdamW
    state)."""
    import torch
    tool = load_script('tools/analysis/benchmark.py')
    events = []

    class StubBuilt:
        def __init__(self, spec, owners, device, amp):
            events.append(('build', spec.name, str(device), amp))

        def run(self, mode):
            events.append(('run', mode))

    fake = {'allocated': 100 * 2**20, 'peak': 350 * 2**20}
    monkeypatch.setattr(tool, 'Built', StubBuilt)
    monkeypatch.setattr(torch.cuda, 'synchronize',
                        lambda device=None: events.append(('sync', )))
    monkeypatch.setattr(torch.cuda, 'memory_allocated',
                        lambda device=None: fake['allocated'])
    monkeypatch.setattr(torch.cuda, 'reset_peak_memory_stats',
                        lambda device=None: events.append(('reset', )))
    monkeypatch.setattr(torch.cuda, 'max_memory_allocated',
                        lambda device=None: fake['peak'])
    args = tool.build_parser().parse_args(
        ['--arch', 'tiny', '--frames', '4', '--size', '64', '--amp', 'bf16'])
    args.device = torch.device('cuda', 0)
    args.child = ['MorphMLP3D-tiny-4f', 'train']
    tool.child_memory(args)
    assert events == [('build', 'MorphMLP3D-tiny-4f', 'cuda:0', 'bf16'),
                      ('run', 'train'), ('sync', ), ('reset', ),
                      ('run', 'train'), ('sync', )]
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(tool.CHILD_MARK)
    got = json.loads(line[len(tool.CHILD_MARK):])
    assert (got['peak_mb'], got['step_mb']) == (350, 250)
    assert got['method'] == 'torch.cuda.max_memory_allocated'


def test_present_device_resolves_the_gpu_index(monkeypatch):
    """``cuda`` takes the current device's index; an index past the
    machine's GPUs is refused with the indices there are."""
    import torch
    tool = load_script('tools/analysis/benchmark.py')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 1)
    assert tool.present_device(torch.device('cuda')) == torch.device(
        'cuda', 1)
    assert tool.present_device(torch.device('cuda:0')) == torch.device(
        'cuda', 0)
    with pytest.raises(ValueError, match=r"--device 'cuda:2': this machine "
                       r'has 2 CUDA device\(s\), indices 0-1'):
        tool.present_device(torch.device('cuda:2'))
    assert tool.present_device(torch.device('cpu')) == torch.device('cpu')
