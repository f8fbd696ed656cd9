"""Registration of the MorphMLP backbones into the OpenMMLab hosts.

This is the only module that touches the hosts' registries:

* ``MorphMLP`` (image) -> ``mmpretrain.registry.MODELS`` and
  ``mmseg.registry.MODELS``;
* ``MorphMLP3D`` (video) -> ``mmaction.registry.MODELS``;
* ``RobustVideoDataset``, ``RobustRepeatAugDataset`` ->
  ``mmaction.registry.DATASETS`` and
  ``ShuffleFrames``, ``ReverseFrames``, ``PyAVInitCounted`` ->
  ``mmaction.registry.TRANSFORMS``;
* the hooks and ``ClassCurriculumSampler`` -> mmengine's root ``HOOKS`` and
  ``DATA_SAMPLERS`` (every host's registry falls back to them).

A host that is not installed is skipped; a host that is installed but fails
to import raises, so a broken environment is never mistaken for a missing
optional dependency.
"""
import importlib
import importlib.util
from typing import Dict, List

from .models import MorphMLP, MorphMLP3D

#: host package -> (registry module, classes registered in its MODELS)
HOST_MODELS = {
    'mmpretrain': ('mmpretrain.registry', (MorphMLP, )),
    'mmseg': ('mmseg.registry', (MorphMLP, )),
    'mmaction': ('mmaction.registry', (MorphMLP3D, )),
}


def _register(registry, cls) -> None:
    existing = registry.module_dict.get(cls.__name__)
    if existing is not cls:
        # A different class under our name is a real conflict:
        # register_module raises a KeyError that names it.
        registry.register_module(module=cls)


def _register_mmaction_data() -> None:
    """Dataset and transform additions; they import mmaction themselves."""
    from mmaction.registry import DATASETS, TRANSFORMS
    from .datasets import (PyAVInitCounted, ReverseFrames,
                           RobustRepeatAugDataset, RobustVideoDataset,
                           ShuffleFrames)
    _register(DATASETS, RobustVideoDataset)
    _register(DATASETS, RobustRepeatAugDataset)
    _register(TRANSFORMS, ShuffleFrames)
    _register(TRANSFORMS, ReverseFrames)
    _register(TRANSFORMS, PyAVInitCounted)


def register_all() -> Dict[str, List[str]]:
    """Register the backbones into every installed host.

    Returns:
        dict: host name -> names registered there (hosts that are not
        installed are absent).
    """
    registered = {}
    for host, (module_name, classes) in HOST_MODELS.items():
        if importlib.util.find_spec(host) is None:
            continue
        models = importlib.import_module(module_name).MODELS
        names = []
        for cls in classes:
            _register(models, cls)
            names.append(cls.__name__)
        if host == 'mmaction':
            _register_mmaction_data()
        registered[host] = names
    if importlib.util.find_spec('mmengine') is not None:
        from .engine.hooks import register_hooks
        from .engine.samplers import register_samplers
        register_hooks()
        register_samplers()
    return registered
