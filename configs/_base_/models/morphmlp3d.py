# MorphMLP video recognizer (Zhang et al., ECCV 2022; official MTLab/MorphMLP).
#
# MorphMLP-S, 16 input frames, Kinetics-400 head. The recognition configs in
# configs/recognition/ change arch / num_frames / drop_path_rate / classes.
#
# * Backbone: MorphMLP3D returns the normed last stage (B, 784, T/2, H/32,
#   W/32); I3DHead averages it over T, H, W and applies one Linear layer --
#   the official head (LayerNorm on every token, mean, Linear). The official
#   configs set DROPOUT_RATE 0.5 but the MorphMLP model never uses it, so the
#   head has no dropout.
# * Loss: soft-target cross entropy with label smoothing 0.1 (mmaction2
#   BaseHead.label_smooth_eps; smoothing the mixed targets equals timm's
#   mixing of smoothed one-hot targets, as the official code does).
# * Mixup 0.8 / CutMix 1.0, one of them per batch with probability 0.5 each
#   (official MIXUP.PROB 1.0, SWITCH_PROB 0.5): RandomBatchAugment in the
#   data preprocessor. ``num_classes`` there must equal the head's.
# * Normalisation: the SlowFast/MorphMLP mean 0.45 / std 0.225 on every
#   channel, times 255 (frames are uint8 here).
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='MorphMLP3D',
        arch='small',
        num_frames=16,
        out_indices=(3, ),
        out_type='featmap',
        drop_path_rate=0.1),
    cls_head=dict(
        type='I3DHead',
        in_channels=784,
        num_classes=400,
        spatial_type='avg',
        dropout_ratio=0.,
        # The official head is a Linear layer initialised with a truncated
        # normal of std 0.02; I3DHead draws a normal of the same std.
        init_std=0.02,
        label_smooth_eps=0.1,
        # The official test sums the raw logits of all views.
        average_clips='score'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[114.75, 114.75, 114.75],
        std=[57.375, 57.375, 57.375],
        format_shape='NCTHW',
        blending=dict(
            type='RandomBatchAugment',
            augments=[
                dict(type='MixupBlending', alpha=0.8, num_classes=400),
                dict(type='CutmixBlending', alpha=1.0, num_classes=400)
            ])))
