from .paths import same_file
from .safe_load import safe_torch_load

__all__ = ['safe_torch_load', 'same_file']
