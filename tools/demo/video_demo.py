"""Top-k action labels for a video file, printed and drawn on its frames.

Uses mmaction2's ``init_recognizer`` with any recognition config of this
repository (or your own with MorphMLP3D) and the pipeline of its
``test_dataloader`` (``test_pipeline`` only when the dataloader has none), as
``tools/test.py`` does. The checkpoint must fit the model key for key: a
checkpoint of another architecture is refused (``error: ...``, exit status 1)
instead of being loaded partly into a model that stays mostly random. The
scores printed are softmax probabilities.

Example::

    python tools/demo/video_demo.py configs/demo/motion_morphmlp3d.py \\
        work_dirs/motion_demo/<run>/full/best_acc_top1_epoch_12.pth \\
        data/motion/videos/val/000003.mp4 --labels data/motion/label_map.txt \\
        --out-dir outputs/video_demo

Writes ``<out-dir>/<video stem>_top5.mp4`` (every frame with the labels) and
``<out-dir>/<video stem>_top5.png`` (a strip of frames with the labels).
"""
import argparse
import importlib
import os
import os.path as osp
import pickle
import warnings
from typing import Any, List, Optional, Tuple

import cv2
import numpy as np


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="a checkpoint, or 'none' for "
                        'random weights (the labels are then meaningless)')
    parser.add_argument('video')
    parser.add_argument('--labels', help='label map: one class name a line')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--out-dir', default='outputs/video_demo')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, xxx=yyy pairs merged into the '
        'config; no white space inside a pair')
    args = parser.parse_args(argv)
    if not osp.isfile(args.video):
        parser.error(f'video {args.video!r} does not exist')
    if args.checkpoint != 'none' and not osp.isfile(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint!r} does not exist "
                     "(pass 'none' for random weights)")
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    return args


def read_frames(path: str) -> Tuple[List[np.ndarray], float]:
    """All frames of ``path`` (BGR) and its frame rate, read with OpenCV.

    Raises:
        RuntimeError: no frame of ``path`` can be decoded.
    """
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25
    cap.release()
    if not frames:
        raise RuntimeError(f'cannot decode any frame of {path!r}')
    return frames, fps


def inference_pipeline_cfg(cfg: Any) -> List[dict]:
    """The pipeline ``tools/test.py`` would run on a video of ``cfg``.

    ``test_dataloader.dataset.pipeline`` (looking through dataset wrappers
    such as ``RepeatDataset``), else the top-level ``test_pipeline``. A
    config whose dataloader pipeline was changed (``--cfg-options`` or an
    edited copy) without ``test_pipeline`` is then tested as it was
    trained.

    Raises:
        ValueError: the config has neither.
    """
    loader = cfg.get('test_dataloader', None)
    dataset = loader.get('dataset', None) if isinstance(loader,
                                                        dict) else None
    while isinstance(dataset, dict):
        if dataset.get('pipeline', None) is not None:
            return dataset['pipeline']
        dataset = dataset.get('dataset', None)
    pipeline = cfg.get('test_pipeline', None)
    if pipeline is None:
        raise ValueError(
            'config has neither test_dataloader.dataset.pipeline nor '
            'test_pipeline: the demo needs one of them to read the video')
    return pipeline


def probabilities(pred_score: Any, average_clips: Optional[str]
                  ) -> np.ndarray:
    """Class probabilities from a recognizer's ``pred_score``.

    mmaction2's heads return softmax probabilities averaged over the clips
    only with ``average_clips='prob'``; ``'score'`` averages the logits and
    ``None`` returns the logits of every clip. Those get a softmax here
    (one per clip, then the mean over the clips).

    Returns:
        np.ndarray: (num_classes, ) probabilities that sum to 1.
    """
    import torch
    scores = torch.as_tensor(pred_score).detach().float().cpu()
    if average_clips != 'prob':
        scores = scores.softmax(dim=-1)
    if scores.ndim > 1:
        scores = scores.reshape(-1, scores.shape[-1]).mean(dim=0)
    return scores.numpy()


def draw_labels(frame, lines, scale):
    out = frame.copy()
    h = int(16 * scale) + 4
    cv2.rectangle(out, (0, 0), (out.shape[1], h * len(lines) + 4), (0, 0, 0),
                  -1)
    for i, line in enumerate(lines):
        cv2.putText(out, line, (3, h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv: Optional[List[str]] = None) -> List[Tuple[str, float]]:
    """Run the demo; returns the top-k ``(class name, probability)``."""
    args = parse_args(argv)
    importlib.import_module('morphmlp_mm')  # host workarounds, registry
    import torch
    from mmaction.apis import init_recognizer
    from mmengine.dataset import Compose, pseudo_collate

    from morphmlp_mm.engine.hooks import (CheckpointMismatchError,
                                          load_matching_checkpoint)
    from morphmlp_mm.utils.cli import read_config

    cfg = read_config(args.config)  # a missing config: one error: line
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        # inference_recognizer would read cfg.test_pipeline: use the
        # pipeline the test dataloader (tools/test.py) runs instead.
        cfg.test_pipeline = inference_pipeline_cfg(cfg)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    checkpoint = None if args.checkpoint == 'none' else args.checkpoint
    if checkpoint is None:
        warnings.warn('no checkpoint: random weights, the labels are '
                      'meaningless')
    model = init_recognizer(cfg, None, device=args.device)
    if checkpoint is not None:
        try:
            load_matching_checkpoint(model, checkpoint)
        except (CheckpointMismatchError, RuntimeError,
                pickle.UnpicklingError) as err:
            raise SystemExit(f'error: {err}')

    pipeline = Compose(cfg.test_pipeline)
    try:
        data = pipeline(dict(filename=args.video, label=-1, start_index=0,
                             modality='RGB'))
    except Exception as err:  # decord / PyAV / OpenCV: unnamed errors
        raise SystemExit(f'error: cannot read video {args.video!r}: '
                         f'{type(err).__name__}: {err}')
    with torch.no_grad():
        result = model.test_step(pseudo_collate([data]))[0]
    head = getattr(model, 'cls_head', None)
    scores = probabilities(result.pred_score,
                           getattr(head, 'average_clips', None))
    if args.labels:
        with open(args.labels) as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != scores.size:
            raise SystemExit(
                f'error: --labels {args.labels!r} has {len(names)} names '
                f'but the model predicts {scores.size} classes')
    else:
        names = [f'class {i}' for i in range(scores.size)]
    order = np.argsort(-scores, kind='stable')[:min(args.topk, scores.size)]
    lines = [f'{scores[i]:.2f} {names[i]}' for i in order]
    print(f'top-{len(order)} for {args.video} (softmax probabilities):')
    for rank, line in enumerate(lines, 1):
        print(f'  {rank}. {line}')

    try:
        frames, fps = read_frames(args.video)
    except RuntimeError as err:
        raise SystemExit(f'error: cannot read video {args.video!r}: {err}')
    scale = max(frames[0].shape[1] / 320, 1.)
    if frames[0].shape[1] < 320:  # make small clips readable
        factor = 320 / frames[0].shape[1]
        frames = [cv2.resize(f, None, fx=factor, fy=factor,
                             interpolation=cv2.INTER_NEAREST) for f in frames]
    annotated = [draw_labels(f, lines, scale) for f in frames]
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(args.video))[0]
    mp4 = osp.join(args.out_dir, f'{stem}_top{len(order)}.mp4')
    h, w = annotated[0].shape[:2]
    writer = cv2.VideoWriter(mp4, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (w, h))
    for frame in annotated:
        writer.write(frame)
    writer.release()
    picks = np.linspace(0, len(frames) - 1, min(4, len(frames))).astype(int)
    strip = np.concatenate([frames[i] for i in picks], axis=1)
    png = osp.join(args.out_dir, f'{stem}_top{len(order)}.png')
    cv2.imwrite(png, draw_labels(strip, lines, scale))
    print(f'wrote {mp4} and {png}')
    return [(names[i], float(scores[i])) for i in order]


if __name__ == '__main__':
    main()
