# UperNet + MorphMLP-T, ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# The MorphMLP paper reports no UperNet number; this is mmseg's Swin UperNet
# recipe (AdamW 6e-5, weight decay 0.01, no decay on norms, 1500-iteration
# linear warm-up, then poly decay with power 1.0) with ConvNeXt's slide test.
# No layer-wise lr decay: see docs/segmentation.md ("Optimizer") for why.
_base_ = [
    '../_base_/models/upernet_morphmlp.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
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
        # Inferred, not tuned: IN-1k uses 0.1/0.1/0.3 for T/S/B; UperNet
        # recipes of hierarchical backbones raise it (Swin 0.3, ConvNeXt
        # 0.3-0.4) for the 160k schedule.
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file,
            prefix='backbone.')),
    decode_head=dict(in_channels=[84, 168, 336, 588], num_classes=150),
    auxiliary_head=dict(in_channels=336, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    # LayerNorms of the blocks / downsampling layers, the stem's BNs and the
    # output norms: every backbone norm has 'norm' in its name.
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False),
]

# 8 GPUs x 2 images = batch 16, as mmseg's Swin/ConvNeXt UperNet configs.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
