"""Packaging for morphmlp_mm.

Runtime needs torch, mmengine and mmcv (full ``mmcv`` or ``mmcv-lite``; we
do not pin one of them in ``install_requires`` because installing both puts
two packages into the same ``mmcv/`` folder): ``.[all]`` brings mmcv-lite,
a single host extra does not, so add ``mmcv-lite`` to it (``.[cls,mmcv-lite]``)
unless mmcv is installed. Each host is an extra.
Exact, tested pins: ``requirements/tests.txt``.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open(osp.join('morphmlp_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


MMCV_LITE = ['mmcv-lite>=2.0.0,<2.2.0']
# The hosts' configs and registries import pkg_resources (dropped by
# setuptools 81) through mmengine's mim helpers.
HOST_COMMON = ['setuptools<81']
VIDEO = ['mmaction2>=1.1,<2.0', 'decord>=0.6.0', 'av']
SEG = ['mmsegmentation>=1.1,<2.0', 'ftfy', 'regex']
CLS = ['mmpretrain>=1.0,<2.0']

setup(
    name='morphmlp_mm',
    version=read_version(),
    description='MorphMLP image and video backbones for mmpretrain, '
    'mmaction2 and mmsegmentation',
    long_description=readme() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['morphmlp_mm', 'morphmlp_mm.*']),
    python_requires='>=3.8',
    install_requires=[
        'torch>=1.13',
        'mmengine>=0.8.0,<1.0',
        'numpy',
    ],
    extras_require={
        # mmaction2 1.2 and mmseg 1.2 reject mmcv>=2.2 at import time.
        'mmcv-lite': MMCV_LITE,
        'video': HOST_COMMON + VIDEO,
        'seg': HOST_COMMON + SEG,
        'cls': HOST_COMMON + CLS,
        'all': MMCV_LITE + HOST_COMMON + VIDEO + SEG + CLS + ['matplotlib'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
