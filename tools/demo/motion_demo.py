"""The main job: MorphMLP3D learns temporal order on synthetic clips, on a CPU.

Steps (nothing is downloaded):

1. write the synthetic motion dataset (``tools/data/make_motion_dataset.py``;
   reused when it already exists with the same settings);
2. train with ``tools/train.py`` (mmengine logging and progress) in two
   stages: ``configs/demo/motion_morphmlp3d_turning.py`` (2 epochs on the
   turning clips alone), then ``configs/demo/motion_morphmlp3d.py`` (all
   classes, backbone from stage 1); test it with ``tools/test.py``;
3. controls: the same model and recipe with its temporal mixing switched off
   (``temporal=False``: no MorphFC_t; ``stem_temporal_kernel=1``: the stem
   convolves one frame at a time), which makes the backbone blind to frame
   order, and the trained model tested on clips whose frames are shuffled;
4. print a summary table (top-1, accuracy on the direction classes, and
   "order accuracy": among direction clips whose predicted class is in the
   right pair, how often the direction is right; chance is 50%), write it as
   JSON and plot loss and accuracy curves to a PNG.

Each run writes into a fresh ``<work-dir>/<timestamp>/``; nothing from an
earlier run is overwritten.

Example::

    python tools/demo/motion_demo.py                       # defaults
    python tools/demo/motion_demo.py --epochs 4 --skip-ablation   # quicker
"""
import argparse
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: Frames per generated clip; the config samples every second one (0, 2,
#: ..., 14). The generator makes each pair's second class by reversing clips
#: (frame t -> CLIP_FRAMES - 1 - t), which maps the even frames of a 16-frame
#: clip onto the odd ones: the frames the model sees of a clip and of its
#: reverse are not exactly alike in distribution (the motion's first frame
#: is always sampled, its last one not). With the one-stage recipe of the
#: previous version the order-blind control reached 60.6% order accuracy
#: (51.4% with the two stages). With 15 frames the sampled set maps onto
#: itself, but the one-stage full model reached only 76.3% top-1 (87.7% with
#: 16) in the same 15 epochs; the demo keeps 16.
CLIP_FRAMES = 16
CONFIG = osp.join(ROOT, 'configs', 'demo', 'motion_morphmlp3d.py')
#: Stage 1: the same model on the turning clips alone (see the config).
TURNING_CONFIG = osp.join(ROOT, 'configs', 'demo',
                          'motion_morphmlp3d_turning.py')
sys.path.insert(0, osp.join(ROOT, 'tools', 'data'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data',
                                                        'motion'))
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs',
                                                       'motion_demo'))
    parser.add_argument('--train-per-class', type=int, default=400)
    parser.add_argument('--val-per-class', type=int, default=30)
    parser.add_argument('--size', type=int, default=32,
                        help='frame side of the generated clips')
    parser.add_argument('--epochs', type=int, default=None,
                        help='override max_epochs of the config')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--skip-ablation', action='store_true',
                        help='skip training the temporal-off control')
    return parser.parse_args(argv)


def ensure_dataset(args):
    """Write the dataset unless the same one is already there."""
    from make_motion_dataset import GENERATOR_VERSION, make_motion_dataset
    wanted = dict(train_per_class=args.train_per_class,
                  val_per_class=args.val_per_class, size=args.size,
                  clip_frames=CLIP_FRAMES, seed=args.seed,
                  generator_version=GENERATOR_VERSION)
    stamp = osp.join(args.data_root, 'demo_settings.json')
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == wanted:
                print(f'[motion_demo] reusing dataset {args.data_root}')
                return
        raise SystemExit(
            f'{args.data_root} holds a motion dataset made with other '
            f'settings ({stamp}); pass another --data-root or delete it')
    if osp.exists(args.data_root) and os.listdir(args.data_root):
        raise SystemExit(f'--data-root {args.data_root} exists and is not '
                         'a motion dataset written by this demo; pass an '
                         'empty or new folder')
    print(f'[motion_demo] writing dataset to {args.data_root}', flush=True)
    make_motion_dataset(args.data_root, num_train_per_class=args.
                        train_per_class, num_val_per_class=args.
                        val_per_class, num_frames=CLIP_FRAMES,
                        size=args.size, seed=args.seed)
    with open(stamp, 'w') as f:
        json.dump(wanted, f)


#: Backbone options of the control: nothing in it mixes frames.
TEMPORAL_OFF = dict(temporal=False, stem_temporal_kernel=1)


def write_config(path, data_root, epochs=None, backbone=None, shuffle=False,
                 base=CONFIG, init_from=None):
    """A config inheriting ``base`` with this run's paths.

    Args:
        epochs (int, optional): Override ``max_epochs`` (and the schedule).
        backbone (dict, optional): Backbone options to override.
        shuffle (bool): Test on clips whose frames are shuffled.
        base (str): Config to inherit: the main config or stage 1.
        init_from (str, optional): Checkpoint whose backbone starts the
            training (stage 1's); the main config's default path otherwise.
    """
    def dataset(split, pipeline):
        return (f"dict(data_root={data_root!r}, ann_file="
                f"{osp.join(data_root, split + '_list.txt')!r}, "
                f"data_prefix=dict(video={data_root!r}){pipeline})")
    test_pipe = ''
    if shuffle:
        test_pipe = (", pipeline=[dict(type='DecordInit'), dict(type="
                     "'SampleFrames', clip_len=num_frames, frame_interval=2,"
                     " num_clips=1, test_mode=True), dict(type="
                     "'ShuffleFrames', seed=0), dict(type='DecordDecode'), "
                     "dict(type='FormatShape', input_format='NCTHW'), "
                     "dict(type='PackActionInputs')]")
    lines = [
        f'_base_ = {base!r}',
        'num_frames = {{_base_.num_frames}}',
        f'train_dataloader = dict(dataset={dataset("train", "")})',
        f'val_dataloader = dict(dataset={dataset("val", "")})',
        f'test_dataloader = dict(dataset={dataset("val", test_pipe)})',
    ]
    backbone = dict(backbone or {})
    if init_from is not None:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=init_from,
                                    prefix='backbone.')
    if backbone:
        lines.append(f'model = dict(backbone={backbone!r})')
    if epochs is not None:
        lines += [f'train_cfg = dict(max_epochs={epochs})',
                  'param_scheduler = [dict(type="LinearLR", '
                  'start_factor=0.1, by_epoch=True, begin=0, end=1, '
                  'convert_to_iter_based=True), dict(type='
                  '"CosineAnnealingLR", T_max=max(1, {0} - 1), '
                  'eta_min=1e-5, by_epoch=True, begin=1, end={1}, '
                  'convert_to_iter_based=True)]'.format(epochs,
                                                       max(epochs, 2))]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def run(cmd):
    """Run a tool. One compute thread unless OMP_NUM_THREADS is set: the
    dataloader worker decodes on the other core, and oversubscribed OpenMP
    threads on 2 cores are many times slower than one thread."""
    print('[motion_demo] $ ' + ' '.join(cmd), flush=True)
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def check_labels(data_root):
    """The configs name classes by label number (ReverseFrames' pairs, the
    turning clips of stage 1); make sure they are this dataset's."""
    from mmengine.config import Config
    with open(osp.join(data_root, 'class_groups.json')) as f:
        groups = json.load(f)
    cfg = Config.fromfile(TURNING_CONFIG)
    names = groups['direction'] + groups['static']
    labels = groups['direction_labels'] + groups['static_labels']
    rotate = sorted(label for name, label in zip(names, labels)
                    if groups['kinds'][name] == 'rotate')
    found = dict(reverse_pairs=[list(p) for p in cfg.reverse_pairs],
                 time_symmetric=list(cfg.time_symmetric),
                 turning_labels=list(cfg.turning_labels))
    wanted = dict(reverse_pairs=groups['pair_labels'],
                  time_symmetric=groups['static_labels'],
                  turning_labels=rotate)
    if found != wanted:
        raise SystemExit(
            f'the demo configs label classes as {found}, but the dataset in '
            f'{data_root} (class_groups.json) has {wanted}: the configs are '
            'written for the generator\'s default classes')


def last_checkpoint(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


def train_and_test(name, run_dir, data_root, epochs=None, backbone=None,
                   shuffled=False):
    """Both stages of the recipe, then the test(s).

    Stage 1 (``TURNING_CONFIG``) trains on the turning clips alone; stage 2
    (the main config, ``epochs`` overriding its length) starts its backbone
    from stage 1. Returns the stage-2 work dir, the training seconds of both
    stages and ``{'ordered': dump[, 'shuffled': dump]}``.
    """
    turning = write_config(osp.join(run_dir, f'{name}_turning.py'),
                           data_root, backbone=backbone, base=TURNING_CONFIG)
    turning_work = osp.join(run_dir, f'{name}_turning')
    work = osp.join(run_dir, name)
    start = time.time()
    run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), turning,
         '--work-dir', turning_work, '--seed', '0'])
    stage1 = last_checkpoint(turning_work)
    cfg = write_config(osp.join(run_dir, f'{name}.py'), data_root, epochs,
                       backbone=backbone, init_from=stage1)
    run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg,
         '--work-dir', work, '--seed', '0'])
    train_s = time.time() - start
    ckpt = last_checkpoint(work)
    tests = [('ordered', cfg)]
    if shuffled:
        tests.append(('shuffled', write_config(
            osp.join(run_dir, f'{name}_shuffled.py'), data_root, epochs,
            backbone=backbone, shuffle=True, init_from=stage1)))
    results = {}
    for tag, test_cfg in tests:
        dump = osp.join(work, f'preds_{tag}.pkl')
        run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), test_cfg,
             ckpt, '--work-dir', work, '--dump', dump])
        results[tag] = dump
    return work, train_s, results


def score(dump, groups):
    """Top-1, direction-class top-1 and order accuracy from a dump."""
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    pair_of = {}
    for a, b in groups['pair_labels']:
        pair_of[a] = pair_of[b] = frozenset((a, b))
    direction = set(groups['direction_labels'])
    correct = dir_correct = dir_total = in_pair = order_ok = 0
    for p in preds:
        gt = int(p['gt_label'].reshape(-1)[0])
        pred = int(p['pred_score'].argmax())
        correct += pred == gt
        if gt in direction:
            dir_total += 1
            dir_correct += pred == gt
            if pred in pair_of[gt]:
                in_pair += 1
                order_ok += pred == gt
    return dict(top1=correct / len(preds),
                direction_top1=dir_correct / max(dir_total, 1),
                order_acc=order_ok / max(in_pair, 1),
                pair_found=in_pair / max(dir_total, 1), clips=len(preds))


def read_curves(work):
    """Scalars logged by mmengine's LocalVisBackend."""
    curves = dict(iter=[], loss=[], val_epoch=[], val_top1=[])
    for stamp in sorted(os.listdir(work)):
        path = osp.join(work, stamp, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec and 'iter' in rec:
                    curves['iter'].append(rec['iter'])
                    curves['loss'].append(rec['loss'])
                elif 'acc/top1' in rec:
                    curves['val_epoch'].append(rec.get('step', len(
                        curves['val_epoch']) + 1))
                    curves['val_top1'].append(rec['acc/top1'])
        if curves['iter']:
            break
    return curves


def plot(curves, out_png):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, c in curves.items():
        ax1.plot(c['iter'], c['loss'], label=name)
        ax2.plot(c['val_epoch'], c['val_top1'], marker='o', label=name)
    ax1.set_xlabel('iteration')
    ax1.set_ylabel('training loss')
    ax2.set_xlabel('epoch')
    ax2.set_ylabel('val top-1')
    ax2.set_ylim(0, 1)
    for ax in (ax1, ax2):
        ax.grid(alpha=.3)
        ax.legend()
    fig.suptitle('MorphMLP3D on the synthetic motion dataset')
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    ensure_dataset(args)
    run_dir = osp.join(args.work_dir, time.strftime('%Y%m%d_%H%M%S'))
    os.makedirs(run_dir)
    data_root = osp.abspath(args.data_root)
    check_labels(data_root)
    runs = {}
    work, secs, dumps = train_and_test('full', run_dir, data_root,
                                       args.epochs, shuffled=True)
    runs['MorphMLP3D'] = (work, secs, dumps['ordered'])
    runs['MorphMLP3D, frames shuffled at test'] = (work, 0., dumps['shuffled'])
    if not args.skip_ablation:
        work, secs, dumps = train_and_test('temporal_off', run_dir,
                                           data_root, args.epochs,
                                           backbone=TEMPORAL_OFF)
        runs['MorphMLP3D, temporal mixing off'] = (work, secs,
                                                   dumps['ordered'])

    with open(osp.join(data_root, 'class_groups.json')) as f:
        groups = json.load(f)
    summary = {}
    for name, (work, secs, dump) in runs.items():
        summary[name] = dict(score(dump, groups), train_seconds=round(secs))
    curves = {name: read_curves(work) for name, (work, secs, _) in
              runs.items() if secs > 0}
    png = osp.join(run_dir, 'curves.png')
    plot(curves, png)
    with open(osp.join(run_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)

    print('\n' + '=' * 92)
    print(f"{'model':38s} {'top-1':>7s} {'direction':>10s} {'order acc':>10s}"
          f" {'pair found':>11s} {'train s':>8s}")
    for name, s in summary.items():
        print(f"{name:38s} {s['top1']:7.1%} {s['direction_top1']:10.1%} "
              f"{s['order_acc']:10.1%} {s['pair_found']:11.1%} "
              f"{s['train_seconds']:8d}")
    print('=' * 92)
    print('direction: top-1 on the 8 classes that differ only in the order '
          'of frames; order acc: right\ndirection among clips whose pair '
          'was found (chance 50%).')
    print(f'curves: {png}\nsummary: {osp.join(run_dir, "summary.json")}\n'
          f'checkpoints: {run_dir}\ntotal time: {time.time() - start:.0f} s')
    return summary


if __name__ == '__main__':
    main()
