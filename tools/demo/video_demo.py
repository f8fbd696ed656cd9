"""Top-k action labels for a video file, printed and drawn on its frames.

Uses mmaction2's ``init_recognizer`` / ``inference_recognizer`` with any
recognition config of this repository (or your own with MorphMLP3D).

Example::

    python tools/demo/video_demo.py configs/demo/motion_morphmlp3d.py \\
        work_dirs/motion_demo/<run>/full/best_acc_top1_epoch_12.pth \\
        data/motion/videos/val/000003.mp4 --labels data/motion/label_map.txt \\
        --out-dir outputs/video_demo

Writes ``<out-dir>/<video stem>_top5.mp4`` (every frame with the labels) and
``<out-dir>/<video stem>_top5.png`` (a strip of frames with the labels).
"""
import argparse
import os
import os.path as osp
import warnings

import cv2
import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="a checkpoint, or 'none' for "
                        'random weights (the labels are then meaningless)')
    parser.add_argument('video')
    parser.add_argument('--labels', help='label map: one class name a line')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--out-dir', default='outputs/video_demo')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    if not osp.isfile(args.video):
        parser.error(f'video {args.video!r} does not exist')
    if args.checkpoint != 'none' and not osp.isfile(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint!r} does not exist "
                     "(pass 'none' for random weights)")
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    return args


def read_frames(path):
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


def draw_labels(frame, lines, scale):
    out = frame.copy()
    h = int(16 * scale) + 4
    cv2.rectangle(out, (0, 0), (out.shape[1], h * len(lines) + 4), (0, 0, 0),
                  -1)
    for i, line in enumerate(lines):
        cv2.putText(out, line, (3, h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv=None):
    args = parse_args(argv)
    import morphmlp_mm  # noqa: F401
    from mmaction.apis import inference_recognizer, init_recognizer

    checkpoint = None if args.checkpoint == 'none' else args.checkpoint
    if checkpoint is None:
        warnings.warn('no checkpoint: random weights, the labels are '
                      'meaningless')
    model = init_recognizer(args.config, checkpoint, device=args.device)
    result = inference_recognizer(model, args.video)
    scores = result.pred_score.cpu().numpy()
    if args.labels:
        with open(args.labels) as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != scores.size:
            raise ValueError(f'--labels has {len(names)} names but the model '
                             f'predicts {scores.size} classes')
    else:
        names = [f'class {i}' for i in range(scores.size)]
    order = np.argsort(-scores)[:min(args.topk, scores.size)]
    lines = [f'{scores[i]:.2f} {names[i]}' for i in order]
    print(f'top-{len(order)} for {args.video}:')
    for rank, line in enumerate(lines, 1):
        print(f'  {rank}. {line}')

    frames, fps = read_frames(args.video)
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
