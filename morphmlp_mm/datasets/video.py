"""Video dataset and transform additions for mmaction2.

* :class:`RobustVideoDataset`: mmaction2's ``VideoDataset`` plus clear errors
  for a wrong ``data_root`` / annotation file and a configurable skip (with a
  warning) of videos that cannot be read during training.
* :class:`RobustRepeatAugDataset`: the same for mmaction2's
  ``RepeatAugDataset`` (one decode, several augmented clips; decord only),
  the training set of the recognition configs.
* :class:`ShuffleFrames`: shuffles the sampled frame order of each clip, the
  control experiment for temporal modelling.
* :class:`ReverseFrames`: plays a clip backwards and swaps its label with the
  label of the reverse action ("left to right" <-> "right to left").
* :class:`PyAVInitCounted`: mmaction2's ``PyAVInit`` that counts the frames
  when the container does not store the count (WebM: every SSV2 video).
"""
import io
import os.path as osp
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
from mmaction.datasets import RepeatAugDataset, VideoDataset
from mmaction.datasets.transforms import PyAVInit
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log


class _RobustVideos:
    """What :class:`RobustVideoDataset` and :class:`RobustRepeatAugDataset`
    add to the mmaction2 dataset they are mixed into (first in the bases):
    clear errors for wrong paths and a skip of unreadable videos.

    Args:
        skip_corrupt (bool): In training, a video that is missing or cannot be
            decoded is skipped with a warning and mmengine's dataset draws
            another sample (at most ``max_refetch`` times). In test mode, or
            when False, such a video raises ``RuntimeError`` naming the file.
            Defaults to True.
        **kwargs: The arguments of mmaction2's ``VideoDataset``.
    """

    def __init__(self, *args, skip_corrupt: bool = True, **kwargs) -> None:
        self.skip_corrupt = skip_corrupt
        self.skipped: Dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'ann_file {self.ann_file!r} does not exist (data_root='
                f'{self.data_root!r}). Set data_root / ann_file to your '
                'dataset, see docs/data_preparation.md')
        prefix = self.data_prefix.get('video', '')
        if prefix and not osp.isdir(prefix):
            raise FileNotFoundError(
                f"data_prefix['video']={prefix!r} is not a directory "
                f'(data_root={self.data_root!r}). Point data_root / '
                'data_prefix at the folder that holds the videos')
        return super().load_data_list()

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except Exception as err:  # decoders raise many unrelated types
            filename = self.get_data_info(idx).get('filename', '?')
            reason = f'{type(err).__name__}: {err}'
            if not osp.isfile(filename):
                reason = 'file does not exist'
            if self.test_mode or not self.skip_corrupt:
                raise RuntimeError(
                    f'cannot read video {filename!r} (sample {idx}): '
                    f'{reason}. Replace or remove it from the annotation '
                    'file; in training, skip_corrupt=True skips such videos '
                    'with a warning') from err
            if filename not in self.skipped:
                print_log(
                    f'skipping unreadable video {filename!r}: {reason}',
                    logger='current', level=30)
            self.skipped[filename] = reason
            return None

    def __getitem__(self, idx: int) -> dict:
        """mmengine's ``__getitem__``, with a clear error when every redraw
        hits an unreadable video (mmengine raises a bare ``Exception``
        ``Cannot find valid image after N``)."""
        try:
            return super().__getitem__(idx)
        except RuntimeError:
            raise
        except Exception as err:
            if not str(err).startswith('Cannot find valid'):
                raise
            examples = '; '.join(
                f'{name!r}: {why}'
                for name, why in list(self.skipped.items())[:3])
            raise RuntimeError(
                f'no readable video found in {self.max_refetch + 1} draws '
                f'starting at sample {idx}: {len(self.skipped)} of '
                f'{len(self)} videos were unreadable so far ({examples}). '
                'Check data_root / data_prefix and the video files, or lower '
                'max_refetch to fail sooner') from err


class RobustVideoDataset(_RobustVideos, VideoDataset):
    """mmaction2's ``VideoDataset`` that fails clearly and can skip
    unreadable videos (see :class:`_RobustVideos` for ``skip_corrupt``)."""


class RobustRepeatAugDataset(_RobustVideos, RepeatAugDataset):
    """mmaction2's ``RepeatAugDataset`` (each video decoded once and
    augmented ``num_repeats`` times; decord only) that fails clearly and can
    skip unreadable videos (see :class:`_RobustVideos` for
    ``skip_corrupt``): a video decord cannot open is skipped with a warning
    in training, as :class:`RobustVideoDataset` does."""


def _clip_len(results: dict, n: int, who: str, what: str) -> int:
    """``clip_len`` of ``results``, checked to cut ``n`` frames into whole
    clips (the clip order transforms permute within each clip)."""
    clip_len = int(results.get('clip_len', n))
    if clip_len <= 0 or n % clip_len != 0:
        unit = 'indices' if what == 'frame_inds' else 'frames'
        raise ValueError(f'{who} needs {what} in whole clips of clip_len='
                         f'{clip_len}, got {n} {unit}')
    return clip_len


class ShuffleFrames(BaseTransform):
    """Shuffle the order of the sampled frames within each clip.

    Put it right after the frame sampler (``SampleFrames`` /
    ``UniformSample``). Each clip of ``clip_len`` frames is permuted on its
    own, so the set of frames is unchanged and only their order is lost.

    Args:
        seed (int, optional): Seed of a private generator; None uses numpy's
            global state (different in each dataloader worker).
    """

    def __init__(self, seed: Optional[int] = None) -> None:
        self.rng = np.random.default_rng(seed) if seed is not None else None

    def transform(self, results: dict) -> dict:
        inds = np.asarray(results['frame_inds'])
        clip_len = _clip_len(results, inds.size, 'ShuffleFrames', 'frame_inds')
        clips = inds.reshape(-1, clip_len).copy()
        rng = self.rng or np.random
        for clip in clips:
            rng.shuffle(clip)
        results['frame_inds'] = clips.reshape(inds.shape)
        return results


class ReverseFrames(BaseTransform):
    """Play clips backwards and swap the label with its reverse action.

    Time reversal is a label-preserving augmentation only for actions that
    look the same backwards; for actions that come in reverse pairs
    ("moving something from left to right" / "... from right to left",
    "appearing" / "disappearing") a reversed clip is an example of the other
    class of its pair. This transform reverses the sampled frame order of
    the whole clip with probability ``prob`` and relabels it accordingly;
    clips whose label is in neither list are never reversed. It is the
    temporal counterpart of the horizontal flip with label swap used for
    Something-Something V2, and only makes sense when, as in the synthetic
    motion dataset (``tools/data/make_motion_dataset.py``), the reverse of a
    clip is distributed like the clips of the paired class.

    Put it after the decoder (it reverses the decoded ``imgs`` of each
    clip; decoders read frames in increasing order, and reversed
    ``frame_inds`` make decord seek back for every frame), or before it (it
    then reverses ``frame_inds``).

    Args:
        label_pairs (Sequence[Sequence[int]]): Pairs ``(a, b)`` of labels
            whose actions are each other's reverse.
        symmetric_labels (Iterable[int]): Labels whose actions look alike
            backwards (reversed, label kept). Defaults to none.
        prob (float): Probability of reversing an eligible clip. Defaults to
            0.5.
        seed (int, optional): Seed of a private generator; None uses numpy's
            global state (different in each dataloader worker).
    """

    def __init__(self,
                 label_pairs: Sequence[Sequence[int]],
                 symmetric_labels: Iterable[int] = (),
                 prob: float = 0.5,
                 seed: Optional[int] = None) -> None:
        if not 0. <= float(prob) <= 1.:
            raise ValueError(f'ReverseFrames: prob must be in [0, 1], got '
                             f'{prob!r}')
        self.swap: Dict[int, int] = {}
        for pair in label_pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(
                    'ReverseFrames: label_pairs must hold pairs of two '
                    f'different labels, got {pair!r} in {label_pairs!r}')
            a, b = (int(v) for v in pair)
            for label in (a, b):
                if label in self.swap:
                    raise ValueError(
                        f'ReverseFrames: label {label} appears in more than '
                        f'one pair of label_pairs={label_pairs!r}')
            self.swap[a], self.swap[b] = b, a
        for label in symmetric_labels:
            label = int(label)
            if label in self.swap:
                raise ValueError(
                    f'ReverseFrames: label {label} is both in label_pairs '
                    'and in symmetric_labels')
            self.swap[label] = label
        self.prob = float(prob)
        self.rng = np.random.default_rng(seed) if seed is not None else None

    def transform(self, results: dict) -> dict:
        label = results['label']
        key = int(np.asarray(label).reshape(-1)[0])
        if key not in self.swap:
            return results
        rng = self.rng or np.random
        if rng.random() >= self.prob:
            return results
        key_name = 'imgs' if 'imgs' in results else 'frame_inds'
        frames = results[key_name]
        n = len(frames)
        clip_len = _clip_len(results, n, 'ReverseFrames', key_name)
        order = np.arange(n).reshape(-1, clip_len)[:, ::-1].reshape(-1)
        if key_name == 'imgs':
            results['imgs'] = [frames[i] for i in order]
        else:
            results['frame_inds'] = np.asarray(frames)[order].reshape(
                np.shape(frames))
        results['label'] = type(label)(self.swap[key]) if np.ndim(
            label) == 0 else np.full_like(label, self.swap[key])
        return results


class PyAVInitCounted(PyAVInit):
    """``PyAVInit`` that also works for WebM (Something-Something V2).

    WebM/Matroska headers carry no frame count, so mmaction2's ``PyAVInit``
    reports ``total_frames = 0`` and every sampler then draws frame 0 (or a
    training dataset skips every video). When the header count is 0 we count
    the packets of the video stream on a second handle of the same bytes
    (demuxing only, no decoding); the reader handed to ``PyAVDecode`` is left
    at the start. Same arguments as ``PyAVInit``.
    """

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        if results['total_frames'] == 0:
            import av
            data = self.file_client.get(results['filename'])
            with av.open(io.BytesIO(data)) as container:
                stream = container.streams.video[0]
                results['total_frames'] = sum(
                    1 for packet in container.demux(stream)
                    if packet.size)
        return results
