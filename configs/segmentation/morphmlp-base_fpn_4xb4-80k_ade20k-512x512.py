# Semantic FPN + MorphMLP-B, ADE20K 512x512: the paper's setting
# ([v1] Table 6, MorphMLP-B 45.9 mIoU). Same recipe as the MorphMLP-T config.
_base_ = './morphmlp-tiny_fpn_4xb4-80k_ade20k-512x512.py'
checkpoint_file = 'pretrained/morphmlp-base_8xb128_in1k.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,  # the IN-1k value of [v1] Table 1 (not stated)
        init_cfg=dict(checkpoint=checkpoint_file)),
    neck=dict(in_channels=[112, 224, 392, 784]))
