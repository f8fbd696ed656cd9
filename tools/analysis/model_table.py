"""Print params and GMACs of every MorphMLP variant and run one forward.

Params include a linear classification head (1000 classes for images,
400 for video) so that they compare with the paper and the official code.
MACs come from ``mmengine.analysis`` (fvcore-style: one multiply-add is one
"FLOP") for the backbone at 224 x 224 (video: one 3 x T x 224 x 224 view).

Usage::

    python tools/analysis/model_table.py            # every variant
    python tools/analysis/model_table.py --quick    # params only, no MACs
    python tools/analysis/model_table.py --json out.json
"""
import argparse
import json
import logging
import time
import warnings

import torch

import morphmlp_mm  # noqa: F401  (applies host workarounds)
from morphmlp_mm import MorphMLP, MorphMLP3D

#: name, class, arch, frames, classes, reference params (M), reference GMACs
VARIANTS = [
    ('MorphMLP-T', MorphMLP, 'tiny', None, 1000, 23.39, 3.96),
    ('MorphMLP-S', MorphMLP, 'small', None, 1000, 40.55, 6.94),
    ('MorphMLP-B', MorphMLP, 'base', None, 1000, 57.98, 10.20),
    ('MorphMLP-L', MorphMLP, 'large', None, 1000, 76.19, 12.43),
    ('MorphMLP3D-S16', MorphMLP3D, 'small', 16, 400, 47.04, 66.0),
    ('MorphMLP3D-S32', MorphMLP3D, 'small', 32, 400, 47.46, 133.4),
    ('MorphMLP3D-B16', MorphMLP3D, 'base', 16, 400, 67.78, 97.3),
    ('MorphMLP3D-B32', MorphMLP3D, 'base', 32, 400, 68.49, 196.9),
]


def build(cls, arch, frames):
    if frames is None:
        return cls(arch).eval()
    return cls(arch, num_frames=frames).eval()


def input_shape(frames, size=224):
    if frames is None:
        return (1, 3, size, size)
    return (1, 3, frames, size, size)


def count_params(model, num_classes):
    """Backbone params plus a Linear(C_last, num_classes) head."""
    backbone = sum(p.numel() for p in model.parameters())
    return backbone + model.channels[-1] * num_classes + num_classes


def count_macs(model, shape):
    """Backbone MACs for one input of ``shape`` via mmengine.analysis."""
    from mmengine.analysis import FlopAnalyzer
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        logging.getLogger('mmengine').setLevel(logging.ERROR)
        analyzer = FlopAnalyzer(model, (torch.zeros(shape), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='params and a small forward only, no MACs')
    parser.add_argument('--only', nargs='*', help='variant names to run')
    parser.add_argument('--json', help='write the rows to this file')
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = []
    header = (f"{'variant':16s} {'params(M)':>10s} {'ref':>7s} "
              f"{'GMACs':>8s} {'ref':>7s} {'out shape':>22s} {'fwd(s)':>7s}")
    print(header)
    print('-' * len(header))
    for name, cls, arch, frames, classes, ref_p, ref_g in VARIANTS:
        if args.only and name not in args.only:
            continue
        model = build(cls, arch, frames)
        params = count_params(model, classes) / 1e6
        shape = input_shape(frames, 64 if args.quick else 224)
        start = time.perf_counter()
        out = model(torch.rand(shape))
        seconds = time.perf_counter() - start
        out_shape = tuple((out[0] if isinstance(out, tuple) else out).shape)
        gmacs = None if args.quick else count_macs(
            model, input_shape(frames)) / 1e9
        rows.append(
            dict(variant=name, params_m=round(params, 3), ref_params_m=ref_p,
                 gmacs=None if gmacs is None else round(gmacs, 2),
                 ref_gmacs=ref_g, out_shape=out_shape,
                 input_shape=shape, forward_s=round(seconds, 2)))
        g = '-' if gmacs is None else f'{gmacs:8.2f}'
        print(f'{name:16s} {params:10.2f} {ref_p:7.2f} {g:>8s} {ref_g:7.2f} '
              f'{str(out_shape):>22s} {seconds:7.2f}', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)


if __name__ == '__main__':
    main()
