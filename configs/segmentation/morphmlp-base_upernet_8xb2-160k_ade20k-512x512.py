# UperNet + MorphMLP-B, ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
# Same recipe as the MorphMLP-T config; B has 112/224/392/784 channels.
_base_ = './morphmlp-tiny_upernet_8xb2-160k_ade20k-512x512.py'
checkpoint_file = 'pretrained/morphmlp-base_8xb128_in1k.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.4,  # inferred, not tuned (see the T config)
        init_cfg=dict(checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[112, 224, 392, 784]),
    auxiliary_head=dict(in_channels=392))
