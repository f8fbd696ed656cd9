# MorphMLP-S, 16x4 dense sampling, Kinetics-400, ImageNet-1k initialisation.
# Official recipe: MTLab/MorphMLP configs/K400/K400_MLP_S16x4.yaml. Paper ([v1]
# Table 3): 78.7 / 93.8 top-1 / top-5 with 1 crop x 4 clips, 66.5 GFLOPs per
# view (the paper gives 268 G over the 4 views), 47.0 M parameters.
#
# This is the full Kinetics-400 config; the other Kinetics-400 configs inherit
# it and change only arch, frames or schedule.
_base_ = [
    '../_base_/models/morphmlp3d.py',
    'mmaction::_base_/default_runtime.py',
    './_base_/video_decoder.py',
]

# The converted ImageNet-1k weights (docs/recognition.md, "Initialisation"):
# an mmpretrain checkpoint whose backbone keys start with 'backbone.'. The
# 2-D kernels are inflated to 3-D when they are loaded and the temporal
# branch keeps its official identity initialisation.
pretrained = 'pretrained/morphmlp-small_8xb128_in1k.pth'

model = dict(
    backbone=dict(
        arch='small',
        num_frames=16,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    cls_head=dict(num_classes=400))

# dataset settings (RobustVideoDataset: mmaction2's VideoDataset with clear
# errors for a wrong data root / annotation file; morphmlp_mm.datasets)
dataset_type = 'RobustVideoDataset'
data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'
ann_file_test = 'data/kinetics400/kinetics400_val_list_videos.txt'

# Training: one clip of 16 frames, one every 4th frame, at a random offset;
# random-resized crop (area 8-100 %, aspect 3/4-4/3) to 224, horizontal flip,
# RandAugment (see the note below), random erasing 0.25.
#
# RandAugment: the official recipe is timm's 'rand-m7-n4-mstd0.5-inc1': 4
# layers, each drawing one op and applying it with probability 0.5, at
# magnitude 7 of 10, the same for every frame of the clip. mmaction2's
# PytorchVideoWrapper needs pytorchvideo, whose last release does not import
# with torchvision >= 0.17, so each layer here is torchvision's RandAugment
# with one op inside mmcv's RandomApply(prob=0.5); 11 magnitude bins make
# magnitude 7 70 % of each op's range as in timm (no magnitude noise;
# interpolation 2 = bilinear). One draw per clip: all frames get the same op.
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

# Random erasing: one box with p = 0.25, filled with per-pixel noise
# N(114.75, 57.375) -- timm's 'pixel' mode N(0, 1) after normalisation.
train_pipeline = [
    _base_.decoder_init,
    dict(type='SampleFrames', clip_len=16, frame_interval=4, num_clips=1),
    _base_.decoder_decode,
    dict(
        type='RandomResizedCrop',
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
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
# Validation during training: 1 clip x centre crop (cheap).
val_pipeline = [
    _base_.decoder_init,
    dict(
        type='SampleFrames',
        clip_len=16,
        frame_interval=4,
        num_clips=1,
        test_mode=True),
    _base_.decoder_decode,
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# Test (the paper's views): 4 clips evenly spread over the video x 1 centre
# crop, short side 224.
test_pipeline = [
    _base_.decoder_init,
    dict(
        type='SampleFrames',
        clip_len=16,
        frame_interval=4,
        num_clips=4,
        test_mode=True),
    _base_.decoder_decode,
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
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
warmup_epochs = 10
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW, lr 2e-4 for 64 videos per step (8 GPUs x 8 videos, each augmented
# twice), weight decay 0.05 except on norms and biases (official
# ZERO_WD_1D_PARAM: every 1-D parameter of MorphMLP is a norm weight or a
# bias), gradient-norm clipping at 20, mixed precision. On a CPU use
# --cfg-options optim_wrapper.type=OptimWrapper.
base_lr = 2e-4
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
# updated every iteration (official WARMUP_START_LR / COSINE_END_LR 1e-6,
# COSINE_AFTER_WARMUP).
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
