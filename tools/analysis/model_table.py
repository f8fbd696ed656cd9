"""Print params and GMACs of every MorphMLP variant and run one forward.

Params include a linear classification head (1000 classes for images,
400 for video) so that they compare with the paper and the official code.
MACs come from ``mmengine.analysis`` (fvcore-style: one multiply-add is one
"FLOP") for the backbone at 224 x 224 (video: one 3 x T x 224 x 224 view).

Usage::

    python tools/analysis/model_table.py            # every variant
    python tools/analysis/model_table.py --quick    # params only, no MACs
    python tools/analysis/model_table.py --only tiny S16 MorphMLP3D-B32
    python tools/analysis/model_table.py --json out.json

``--only`` takes variant names (``MorphMLP-T``, ``MorphMLP3D-S16``; any
case), arch names and aliases (``tiny``/``t``, ``small``/``s``,
``base``/``b``, ``large``/``l``: every variant of that arch, image and
video) or a video arch with its frames (``s16``, ``base32``).
"""
import argparse
import json
import logging
import time
import warnings
from typing import List, Optional, Sequence

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


def valid_names() -> List[str]:
    """What ``--only`` accepts, for the error message."""
    videos = [f'{arch[0]}{frames}' for _, _, arch, frames, *_ in VARIANTS
              if frames is not None]
    return [v[0] for v in VARIANTS] + sorted(MorphMLP.arch_zoo) + videos


def select_variants(names: Optional[Sequence[str]]) -> list:
    """The rows of :data:`VARIANTS` that ``--only`` names, in table order.

    Args:
        names (Sequence[str], optional): Variant names, arch names /
            aliases or video arch + frames (``s16``); case-insensitive.
            None or empty selects every variant.

    Returns:
        list: The selected rows of :data:`VARIANTS`.

    Raises:
        ValueError: a name matches no variant (the message lists the valid
            ones).
    """
    if not names:
        return list(VARIANTS)
    chosen = set()
    for name in names:
        key = str(name).strip().lower()
        hits = [i for i, v in enumerate(VARIANTS) if v[0].lower() == key]
        if not hits and key in MorphMLP.arch_zoo:  # 'tiny', 't', ...
            hits = [i for i, v in enumerate(VARIANTS)
                    if MorphMLP.arch_zoo[v[2]] is MorphMLP.arch_zoo[key]]
        if not hits:
            hits = [i for i, v in enumerate(VARIANTS) if v[3] is not None
                    and key in (f'{v[2][0]}{v[3]}', f'{v[2]}{v[3]}')]
        if not hits:
            raise ValueError(
                f'--only {name!r} matches no variant; valid names are '
                f'{valid_names()} (case-insensitive)')
        chosen.update(hits)
    return [v for i, v in enumerate(VARIANTS) if i in chosen]


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
    """Backbone MACs for one input of ``shape`` via mmengine.analysis,
    counted on the model's plain twin (the official algorithm on the same
    weights), as ``tools/analysis/get_flops.py`` counts by default: the
    model's definitional MACs, not those of the optimised forward's
    reorganised products."""
    from mmengine.analysis import FlopAnalyzer

    from morphmlp_mm.models.plain import build_plain
    logger = logging.getLogger('mmengine')
    level = logger.level
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        logger.setLevel(logging.ERROR)
        try:
            analyzer = FlopAnalyzer(build_plain(model),
                                    (torch.zeros(shape), ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            return analyzer.total()
        finally:
            logger.setLevel(level)


@torch.no_grad()
def table_rows(variants: Sequence[tuple], quick: bool = False) -> List[dict]:
    """Build, run and count each variant, printing one line per row.

    Args:
        variants (Sequence[tuple]): Rows of :data:`VARIANTS`.
        quick (bool): Params and a 64 x 64 forward only, no MACs.

    Returns:
        list[dict]: One dict per variant.
    """
    rows = []
    header = (f"{'variant':16s} {'params(M)':>10s} {'ref':>7s} "
              f"{'GMACs':>8s} {'ref':>7s} {'out shape':>22s} {'fwd(s)':>7s}")
    print(header)
    print('-' * len(header))
    for name, cls, arch, frames, classes, ref_p, ref_g in variants:
        model = build(cls, arch, frames)
        params = count_params(model, classes) / 1e6
        shape = input_shape(frames, 64 if quick else 224)
        start = time.perf_counter()
        out = model(torch.rand(shape))
        seconds = time.perf_counter() - start
        out_shape = tuple((out[0] if isinstance(out, tuple) else out).shape)
        gmacs = None if quick else count_macs(
            model, input_shape(frames)) / 1e9
        rows.append(
            dict(variant=name, params_m=round(params, 3), ref_params_m=ref_p,
                 gmacs=None if gmacs is None else round(gmacs, 2),
                 ref_gmacs=ref_g, out_shape=out_shape,
                 input_shape=shape, forward_s=round(seconds, 2)))
        g = '-' if gmacs is None else f'{gmacs:8.2f}'
        print(f'{name:16s} {params:10.2f} {ref_p:7.2f} {g:>8s} {ref_g:7.2f} '
              f'{str(out_shape):>22s} {seconds:7.2f}', flush=True)
    return rows


def main(argv: Optional[List[str]] = None) -> List[dict]:
    """Parse the arguments, print the table; returns its rows."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='params and a small forward only, no MACs')
    parser.add_argument(
        '--only', nargs='*',
        help='variants to run: names (MorphMLP-T, MorphMLP3D-S16), archs '
        '(tiny/small/base/large or t/s/b/l: all their variants) or a video '
        'arch with frames (s16, b32); case-insensitive')
    parser.add_argument('--json', help='write the rows to this file')
    args = parser.parse_args(argv)
    try:
        variants = select_variants(args.only)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    rows = table_rows(variants, args.quick)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == '__main__':
    main()
