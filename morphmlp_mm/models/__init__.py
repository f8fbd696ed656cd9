from .blocks import Downsample, MorphBlock, Stem
from .morph_fc import (Mlp, MorphFCSpatial, MorphFCTemporal, chunk_mix,
                       default_chunk_window, temporal_groups)
from .morphmlp import MorphMLP
from .morphmlp3d import MorphMLP3D

__all__ = [
    'MorphMLP', 'MorphMLP3D', 'MorphBlock', 'Stem', 'Downsample', 'Mlp',
    'MorphFCSpatial', 'MorphFCTemporal', 'chunk_mix', 'default_chunk_window',
    'temporal_groups'
]
