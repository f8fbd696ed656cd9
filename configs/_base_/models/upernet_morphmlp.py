# UperNet + MorphMLP (Zhang et al., ECCV 2022) for mmsegmentation.
# The layout follows mmseg's `_base_/models/upernet_swin.py` /
# `upernet_convnext.py`: UPerHead on the four stride-4/8/16/32 maps and an
# FCN auxiliary head on stage 3 (loss weight 0.4). Channels are MorphMLP-T's
# (84, 168, 336, 588); the S/B configs change arch and channels.
# The paper reports no UperNet result; this is the Swin/ConvNeXt recipe.
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)

# SyncBN in the heads and in the backbone's stem. mmengine's Runner reverts it
# to BatchNorm when training/testing runs in a single process.
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
        drop_path_rate=0.2,
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='UPerHead',
        in_channels=[84, 168, 336, 588],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=336,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
