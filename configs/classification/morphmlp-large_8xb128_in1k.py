# MorphMLP-Large on ImageNet-1k: the recipe of morphmlp-tiny_8xb128_in1k.py
# (DeiT recipe, AdamW lr 1e-3 at batch 1024, 300 epochs) with the large arch,
# stochastic depth 0.4 ([v1] Table 1) and a 784-channel head.
# Expected top-1: 83.4 (paper).
_base_ = ['./morphmlp-tiny_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='large', drop_path_rate=0.4),
    head=dict(in_channels=784))
