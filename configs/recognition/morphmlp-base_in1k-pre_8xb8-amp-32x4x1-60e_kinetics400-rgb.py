# MorphMLP-B, 32x4 dense sampling, Kinetics-400, ImageNet-1k initialisation.
# Official recipe: MTLab/MorphMLP configs/K400/K400_MLP_B32x4.yaml: the B16
# recipe with 32 frames and a 30-epoch warm-up (10 for the others). Paper ([v1]
# Table 3): 80.8 / 94.9 top-1 / top-5 with 1 crop x 4 clips, 197.0 GFLOPs per
# view (the paper gives 788 G over the 4 views), 68.5 M parameters.
_base_ = ['./morphmlp-base_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py']

num_frames = 32
model = dict(backbone=dict(num_frames=num_frames))

train_pipeline = [
    dict(t, clip_len=num_frames) if t.type == 'SampleFrames' else t
    for t in _base_.train_pipeline
]
val_pipeline = [
    dict(t, clip_len=num_frames) if t.type == 'SampleFrames' else t
    for t in _base_.val_pipeline
]
test_pipeline = [
    dict(t, clip_len=num_frames) if t.type == 'SampleFrames' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

warmup_epochs = 30
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / _base_.base_lr,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=_base_.max_epochs - warmup_epochs,
        eta_min=1e-6,
        by_epoch=True,
        begin=warmup_epochs,
        end=_base_.max_epochs,
        convert_to_iter_based=True)
]
