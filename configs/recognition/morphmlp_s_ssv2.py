# Short name of MorphMLP-S u32 Something-Something V2 (68.3 top-1, 3 crops x 1
# clip).
_base_ = ['./morphmlp-small_in1k-pre_8xb8-amp-u32-60e_sthv2-rgb.py']
