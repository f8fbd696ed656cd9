# Semantic FPN + MorphMLP-S, ADE20K 512x512: the paper's setting
# ([v1] Table 6, MorphMLP-S 44.7 mIoU). Same recipe as the MorphMLP-T config.
_base_ = './morphmlp-tiny_fpn_4xb4-80k_ade20k-512x512.py'
checkpoint_file = 'pretrained/morphmlp-small_8xb128_in1k.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,  # the IN-1k value of [v1] Table 1 (not stated)
        init_cfg=dict(checkpoint=checkpoint_file)),
    neck=dict(in_channels=[112, 224, 392, 784]))
