"""Convert official MorphMLP checkpoints to mmaction2 / mmpretrain ones.

Inputs (read with ``weights_only=True``; see
:func:`morphmlp_mm.utils.safe_torch_load`):

* official fine-tuned video models (K400 / SSV1 / SSV2, 16 or 32 frames):
  PySlowFast dicts with ``model_state`` (plus ``cfg``, ``optimizer_state``...);
* the official ImageNet-1K weights ``video_morphmlp_{s,b}.pth``: flat state
  dicts already in video shape, without the temporal branch;
* checkpoints written by this package (``backbone.`` + a host head), e.g. to
  turn a converted video model into an image one.

Outputs (``{'state_dict': ..., 'meta': ...}`` as mmengine saves):

* ``--kind video``: an mmaction2 ``Recognizer3D`` checkpoint, backbone
  ``MorphMLP3D`` under ``backbone.`` and the classifier as
  ``cls_head.fc_cls`` (``I3DHead``);
* ``--kind image``: an mmpretrain ``ImageClassifier`` checkpoint, backbone
  ``MorphMLP`` under ``backbone.`` and the classifier as ``head.fc``
  (``LinearClsHead``). The stem's 3x3x3 kernel is folded by summing its
  temporal taps, so an image gives the features the video stem gives to a
  static clip (on every frame but the first; see
  :mod:`morphmlp_mm.checkpoint`);
* ``--kind auto`` (default): video if the file has the temporal branch
  (``t_fc``), image otherwise (the ImageNet files).

Depths are counted from the keys (official "S" files published before
2023-03-16 hold B depths), the frame count comes from the recorded config
(official ``cfg`` ``DATA.NUM_FRAMES``, our ``meta['num_frames']``, or
``model.backbone.num_frames`` of an mmengine Runner checkpoint's
``meta['cfg']``) or the ``t_fc.mlp_t`` shapes. A ``--num-frames`` that
contradicts the recorded count is refused unless ``--force``; a recorded count
the shapes do not fit is reported and ignored. TorchScript archives are
refused. The converted backbone is loaded into a freshly
built model to check it; missing and unexpected keys are printed.

Example::

    python tools/convert/morphmlp_official_to_mm.py \\
        mlp_s16x4_k400.pth checkpoints/morphmlp-s_16x4_k400.pth
    python tools/convert/morphmlp_official_to_mm.py \\
        video_morphmlp_b.pth checkpoints/morphmlp-b_in1k.pth --kind image
"""
import argparse
import io
import os.path as osp
import pickle
import re
import sys
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, ROOT)

import morphmlp_mm  # noqa: E402
from morphmlp_mm import MorphMLP, MorphMLP3D  # noqa: E402
from morphmlp_mm.checkpoint import (  # noqa: E402
    BACKBONE_PREFIX, INFLATE_MODES, MMACTION_HEAD, MMPRETRAIN_HEAD,
    OFFICIAL_CHUNK_LENGTHS, ArchInfo, check_morphmlp, choose_num_frames,
    convert_to_model, detect_arch, extract_state_dict, fitting_num_frames,
    init_on_meta, is_temporal_key, load_checkpoint_file, read_official_cfg,
    recorded_num_frames, split_backbone_head, stem_frames_of)
from morphmlp_mm.utils.atomic_io import atomic_write_bytes  # noqa: E402
from morphmlp_mm.utils.safe_load import TorchScriptRefused  # noqa: E402

KINDS = ('auto', 'video', 'image')
#: Official default input frames when a file has no temporal branch.
DEFAULT_FRAMES = 16


class ConversionError(Exception):
    """A problem the user must fix (bad file, bad option)."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official MorphMLP checkpoint into an '
        'mmaction2 Recognizer3D (video) or mmpretrain ImageClassifier '
        '(image) checkpoint.')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--kind', choices=KINDS, default='auto',
        help='video: Recognizer3D; image: ImageClassifier with the stem '
        'folded to 2-D; auto (default): video if the file has the temporal '
        'branch, else image')
    parser.add_argument(
        '--num-frames', type=int, default=None,
        help='input frames of the video model (default: recorded in the '
        'file, else detected from the t_fc shapes, else 16); a value that '
        'contradicts the count recorded in the file needs --force')
    parser.add_argument(
        '--num-classes', type=int, default=None,
        help='classes of the target head; if it differs from the file\'s '
        'head, the head is dropped (to be trained anew)')
    parser.add_argument(
        '--inflate', choices=INFLATE_MODES, default='center',
        help='only for 2-D sources converted to video: how the stem kernel '
        'gets its 3 temporal taps (default: center)')
    parser.add_argument(
        '--chunk-lengths', nargs=4, default=None, metavar='L',
        help='chunk length (or window RxC) of each stage, only for custom '
        'archs: weights do not record them (default: the official '
        '14 28 28 49)')
    parser.add_argument(
        '--force', '--overwrite', action='store_true', dest='force',
        help='overwrite an existing dst file; also convert with a '
        '--num-frames that contradicts the frame count recorded in the file')
    return parser.parse_args(argv)


def parse_chunk_lengths(values: Optional[Sequence[str]]
                        ) -> Optional[List[Union[int, Tuple[int, int]]]]:
    """``['4', '8', '2x4', '2x2']`` -> ``[4, 8, (2, 4), (2, 2)]``."""
    if values is None:
        return None
    parsed = []
    for value in values:
        text = str(value).lower()
        try:
            if 'x' in text:
                rows, cols = (int(v) for v in text.split('x'))
                parsed.append((rows, cols))
            else:
                parsed.append(int(text))
        except ValueError as err:
            raise ConversionError(
                f'--chunk-lengths entry {value!r} must be an int L or a '
                'window RxC such as 2x4') from err
    return parsed


def _fmt_keys(keys: List[str], limit: int = 12) -> str:
    temporal = [k for k in keys if is_temporal_key(k)]
    rest = [k for k in keys if not is_temporal_key(k)]
    parts = []
    if rest:
        shown = ', '.join(rest[:limit])
        more = f', ... (+{len(rest) - limit})' if len(rest) > limit else ''
        parts.append(shown + more)
    if temporal:
        parts.append(f'{len(temporal)} temporal-branch keys '
                     '(t_norm1 / t_fc)')
    return '; '.join(parts) if parts else 'none'


def _arch_text(info: ArchInfo) -> str:
    name = info.arch_name
    label = f'MorphMLP-{name[0].upper()} ({name})' if name else 'custom'
    ratio = sorted(set(info.mlp_ratio))
    return (f'{label}: depths={info.depths} channels={info.channels} '
            f'mlp_ratio={ratio[0] if len(ratio) == 1 else info.mlp_ratio}')


def _usable_record(info: ArchInfo, checkpoint: object, src: str,
                   num_frames: Optional[int], force: bool,
                   log) -> Optional[int]:
    """The recorded frame count that fits the shapes, checked against
    ``num_frames``; logs what it ignores or overrides.

    Raises:
        ConversionError: ``num_frames`` contradicts the recorded count (a
            different T' after the stem) and ``force`` is False.
    """
    recorded, where = recorded_num_frames(checkpoint)
    if recorded is None or not info.temporal:
        return recorded
    fits = fitting_num_frames(info)
    if recorded not in fits:
        log(f'note: the file records num_frames={recorded} ({where}), but '
            f'its t_fc.mlp_t widths {info.temporal_dims} fit num_frames in '
            f'{fits} only: the recorded value is ignored')
        return None
    if num_frames is None or num_frames == recorded:
        return recorded
    if stem_frames_of(num_frames) == stem_frames_of(recorded):
        log(f'note: --num-frames {num_frames}, the file records '
            f"num_frames={recorded} ({where}); both give T'="
            f'{stem_frames_of(recorded)} after the stem, so the temporal '
            'weights keep their meaning')
        return recorded
    text = (f'--num-frames {num_frames} contradicts num_frames={recorded} '
            f'recorded in {src} ({where}): its t_fc.mlp_t weights were '
            f"trained for T'={stem_frames_of(recorded)} frames after the "
            f"stem, not T'={stem_frames_of(num_frames)}; the shapes fit "
            f'num_frames in {fits}, so a wrong count converts silently into '
            'a model whose temporal branch mixes frames as it was never '
            'trained to')
    if not force:
        raise ConversionError(
            f'{text}. Omit --num-frames (or pass {recorded}) to keep the '
            'recorded count, or add --force to convert with '
            f'{num_frames} anyway')
    log(f'WARNING: {text}; converting with {num_frames} because of --force')
    return recorded


def convert(src: str,
            dst: str,
            kind: str = 'auto',
            num_frames: Optional[int] = None,
            num_classes: Optional[int] = None,
            inflate: str = 'center',
            chunk_lengths: Optional[Sequence] = None,
            force: bool = False,
            log=print) -> dict:
    """Convert ``src`` and write ``dst``; return a summary dict.

    Args:
        src (str): Official (or this package's) MorphMLP checkpoint.
        dst (str): Output path; must not exist unless ``force``.
        kind (str): ``'auto'``, ``'video'`` or ``'image'``.
        num_frames (int, optional): Input frames of the video model.
        num_classes (int, optional): Classes of the target head.
        inflate (str): Inflation mode for 2-D sources going to video.
        chunk_lengths (list, optional): Chunk length or (rows, cols) window
            per stage; defaults to the official ones.
        force (bool): Overwrite ``dst``, and accept a ``num_frames`` that
            contradicts the frame count recorded in ``src`` (with a warning).
        log (callable): Receives the report lines.

    Returns:
        dict: ``kind``, ``arch``, ``depths``, ``channels``, ``num_frames``,
        ``num_classes``, ``missing``, ``unexpected``, ``dst``.

    Raises:
        ConversionError: bad options, unreadable, TorchScript or non-MorphMLP
            file, existing ``dst`` (a folder even with ``force``), or
            ``num_frames`` contradicting the recorded count without
            ``force``.
    """
    if kind not in KINDS:
        raise ConversionError(f'kind={kind!r} must be one of {list(KINDS)}')
    if num_frames is not None and num_frames < 1:
        raise ConversionError(f'num_frames={num_frames} must be >= 1')
    if num_classes is not None and num_classes < 1:
        raise ConversionError(f'num_classes={num_classes} must be >= 1')
    if osp.isdir(dst):
        raise ConversionError(
            f'dst {dst!r} is a directory; pass the path of the output file, '
            f'e.g. {osp.join(dst, "converted.pth")!r}')
    if osp.exists(dst) and not force:
        raise ConversionError(
            f'{dst} exists; pass --force to overwrite it')
    if osp.abspath(src) == osp.abspath(dst):
        raise ConversionError('src and dst are the same file')
    try:
        checkpoint = load_checkpoint_file(src)
    except FileNotFoundError as err:
        raise ConversionError(str(err)) from err
    except TorchScriptRefused as err:
        raise ConversionError(str(err)) from err
    except pickle.UnpicklingError as err:
        raise ConversionError(
            f'refusing {src}: it holds pickled Python objects that are not '
            f'plain tensors or checkpoint metadata ({err}). Only weights are '
            'read (weights_only=True); an official MorphMLP checkpoint never '
            'needs more.') from err
    except (RuntimeError, ValueError) as err:
        raise ConversionError(str(err)) from err
    try:
        state = extract_state_dict(checkpoint)
        backbone, head, layout = split_backbone_head(state)
        check_morphmlp(backbone, source=src)
        info = detect_arch(backbone, head)
    except ValueError as err:
        raise ConversionError(str(err)) from err
    recorded = read_official_cfg(checkpoint)

    log(f'source: {src} ({layout} layout, {len(state)} tensors)')
    log(f'arch: {_arch_text(info)}')
    base = osp.basename(src).lower()
    if info.arch_name == 'base' and re.search(r'(?:^|[_\-])s(?:\d|[_\-.])',
                                              base):
        log('note: the file name suggests MorphMLP-S but the file holds '
            'B depths [4, 6, 15, 4] (official S files published before '
            '2023-03-16 were B models, MTLab/MorphMLP#4); converting as B')
    if recorded.get('depths') and list(recorded['depths']) != info.depths:
        log(f"note: the recorded config says depths={recorded['depths']}, "
            f'the weights hold {info.depths}; the weights win')
    log(f"stem: {'3-D (video)' if info.video else '2-D (image)'}, temporal "
        f"branch: {'yes' if info.temporal else 'no'}")

    if kind == 'auto':
        kind = 'video' if info.temporal else 'image'
        log(f'kind: {kind} (auto: the file '
            f"{'has' if info.temporal else 'has no'} temporal branch)")
    else:
        log(f'kind: {kind}')

    arch = info.arch(chunk_lengths or OFFICIAL_CHUNK_LENGTHS)
    try:
        MorphMLP.parse_arch(arch)
    except ValueError as err:
        raise ConversionError(
            f'{err}. Chunk lengths are not stored in the weights; pass '
            '--chunk-lengths for this custom arch') from err
    if kind == 'video':
        record = _usable_record(info, checkpoint, src, num_frames, force, log)
        try:
            frames = choose_num_frames(info, num_frames, record)
        except ValueError as err:
            raise ConversionError(str(err)) from err
        if frames is None:
            frames = DEFAULT_FRAMES
        if info.temporal:
            if num_frames is not None:
                why = 'as requested'
            elif record == frames:
                why = 'recorded in the file'
            else:
                why = 'the official frame count that fits'
            log(f"frames: num_frames={frames}, {why} (T'="
                f'{stem_frames_of(frames)} after the stem; the t_fc.mlp_t '
                f'widths {info.temporal_dims} fit num_frames in '
                f'{fitting_num_frames(info)})')
        else:
            log(f'frames: num_frames={frames} (no temporal branch in the '
                'file: MorphFC_t keeps its official init when loaded)')
        with init_on_meta():  # only the parameter shapes are needed
            model = MorphMLP3D(arch, num_frames=frames)
    else:
        frames = None
        if num_frames is not None:
            log('note: --num-frames is ignored for an image checkpoint')
        with init_on_meta():
            model = MorphMLP(arch)
    try:
        converted, report = convert_to_model(backbone, model, inflate, info)
    except ValueError as err:
        raise ConversionError(str(err)) from err

    out = OrderedDict((BACKBONE_PREFIX + k, v) for k, v in converted.items())
    head_prefix = MMACTION_HEAD if kind == 'video' else MMPRETRAIN_HEAD
    classes = info.num_classes
    if head:
        if num_classes is not None and num_classes != classes:
            log(f'head: the file has {classes} classes, --num-classes='
                f'{num_classes}: head dropped (it will be initialised)')
            classes = num_classes
        else:
            for key, value in head.items():
                out[head_prefix + key] = value
            log(f'head: {classes} classes -> {head_prefix}{{weight,bias}}')
    else:
        classes = num_classes
        log('head: none in the file (the host head will be initialised)')
    if report.inflated:
        log(f'inflated ({inflate}): {", ".join(report.inflated)}')
    if report.folded:
        log(f'folded (sum over time): {", ".join(report.folded)}')
    log(f'missing keys: {_fmt_keys(report.missing)}')
    log(f'unexpected keys: {_fmt_keys(report.unexpected)}')

    meta = dict(
        converter='tools/convert/morphmlp_official_to_mm.py',
        morphmlp_mm_version=morphmlp_mm.__version__,
        source=osp.basename(src),
        source_layout=layout,
        kind=kind,
        model='Recognizer3D' if kind == 'video' else 'ImageClassifier',
        backbone=type(model).__name__,
        arch=arch,
        depths=list(info.depths),
        channels=list(info.channels),
        num_frames=frames,
        num_classes=classes,
        missing_keys=list(report.missing),
        unexpected_keys=list(report.unexpected))
    # a unique hidden temporary file next to dst, renamed into place
    buffer = io.BytesIO()
    torch.save({'state_dict': out, 'meta': meta}, buffer)
    data = buffer.getbuffer()  # no copy of the serialised checkpoint
    try:
        atomic_write_bytes(data, dst)
    except OSError as err:
        raise ConversionError(
            f'cannot write {dst!r}: {type(err).__name__}: {err}') from err
    finally:
        data.release()
    backbone_cfg = dict(type=type(model).__name__, arch=arch)
    if kind == 'video':
        backbone_cfg['num_frames'] = frames
    log(f'wrote {dst}: {len(out)} tensors; use it with '
        f'backbone={backbone_cfg}'
        + (f', num_classes={classes}' if classes else ''))
    return dict(kind=kind, arch=arch, depths=list(info.depths),
                channels=list(info.channels), num_frames=frames,
                num_classes=classes, missing=report.missing,
                unexpected=report.unexpected, dst=dst)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry; returns the exit status."""
    args = parse_args(argv)
    try:
        convert(args.src, args.dst, kind=args.kind,
                num_frames=args.num_frames, num_classes=args.num_classes,
                inflate=args.inflate,
                chunk_lengths=parse_chunk_lengths(args.chunk_lengths),
                force=args.force)
    except ConversionError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
