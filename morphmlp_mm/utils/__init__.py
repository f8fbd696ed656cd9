from .safe_load import safe_torch_load

__all__ = ['safe_torch_load']
