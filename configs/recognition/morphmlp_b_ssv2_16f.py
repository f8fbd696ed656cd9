# Short name of MorphMLP-B u16 Something-Something V2 (67.6 top-1, 3 crops x 1
# clip).
_base_ = ['./morphmlp-base_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py']
