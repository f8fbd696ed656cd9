# A small MorphMLP3D on the synthetic motion dataset (tools/data/make_motion_dataset.py, 32x32 clips of
# 16 frames, see tools/demo/motion_demo.py): 10 classes, 8 of which (4 pairs) differ only in the direction of time. Trains in minutes on
# 2 CPU cores; run by tools/demo/motion_demo.py. Everything else is mmaction2's standard recognition stack.
_base_ = ['mmaction::_base_/default_runtime.py']
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)

data_root = 'data/motion'
num_frames = 8  # every second frame of the 16-frame clips: 0, 2, ..., 14
num_classes = 10
# Stage 2 of the job: the backbone starts from stage 1, motion_morphmlp3d_turning.py (2 epochs on the turning clips
# alone, where tools/train.py writes it by default; the demo passes its own path). See that config for why.
turning_checkpoint = 'work_dirs/motion_morphmlp3d_turning/epoch_2.pth'

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='MorphMLP3D',
        # 32x32 input -> stage maps 8, 4, 2, 1: chunks of half a row, two rows, the whole map and the
        # single token, growing stage by stage like the 224 model ([14, 28, 28, 49] on 56/28/14/7).
        arch=dict(depths=[1, 1, 2, 1], channels=[32, 64, 128, 128],
                  chunk_lengths=[4, (2, 4), (2, 2), (1, 1)], mlp_ratio=3.),
        num_frames=num_frames,
        temporal=True,
        # The official init (mlp_t = 0, proj = 1) gives MorphFC_t a zero gradient in fp32 (see the
        # MorphMLP3D docstring); 'learnable' keeps the identity start and lets the branch train.
        temporal_init='learnable',
        drop_path_rate=0.,
        init_cfg=dict(type='Pretrained', checkpoint=turning_checkpoint, prefix='backbone.')),
    cls_head=dict(type='I3DHead', num_classes=num_classes, in_channels=128, dropout_ratio=0.,
                  average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[114.75] * 3, std=[57.375] * 3,
                           format_shape='NCTHW'))

# Labels of the generator's default classes (data/motion/class_groups.json): four pairs that are each other's
# time reversal, and two classes that look alike backwards.
reverse_pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]
time_symmetric = [8, 9]
# No flip: it would turn "left to right" into "right to left". ReverseFrames plays half of the clips backwards
# and gives them the label of the reverse action: every scene is then seen as both members of its pair, so the
# model cannot tell a pair apart by memorising scenes, only by the order of the frames.
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=num_frames, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='ReverseFrames', label_pairs=reverse_pairs, symmetric_labels=time_symmetric, prob=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=num_frames, frame_interval=2, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = val_pipeline  # read by mmaction.apis.inference_recognizer
dataset_type = 'RobustVideoDataset'
train_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='train_list.txt',
                 data_prefix=dict(video=''), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='val_list.txt',
                 data_prefix=dict(video=''), pipeline=val_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric', metric_list=('top_k_accuracy', 'mean_class_accuracy'))
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_begin=1, val_interval=3)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    # 1e-3: 87.7% val top-1 against 84.3% at 5e-4 (one-stage recipe, 15 epochs, both with ReverseFrames; without it
    # 1e-3 collapsed once)
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=20))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=1, save_best='auto'),
                     logger=dict(interval=50))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
