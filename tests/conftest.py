"""Shared pytest setup.

There is deliberately no ``tests/__init__.py``: mmsegmentation's wheel
installs a top-level ``tests`` package, and ours must not shadow it.
"""
import os
import random
import sys

import numpy as np
import pytest
import torch

# Repository root on sys.path so tests can import tools/ scripts.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import morphmlp_mm  # noqa: E402,F401  (host workarounds before host imports)


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(autouse=True)
def same_global_seed():
    """Every test starts from the same global RNG state, so inputs drawn
    without a generator (and random inits) do not depend on which tests
    ran before it or on a ``-k`` selection: a comparison near its
    tolerance gives the same verdict in any order."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def restore_default_scope():
    """Drop the mmengine ``DefaultScope`` instances a test creates (a
    Runner, a tool's ``init_default_scope``): the current default scope is
    global state, and a registry lookup in a later test depends on it."""
    from mmengine.registry import DefaultScope
    before = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)
