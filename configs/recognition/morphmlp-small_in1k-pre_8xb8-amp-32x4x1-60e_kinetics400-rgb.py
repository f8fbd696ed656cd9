# MorphMLP-S, 32x4 dense sampling, Kinetics-400, ImageNet-1k initialisation.
# Official recipe: MTLab/MorphMLP configs/K400/K400_MLP_S32x4.yaml (the
# 16-frame recipe with 32 frames). Paper ([v1] Table 3): 79.7 / 94.2 top-1 /
# top-5 with 1 crop x 4 clips, 133.5 GFLOPs per view (the paper gives 532 G
# over the 4 views), 47.5 M parameters.
_base_ = ['./morphmlp-small_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py']

num_frames = 32
model = dict(backbone=dict(num_frames=num_frames))

# The 16-frame pipelines with clip_len = 32 (MorphMLP3D needs exactly
# num_frames frames per clip).
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
