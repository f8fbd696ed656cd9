# HEADLINE: MorphMLP-B, 32 frames, Something-Something V2 -- 70.1 / 92.8
# top-1 / top-5 in the paper ([v1] Table 4), 3 crops x 1 clip.
# Short name of the full config below; train it with
#   bash tools/dist_train.sh configs/recognition/morphmlp_b_ssv2.py 8
_base_ = ['./morphmlp-base_in1k-pre_8xb8-amp-u32-64e_sthv2-rgb.py']
