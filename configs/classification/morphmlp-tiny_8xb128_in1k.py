# MorphMLP-T on ImageNet-1k with the DeiT recipe of the paper ([v1] Sec. 4.1):
# 300 epochs, AdamW, batch 1024 (8 GPUs x 128), weight decay 0.05, cosine
# schedule with 20 warm-up epochs, RandAugment rand-m9-mstd0.5-inc1, Mixup 0.8,
# CutMix 1.0, label smoothing 0.1, random erasing 0.25, stochastic depth 0.1,
# bicubic resizing, ImageNet mean/std. Expected top-1: 81.6 (paper).
_base_ = [
    '../_base_/models/morphmlp_tiny_cls.py',
    # bicubic RandomResizedCrop 224, flip, RandAugment timm_increasing m9
    # n2 mstd0.5 (= rand-m9-mstd0.5-inc1), RandomErasing 0.25 'rand' (timm
    # 'pixel' mode); test: short side 256 + centre crop 224 (crop_pct .875)
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    # AdamW wd .05, no decay on norms/biases, LinearLR 20 epochs (start
    # factor 1e-3) + cosine to 1e-5, 300 epochs, auto_scale_lr base 1024
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]

# 8 GPUs x 128 images = 1024 per step, the paper's batch size.
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# Learning rate: the paper prints 0.01 for AdamW at batch 1024. We read that
# as a typo and use 1e-3: it is DeiT's linear rule (5e-4 x 1024 / 512), the
# recipe the paper says it follows; every AdamW-trained peer at batch 1024
# uses 1e-3 (DeiT, Swin, PVT, CycleMLP); and 10x that with AdamW on an MLP
# without layer scale is far outside what the DeiT recipe is known to train.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=5e-4 * 1024 / 512,
        weight_decay=0.05,
        eps=1e-8,
        betas=(0.9, 0.999)),
    # timm/DeiT: no weight decay on 1-D parameters (norms) and biases. The
    # Swin base also lists its position-embedding keys; MorphMLP has none.
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0),
    # DeiT trains without gradient clipping (its --clip-grad is None).
)

# 300 epochs, 20 warm-up epochs and eta_min 1e-5 come from the schedule base.
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3,
        save_best='auto'))
