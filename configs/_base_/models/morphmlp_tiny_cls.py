# MorphMLP-T ImageNet-1k classifier (Zhang et al., ECCV 2022, [v1] Table 1).
# The backbone pools its last normed stage itself (out_type='avg_featmap',
# as the official head: LayerNorm on every token, then the mean), so there
# is no neck. Mixup/CutMix and label smoothing follow the DeiT recipe.
custom_imports = dict(imports=['morphmlp_mm'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MorphMLP',
        arch='tiny',
        out_indices=(3, ),
        out_type='avg_featmap',
        drop_path_rate=0.1),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=588,
        # The backbone already applies the official init (trunc-normal
        # std .02 for Linear, LayerNorm 1/0); the head gets the same.
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(augments=[
        # One of the two per batch, chosen with equal probability: timm's
        # mixup 0.8 / cutmix 1.0 / switch_prob 0.5 of the DeiT recipe.
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
