# MorphMLP-B, 16 uniformly sampled frames, Something-Something V2, ImageNet-1k
# initialisation. Official recipe: MTLab/MorphMLP
# configs/SSV2/SSV2_MLP_B16.yaml (the S recipe with the B arch and stochastic
# depth 0.6). Paper ([v1] Table 4): 67.6 / 91.3 top-1 / top-5 with 3 crops x 1
# clip, 97.8 GFLOPs per view (the paper gives 294 G over the 3 views), 67.6 M
# parameters.
_base_ = ['./morphmlp-small_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py']

pretrained = 'pretrained/morphmlp-base_8xb128_in1k.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.6,
        init_cfg=dict(checkpoint=pretrained)))
