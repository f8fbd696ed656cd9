"""mmaction2-side data helpers (imported only when mmaction2 is installed)."""
from .video import RobustVideoDataset, ShuffleFrames

__all__ = ['RobustVideoDataset', 'ShuffleFrames']
