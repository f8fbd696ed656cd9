# MorphMLP-S, 32 uniformly sampled frames, Something-Something V2, ImageNet-1k
# initialisation. Official recipe: MTLab/MorphMLP
# configs/SSV2/SSV2_MLP_S32.yaml (the 16-frame recipe with 32 frames). Paper
# ([v1] Table 4): 68.3 / 91.3 top-1 / top-5 with 3 crops x 1 clip, 133.5 GFLOPs
# per view (the paper gives 405 G over the 3 views), 47.3 M parameters.
_base_ = ['./morphmlp-small_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py']

num_frames = 32
model = dict(backbone=dict(num_frames=num_frames))

# The 16-frame pipelines with clip_len = 32 (MorphMLP3D needs exactly
# num_frames frames per clip).
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
