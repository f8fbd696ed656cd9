"""A class curriculum for mmengine's epoch-based training.

:class:`ClassCurriculumSampler` is mmengine's ``DefaultSampler`` with one
addition: during the first epochs it draws only clips (or images) of some
classes. The epoch length stays the same in every stage (the subset is
repeated to fill it), so iteration-based LR schedules, logging and ETA keep
their meaning.

The synthetic motion job uses it for a whole first run (stage 1,
``configs/demo/motion_morphmlp3d_turning.py``): its tiny model learns
"turning clockwise" vs "counter-clockwise" within an epoch on those clips
alone, and never (chance after 15 epochs) with all ten classes mixed from
the start. Switching to all classes inside the same run (a stage, then the
whole dataset) made that model collapse, so the job starts a second run
from stage 1's backbone instead; the multi-stage form is there for models
that take the switch.
"""
from typing import Dict, Iterator, List, Optional, Sequence, Sized, Tuple

import torch
from mmengine.dataset import DefaultSampler


def _label_of(info: dict, index: int) -> int:
    """The class label of a dataset item's info dict (mmaction ``label``,
    mmpretrain ``gt_label``)."""
    for key in ('label', 'gt_label'):
        if key in info:
            label = info[key]
            if isinstance(label, torch.Tensor):
                label = label.tolist()
            if isinstance(label, (list, tuple)):
                if len(label) != 1:
                    raise ValueError(
                        f'ClassCurriculumSampler needs one label per item; '
                        f'item {index} has {key}={label!r}')
                label = label[0]
            return int(label)
    raise ValueError(
        f'ClassCurriculumSampler needs a class label per item; the info of '
        f'item {index} has neither "label" nor "gt_label" (keys: '
        f'{sorted(info)})')


class ClassCurriculumSampler(DefaultSampler):
    """``DefaultSampler`` that draws only some classes in the first epochs.

    Args:
        dataset (Sized): The dataset; ``get_data_info(i)`` must hold the
            label (``label`` or ``gt_label``).
        curriculum (list[dict]): Stages in order, each
            ``dict(epochs=int, labels=[int, ...], others=float)``: for that
            many epochs the items of these labels fill a fraction
            ``1 - others`` of each epoch and the other items the fraction
            ``others`` (optional, default 0: only these labels), each part
            shuffled and repeated to its length. (On the motion job, 10%
            of the other classes did not prevent the collapse at the switch
            to the whole dataset; see the module docstring.) After the
            last stage the whole dataset is used, exactly as
            ``DefaultSampler`` does.
        shuffle (bool): Shuffle the indices. Defaults to True.
        seed (int, optional): Seed of the shuffle, identical in every
            process. Defaults to None (synchronised random seed).
        round_up (bool): As in ``DefaultSampler``. Defaults to True.

    Example::

        sampler=dict(type='ClassCurriculumSampler', shuffle=True,
                     curriculum=[dict(epochs=2, labels=[4, 5])])
    """

    def __init__(self,
                 dataset: Sized,
                 curriculum: Sequence[Dict],
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed,
                         round_up=round_up)
        self.stages = self._check_curriculum(curriculum)
        labels = [_label_of(dataset.get_data_info(i), i)
                  for i in range(len(dataset))]
        present = sorted(set(labels))
        # per stage: (indices of its labels, indices of the other labels)
        self._stage_indices: List[Tuple[List[int], List[int]]] = []
        for k, stage in enumerate(self.stages):
            missing = sorted(set(stage['labels']) - set(present))
            if missing:
                raise ValueError(
                    f'curriculum[{k}].labels has labels {missing} that no '
                    f'item of the dataset carries; labels present: '
                    f'{present}')
            wanted = set(stage['labels'])
            inside = [i for i, label in enumerate(labels) if label in wanted]
            outside = [i for i, label in enumerate(labels)
                       if label not in wanted]
            if stage['others'] > 0 and not outside:
                raise ValueError(
                    f'curriculum[{k}].others={stage["others"]} but every '
                    f'item of the dataset has one of its labels')
            self._stage_indices.append((inside, outside))

    @staticmethod
    def _check_curriculum(curriculum: Sequence[Dict]) -> List[Dict]:
        if isinstance(curriculum, dict) or not isinstance(
                curriculum, (list, tuple)):
            raise TypeError(
                f'curriculum must be a list of dict(epochs=..., labels=...), '
                f'got {curriculum!r}')
        stages = []
        for k, stage in enumerate(curriculum):
            if not isinstance(stage, dict) or not {'epochs', 'labels'} <= set(
                    stage) <= {'epochs', 'labels', 'others'}:
                raise ValueError(
                    f'curriculum[{k}] must be dict(epochs=int, '
                    f'labels=[int, ...], others=float), got {stage!r}')
            epochs, labels = stage['epochs'], stage['labels']
            others = stage.get('others', 0.)
            if isinstance(others, bool) or not isinstance(
                    others, (int, float)) or not 0 <= others < 1:
                raise ValueError(f'curriculum[{k}].others must be a fraction '
                                 f'in [0, 1), got {others!r}')
            if isinstance(epochs, bool) or not isinstance(epochs,
                                                          int) or epochs < 1:
                raise ValueError(f'curriculum[{k}].epochs must be an int >= '
                                 f'1, got {epochs!r}')
            if not isinstance(labels, (list, tuple)) or not labels or any(
                    isinstance(v, bool) or not isinstance(v, int)
                    for v in labels):
                raise ValueError(
                    f'curriculum[{k}].labels must be a non-empty list of '
                    f'int class labels, got {labels!r}')
            stages.append(dict(epochs=epochs, labels=list(labels),
                               others=float(others)))
        return stages

    def stage_at(self, epoch: int) -> Optional[int]:
        """Index of the curriculum stage of ``epoch`` (None: whole dataset)."""
        end = 0
        for k, stage in enumerate(self.stages):
            end += stage['epochs']
            if epoch < end:
                return k
        return None

    def __iter__(self) -> Iterator[int]:
        stage = self.stage_at(self.epoch)
        if stage is None:
            return super().__iter__()
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        n = len(self.dataset)
        n_others = round(self.stages[stage]['others'] * n)
        parts = []
        for part, length in zip(self._stage_indices[stage],
                                (n - n_others, n_others)):
            if not length:
                continue
            part = torch.tensor(part)
            if self.shuffle:
                part = part[torch.randperm(len(part), generator=g)]
            parts.append(part.repeat(-(-length // len(part)))[:length])
        indices = torch.cat(parts)
        if self.shuffle and len(parts) > 1:
            indices = indices[torch.randperm(n, generator=g)]
        # a full epoch's worth, then round-up and rank slicing exactly as
        # DefaultSampler does for the whole dataset
        indices = indices.tolist()
        if self.round_up:
            indices = (indices * int(self.total_size / len(indices) + 1)
                       )[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.world_size])


def register_samplers() -> List[str]:
    """Register the samplers in mmengine's root ``DATA_SAMPLERS`` (every
    host's registry falls back to it); returns their names."""
    from mmengine.registry import DATA_SAMPLERS
    if DATA_SAMPLERS.module_dict.get(
            ClassCurriculumSampler.__name__) is not ClassCurriculumSampler:
        DATA_SAMPLERS.register_module(module=ClassCurriculumSampler)
    return [ClassCurriculumSampler.__name__]


__all__ = ['ClassCurriculumSampler', 'register_samplers']
