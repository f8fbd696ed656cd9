# Semantic FPN + MorphMLP-T, ADE20K 512x512: the paper's setting
# ([v1] Table 6, MorphMLP-T 43.0 mIoU). The paper states: mmsegmentation,
# Semantic FPN, "the PVT setting", AdamW, lr 1e-4, cosine schedule, random
# resize + 512x512 crop, test with the short side resized to 512.
# Not stated, taken from PVT (Wang et al., ICCV 2021, Semantic FPN on
# ADE20K): 80k iterations at a total batch of 16 and weight decay 1e-4.
# See docs/segmentation.md for what is known and what is inferred.
_base_ = [
    '../_base_/models/fpn_morphmlp.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
# mmpretrain ImageClassifier checkpoint of configs/classification/
# morphmlp-tiny_8xb128_in1k.py (or a converted official checkpoint), keys
# 'backbone.*'. Without it: --cfg-options model.backbone.init_cfg=None
checkpoint_file = 'pretrained/morphmlp-tiny_8xb128_in1k.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.1,  # the IN-1k value of [v1] Table 1 (not stated)
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file,
            prefix='backbone.')),
    neck=dict(in_channels=[84, 168, 336, 588]),
    decode_head=dict(num_classes=150),
    # whole-image test at short side 512 (the test pipeline's Resize)
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=None)

# [v1] says cosine; PVT itself used poly decay (power 0.9).
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=80000,
        eta_min=0.0,
        by_epoch=False,
        begin=0,
        end=80000)
]

# 4 GPUs x 4 images = batch 16 (PVT).
train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
