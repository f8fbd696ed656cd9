# Semantic FPN (Kirillov et al., 2019) + MorphMLP (Zhang et al., ECCV 2022),
# the segmentation model of the MorphMLP paper ([v1] Table 6, "PVT setting").
# The layout follows mmseg's `_base_/models/fpn_r50.py`: FPN neck to 256
# channels, FPNHead with 128 channels. Channels are MorphMLP-T's
# (84, 168, 336, 588); the S/B configs change arch and channels.
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)

# SyncBN in the head and in the backbone's stem (the FPN neck has no norm).
# mmengine's Runner reverts it to BatchNorm in a single process.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='MorphMLP',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        out_type='featmap',
        drop_path_rate=0.1,
        norm_cfg=norm_cfg),
    neck=dict(
        type='FPN',
        in_channels=[84, 168, 336, 588],
        out_channels=256,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[256, 256, 256, 256],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=128,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
