# Short name of MorphMLP-B 32x4x1 Kinetics-400 (80.8 top-1, 1 crop x 4 clips).
_base_ = ['./morphmlp-base_in1k-pre_8xb8-amp-32x4x1-60e_kinetics400-rgb.py']
