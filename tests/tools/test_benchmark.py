"""Smoke run of tools/analysis/benchmark.py at tiny shapes (no timing asserts)."""
import json
import os
import subprocess
import sys


def test_benchmark_smoke(tmp_path, repo_root):
    out = tmp_path / 'b.json'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--arch', 'tiny',
         '--frames', '4', '--size', '64', '--modes', 'infer', 'train',
         '--with-cp', '--repeats', '1', '--threads', '1', '--quick',
         '--no-flops', '--json', str(out), '--png',
         str(tmp_path / 'b.png'), '--md', str(tmp_path / 'b.md')],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    name = 'MorphMLP3D-tiny-4f'
    ours = result['models'][name]
    assert ours['infer_s'] > 0 and ours['train_s'] > 0
    assert ours['infer_x_floor'] > 0 and ours['infer_floor_s'] > 0
    ratios = result['ratios']['ours_vs_plain'][name]
    assert ratios['infer_speedup'] > 0 and ratios['train_speedup'] > 0
    assert name in result['ratios']['with_cp']
    assert (tmp_path / 'b.png').stat().st_size > 5000
    assert name in (tmp_path / 'b.md').read_text()
