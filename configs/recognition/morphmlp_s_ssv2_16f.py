# Short name of MorphMLP-S u16 Something-Something V2 (67.1 top-1, 3 crops x 1
# clip).
_base_ = ['./morphmlp-small_in1k-pre_8xb8-amp-u16-60e_sthv2-rgb.py']
