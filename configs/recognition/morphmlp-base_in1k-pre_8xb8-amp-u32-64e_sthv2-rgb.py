# MorphMLP-B, 32 uniformly sampled frames, Something-Something V2, ImageNet-1k
# initialisation -- the headline model
# (configs/recognition/morphmlp_b_ssv2.py). Official recipe: MTLab/MorphMLP
# configs/SSV2/SSV2_MLP_B32.yaml: the B16 recipe with 32 frames and 64 epochs
# (60 for the others). Paper ([v1] Table 4): 70.1 / 92.8 top-1 / top-5 with 3
# crops x 1 clip, 197.0 GFLOPs per view (the paper gives 591 G over the 3
# views), 68.3 M parameters.
#
# The official yaml points PRETRAIN_PATH at video_morphmlp_s.pth; before
# 2023-03-16 that file held B depths (MTLab/MorphMLP issue #4), so the B
# ImageNet-1k weights are used here.
_base_ = ['./morphmlp-base_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py']

num_frames = 32
model = dict(backbone=dict(num_frames=num_frames))

train_pipeline = [
    dict(t, clip_len=num_frames) if t.type == 'UniformSample' else t
    for t in _base_.train_pipeline
]
val_pipeline = [
    dict(t, clip_len=num_frames) if t.type == 'UniformSample' else t
    for t in _base_.val_pipeline
]
test_pipeline = [
    dict(t, clip_len=num_frames) if t.type == 'UniformSample' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

max_epochs = 64
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / _base_.base_lr,
        by_epoch=True,
        begin=0,
        end=_base_.warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - _base_.warmup_epochs,
        eta_min=1e-6,
        by_epoch=True,
        begin=_base_.warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]
