"""Scripts under the repository's ``tools/`` imported as modules (tests).

The scripts are not a package, so tests import them by path. Each script is
executed once per test session and shared by every test that loads it, under
a module name derived from its path (``tools/data/make_tiny_dataset.py`` ->
``morphmlp_mm_tools_data_make_tiny_dataset``), so monkeypatching one test's
copy is the same as patching any other's.
"""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str) -> ModuleType:
    """Import ``ROOT / relpath`` (e.g. ``'tools/train.py'``) as a module."""
    path = ROOT / relpath
    if path.suffix != '.py' or not path.is_file():
        raise FileNotFoundError(f'load_script: no Python script at {path}')
    name = 'morphmlp_mm_' + '_'.join(Path(relpath).with_suffix('').parts)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
