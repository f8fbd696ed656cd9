# MorphMLP-B, 16x4 dense sampling, Kinetics-400, ImageNet-1k initialisation.
# Official recipe: MTLab/MorphMLP configs/K400/K400_MLP_B16x4.yaml (the S
# recipe with the B arch and stochastic depth 0.3). Paper ([v1] Table 3): 79.5
# / 94.4 top-1 / top-5 with 1 crop x 4 clips, 97.8 GFLOPs per view (the paper
# gives 392 G over the 4 views), 67.8 M parameters.
_base_ = ['./morphmlp-small_in1k-pre_8xb8-amp-16x4x1-60e_kinetics400-rgb.py']

pretrained = 'pretrained/morphmlp-base_8xb128_in1k.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)))
