"""The main job end to end at tiny settings, and the video demo."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from tools.demo import motion_demo, video_demo


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('motion_demo')
    summary = motion_demo.main([
        '--data-root', str(root / 'data'), '--work-dir', str(root / 'work'),
        '--train-per-class', '2', '--val-per-class', '1', '--epochs', '1'])
    (run_dir, ) = os.listdir(root / 'work')
    return root, root / 'work' / run_dir, summary


def test_job_writes_summary_plot_and_checkpoints(demo_run):
    root, run_dir, summary = demo_run
    assert set(summary) == {'MorphMLP3D', 'MorphMLP3D, temporal mixing off',
                            'MorphMLP3D, frames shuffled at test'}
    for row in summary.values():
        assert row['clips'] == 10  # 1 val clip x 10 classes
        for key in ('top1', 'direction_top1', 'order_acc', 'pair_found'):
            assert 0. <= row[key] <= 1.
    with open(run_dir / 'summary.json') as f:
        assert json.load(f) == summary
    png = run_dir / 'curves.png'
    assert png.stat().st_size > 10_000
    for name in ('full', 'temporal_off'):
        # stage 2 starts from stage 1's checkpoint, of the same model
        with open(run_dir / f'{name}_turning' / 'last_checkpoint') as f:
            stage1 = f.read().strip()
        assert osp.isfile(stage1)
        cfg = Config.fromfile(str(run_dir / f'{name}.py'))
        assert cfg.model.backbone.init_cfg == dict(
            type='Pretrained', checkpoint=stage1, prefix='backbone.')
        with open(run_dir / name / 'last_checkpoint') as f:
            assert osp.isfile(f.read().strip())
        turning = Config.fromfile(str(run_dir / f'{name}_turning.py'))
        assert turning.train_dataloader.sampler.type == \
            'ClassCurriculumSampler'
        assert turning.model.backbone.get('init_cfg') is None
    for name in ('temporal_off', 'temporal_off_turning'):
        cfg_text = (run_dir / f'{name}.py').read_text()
        assert "'temporal': False" in cfg_text
        assert "'stem_temporal_kernel': 1" in cfg_text


def test_stage_one_writes_where_stage_two_reads():
    """Run by hand, tools/train.py puts stage 1 where stage 2 looks."""
    main = Config.fromfile(motion_demo.CONFIG)
    turning = Config.fromfile(motion_demo.TURNING_CONFIG)
    stem = osp.splitext(osp.basename(motion_demo.TURNING_CONFIG))[0]
    assert main.model.backbone.init_cfg.checkpoint == osp.join(
        'work_dirs', stem, f'epoch_{turning.train_cfg.max_epochs}.pth')
    assert turning.default_hooks.checkpoint.interval == \
        turning.train_cfg.max_epochs
    stages = turning.train_dataloader.sampler.curriculum
    assert [s['epochs'] for s in stages] == [turning.train_cfg.max_epochs]


def test_configs_must_match_the_dataset_labels(tmp_path):
    groups = dict(direction=['a', 'b'], direction_labels=[0, 1],
                  static=['c'], static_labels=[2], pair_labels=[[0, 1]],
                  kinds=dict(a='rotate', b='rotate', c='static'))
    (tmp_path / 'class_groups.json').write_text(json.dumps(groups))
    with pytest.raises(SystemExit, match="generator's default classes"):
        motion_demo.check_labels(str(tmp_path))


def test_dataset_is_reused_and_foreign_data_refused(demo_run, tmp_path):
    root, _, _ = demo_run
    args = motion_demo.parse_args([
        '--data-root', str(root / 'data'), '--train-per-class', '2',
        '--val-per-class', '1'])
    motion_demo.ensure_dataset(args)  # same settings: reused, no error
    args.train_per_class = 3
    with pytest.raises(SystemExit, match='other settings'):
        motion_demo.ensure_dataset(args)
    (tmp_path / 'mine.txt').write_text('user data')
    args = motion_demo.parse_args(['--data-root', str(tmp_path)])
    with pytest.raises(SystemExit, match='not a motion dataset'):
        motion_demo.ensure_dataset(args)
    assert (tmp_path / 'mine.txt').read_text() == 'user data'


def test_video_demo_prints_top5_and_draws(demo_run, tmp_path, capsys):
    root, run_dir, _ = demo_run
    with open(run_dir / 'full' / 'last_checkpoint') as f:
        ckpt = f.read().strip()
    video = root / 'data' / 'videos' / 'val' / '000000.mp4'
    top = video_demo.main([
        str(run_dir / 'full.py'), ckpt, str(video), '--labels',
        str(root / 'data' / 'label_map.txt'), '--out-dir', str(tmp_path)])
    assert len(top) == 5
    assert [s for _, s in top] == sorted([s for _, s in top], reverse=True)
    out = capsys.readouterr().out
    assert 'top-5' in out and top[0][0] in out
    assert (tmp_path / '000000_top5.png').stat().st_size > 1000
    assert (tmp_path / '000000_top5.mp4').stat().st_size > 1000


def test_video_demo_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        video_demo.parse_args(['cfg.py', 'none', str(tmp_path / 'no.mp4')])
