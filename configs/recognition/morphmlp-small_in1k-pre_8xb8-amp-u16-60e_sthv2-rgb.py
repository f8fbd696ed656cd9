# MorphMLP-S, 16 uniformly sampled frames, Something-Something V2, ImageNet-1k
# initialisation. Official recipe: MTLab/MorphMLP
# configs/SSV2/SSV2_MLP_S16.yaml. Paper ([v1] Table 4): 67.1 / 90.9 top-1 /
# top-5 with 3 crops x 1 clip, 66.5 GFLOPs per view (the paper gives 201 G over
# the 3 views), 46.9 M parameters.
#
# This is the full Something-Something V2 config; the other SSV2 configs
# inherit it and change only arch, frames or schedule.
_base_ = [
    '../_base_/models/morphmlp3d.py',
    'mmaction::_base_/default_runtime.py',
    './_base_/video_decoder.py',
]

# The converted ImageNet-1k weights (docs/recognition.md, "Initialisation").
pretrained = 'pretrained/morphmlp-small_8xb128_in1k.pth'

num_classes = 174
model = dict(
    backbone=dict(
        arch='small',
        num_frames=16,
        drop_path_rate=0.3,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    cls_head=dict(num_classes=num_classes),
    data_preprocessor=dict(
        blending=dict(augments=[
            dict(type='MixupBlending', alpha=0.8, num_classes=num_classes),
            dict(type='CutmixBlending', alpha=1.0, num_classes=num_classes)
        ])))

# dataset settings (RobustVideoDataset: mmaction2's VideoDataset with clear
# errors for a wrong data root / annotation file; morphmlp_mm.datasets)
dataset_type = 'RobustVideoDataset'
data_root = 'data/sthv2/videos'
data_root_val = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'

# RandAugment as in the Kinetics-400 configs (see the note in
# morphmlp-small_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py): 4 layers of
# one op applied with probability 0.5, magnitude 7 of 10.
rand_augment = [
    dict(
        type='RandomApply',
        prob=0.5,
        transforms=[
            dict(
                type='TorchVisionWrapper',
                op='RandAugment',
                num_ops=1,
                magnitude=7,
                num_magnitude_bins=11,
                interpolation=2)
        ]) for _ in range(4)
]

# Training: TSN-style segment sampling (the video is cut into 16 equal
# segments and one random frame is taken from each), random-resized crop
# (area 8-100 %, aspect 3/4-4/3) to 224, NO flip (left/right matters in
# SSV2), RandAugment (above) and random erasing 0.25 as in the Kinetics-400
# configs.
train_pipeline = [
    _base_.decoder_init,
    dict(type='UniformSample', clip_len=16),
    _base_.decoder_decode,
    dict(
        type='RandomResizedCrop',
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    *rand_augment,
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        fill_color=(114.75, 114.75, 114.75),
        fill_std=(57.375, 57.375, 57.375)),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# Validation during training: the middle frame of every segment, centre crop.
val_pipeline = [
    _base_.decoder_init,
    dict(type='UniformSample', clip_len=16, test_mode=True),
    _base_.decoder_decode,
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# Test (the paper's views): 1 clip x 3 crops (left/centre/right), short side
# 224.
test_pipeline = [
    _base_.decoder_init,
    dict(type='UniformSample', clip_len=16, num_clips=1, test_mode=True),
    _base_.decoder_decode,
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=_base_.train_videos_per_gpu,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=_base_.train_collate_fn,
    dataset=dict(
        type=_base_.train_dataset_type,
        **_base_.train_dataset_extra,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root_val),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline,
        test_mode=True))

# top-1, top-5 and mean class accuracy.
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

max_epochs = 60
warmup_epochs = 5
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW, lr 4e-4 for 64 videos per step (8 GPUs x 8 videos, each augmented
# twice), weight decay 0.05 except on norms and biases, gradient-norm clipping
# at 20, mixed precision (CPU: --cfg-options optim_wrapper.type=OptimWrapper).
base_lr = 4e-4
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=base_lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=20, norm_type=2))

# Linear warm-up from 1e-6, then cosine from base_lr down to 1e-6, both
# updated every iteration.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / base_lr,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=1e-6,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]

default_hooks = dict(
    checkpoint=dict(interval=2, max_keep_ckpts=3, save_best='auto'),
    logger=dict(interval=50))

# `--auto-scale-lr` scales base_lr by (GPUs x batch_size) / base_batch_size.
auto_scale_lr = dict(
    enable=False, base_batch_size=8 * _base_.train_videos_per_gpu)
