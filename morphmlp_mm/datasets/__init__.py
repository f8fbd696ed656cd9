"""mmaction2-side data helpers (imported only when mmaction2 is installed)."""
from .video import (PyAVInitCounted, ReverseFrames, RobustRepeatAugDataset,
                    RobustVideoDataset, ShuffleFrames)

__all__ = [
    'PyAVInitCounted', 'ReverseFrames', 'RobustRepeatAugDataset',
    'RobustVideoDataset', 'ShuffleFrames'
]
