"""Shared pytest setup.

There is deliberately no ``tests/__init__.py``: mmsegmentation's wheel
installs a top-level ``tests`` package, and ours must not shadow it.
"""
import os
import sys

import pytest

# Repository root on sys.path so tests can import tools/ scripts.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import morphmlp_mm  # noqa: E402,F401  (host workarounds before host imports)


@pytest.fixture(scope='session')
def repo_root():
    return ROOT
