"""Deterministic synthetic weights for comparing MorphMLP against the official code.

The reference files in ``tests/data/official/`` were produced by running the
official MorphMLP video model (MTLab/MorphMLP @ 62ebe80) with a state dict built
by :func:`make_official_state_dict` from the key list stored next to them.
Tests rebuild the very same state dict from the stored key list, convert it
with our converter and compare outputs, so no real weights need to be stored.

This module contains no official code; it only knows the official key *names*
(as plain strings read from the JSON files) to decide how to draw each tensor.

The rule, for the ``index``-th ``(key, shape)`` pair (in the stored order):

* a fresh ``torch.Generator`` is seeded with ``seed * 1_000_003 + index``;
* ``*.num_batches_tracked``: int64 scalar ``1000`` (no random draw);
* ``*.running_mean``: ``0.1 * N(0, 1)``;
* ``*.running_var``: ``U(0.5, 1.5)``;
* 1-D ``*.weight`` (LayerNorm / BatchNorm scale): ``1 + 0.1 * N(0, 1)``;
* 1-D ``*.bias`` (any bias): ``0.05 * N(0, 1)``;
* weights with two or more dimensions (Linear / Conv): ``N(0, 1) / sqrt(fan_in)``
  with ``fan_in = prod(shape[1:])``, which keeps every branch O(1), so every
  layer (temporal FC, reweighting MLP, ...) visibly influences the logits.

Values are drawn in float32 with ``torch.randn`` / ``torch.rand`` on the CPU
generator, which is reproducible across platforms for a given shape.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence, Union

import torch

DATA_DIR = Path(__file__).resolve().parent / 'data' / 'official'

KeyShapes = Iterable[Sequence[Union[str, Sequence[int]]]]


def _generator(seed: int, index: int) -> torch.Generator:
    """Return a CPU generator seeded from ``(seed, index)``."""
    gen = torch.Generator(device='cpu')
    gen.manual_seed(seed * 1_000_003 + index)
    return gen


def make_official_tensor(key: str, shape: Sequence[int], seed: int,
                         index: int) -> torch.Tensor:
    """Draw the synthetic tensor for one state-dict entry.

    Args:
        key: Official state-dict key, e.g. ``'blocks1.0.fc.mlp_h.weight'``.
        shape: Tensor shape.
        seed: Global seed of the state dict.
        index: Position of the key in the ordered key list.

    Returns:
        The tensor (float32, or int64 for ``num_batches_tracked``).

    Raises:
        ValueError: If the key/shape does not match any rule.
    """
    shape = tuple(int(s) for s in shape)
    if key.endswith('num_batches_tracked'):
        return torch.tensor(1000, dtype=torch.int64)
    gen = _generator(seed, index)
    if key.endswith('running_mean'):
        return 0.1 * torch.randn(shape, generator=gen)
    if key.endswith('running_var'):
        return 0.5 + torch.rand(shape, generator=gen)
    if key.endswith('.weight') and len(shape) == 1:
        return 1.0 + 0.1 * torch.randn(shape, generator=gen)
    if key.endswith('.bias') and len(shape) == 1:
        return 0.05 * torch.randn(shape, generator=gen)
    if key.endswith('.weight') and len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    raise ValueError(f'key={key!r} with shape={shape} matches no weight rule; '
                     'allowed: *.num_batches_tracked, *.running_mean, '
                     '*.running_var, 1-D *.weight/*.bias, >=2-D *.weight')


def make_official_state_dict(key_shapes: KeyShapes,
                             seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """Build the synthetic official state dict for an ordered key list.

    Args:
        key_shapes: Ordered ``[key, shape]`` pairs, e.g. the content of
            ``keys_s16.json``. The order matters (it feeds the seeds).
        seed: Global seed (the reference files use 0).

    Returns:
        An ordered dict ``key -> tensor`` in the same order.

    Raises:
        ValueError: If ``seed`` is negative or a key matches no rule.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed={seed!r} must be a non-negative int')
    state = OrderedDict()
    for index, (key, shape) in enumerate(key_shapes):
        state[key] = make_official_tensor(key, shape, seed, index)
    return state


def load_key_shapes(name: str) -> list:
    """Read ``keys_<name>.json`` (or ``<name>.json``) from the data folder.

    Args:
        name: ``'s16'``, ``'s32'``, ``'b16'``, ``'b32'``, ``'small16'`` ... or a
            file name ending in ``.json``.

    Returns:
        The ordered list of ``[key, shape]`` pairs.
    """
    fname = name if name.endswith('.json') else f'keys_{name}.json'
    with open(DATA_DIR / fname) as f:
        data = json.load(f)
    return data['keys'] if isinstance(data, dict) else data


def make_input(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """The reference input: ``torch.randn(shape)`` from a generator seeded ``seed``.

    Args:
        shape: Input shape, e.g. ``(1, 3, 16, 224, 224)``.
        seed: Generator seed (the reference files use 0).

    Returns:
        A float32 tensor.
    """
    gen = torch.Generator(device='cpu')
    gen.manual_seed(seed)
    return torch.randn(tuple(int(s) for s in shape), generator=gen)
