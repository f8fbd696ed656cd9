"""ClassCurriculumSampler: the class curriculum of the motion job."""
from collections import Counter

import pytest
import torch
from mmengine.dataset import DefaultSampler

import morphmlp_mm  # noqa: F401  (registers the sampler)
from morphmlp_mm.engine.samplers import ClassCurriculumSampler


class _Labels:
    """A dataset stand-in: only ``len`` and ``get_data_info`` are used."""

    def __init__(self, labels, key='label'):
        self.labels = list(labels)
        self.key = key

    def __len__(self):
        return len(self.labels)

    def get_data_info(self, i):
        return {'filename': f'{i}.mp4', self.key: self.labels[i]}


LABELS = [i % 5 for i in range(23)]  # 5 classes, uneven counts


def test_stage_draws_only_its_labels_and_keeps_the_epoch_length():
    ds = _Labels(LABELS)
    sampler = ClassCurriculumSampler(
        ds, curriculum=[dict(epochs=2, labels=[1, 3]),
                        dict(epochs=1, labels=[4])], seed=0)
    for epoch, allowed in [(0, {1, 3}), (1, {1, 3}), (2, {4})]:
        sampler.set_epoch(epoch)
        idx = list(sampler)
        assert len(idx) == len(sampler) == len(ds)
        assert {LABELS[i] for i in idx} == allowed
        # the subset is repeated evenly: counts differ by at most one round
        counts = Counter(idx)
        assert max(counts.values()) - min(counts.values()) <= 1
        assert set(counts) == {i for i, v in enumerate(LABELS) if v in allowed}
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first  # reshuffled every epoch


def test_others_fill_their_fraction_of_a_stage():
    ds = _Labels(LABELS)
    sampler = ClassCurriculumSampler(
        ds, curriculum=[dict(epochs=1, labels=[1], others=0.25)], seed=0)
    idx = list(sampler)
    assert len(idx) == len(ds)
    inside = [i for i in idx if LABELS[i] == 1]
    assert len(idx) - len(inside) == round(0.25 * len(ds))
    assert set(inside) == {i for i, v in enumerate(LABELS) if v == 1}
    others = [i for i in idx if LABELS[i] != 1]
    assert len(set(others)) == len(others)  # a shuffled draw, no repeats
    # mixed, not the subset first and the others after it
    assert [LABELS[i] == 1 for i in idx] != sorted(
        [LABELS[i] == 1 for i in idx], reverse=True)


def test_after_the_curriculum_it_is_the_default_sampler():
    ds = _Labels(LABELS)
    ours = ClassCurriculumSampler(ds, curriculum=[dict(epochs=2, labels=[0])],
                                  seed=7)
    ref = DefaultSampler(ds, seed=7)
    for epoch in (2, 3, 10):
        ours.set_epoch(epoch)
        ref.set_epoch(epoch)
        assert list(ours) == list(ref)
    assert ours.stage_at(1) == 0 and ours.stage_at(2) is None


def test_ranks_split_a_stage_without_overlap(monkeypatch):
    ds = _Labels(LABELS, key='gt_label')
    parts = []
    for rank in range(2):
        monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info',
                            lambda rank=rank: (rank, 2))
        s = ClassCurriculumSampler(ds, curriculum=[dict(epochs=1,
                                                        labels=[2, 4])],
                                   seed=3)
        s.set_epoch(0)
        parts.append(list(s))
        assert len(parts[-1]) == len(s) == 12
    merged = parts[0] + parts[1]
    assert {LABELS[i] for i in merged} == {2, 4}
    # together the ranks see the same multiset as one process would
    monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info',
                        lambda: (0, 1))
    single = ClassCurriculumSampler(ds, curriculum=[dict(epochs=1,
                                                         labels=[2, 4])],
                                    seed=3)
    single.set_epoch(0)
    one = list(single)
    assert Counter(merged) == Counter(one + one[:1])  # + 1 round-up item


def test_tensor_and_list_labels_are_read():
    ds = _Labels([torch.tensor([v]) for v in LABELS], key='gt_label')
    s = ClassCurriculumSampler(ds, curriculum=[dict(epochs=1, labels=[0])],
                               shuffle=False)
    assert {LABELS[i] for i in s} == {0}


@pytest.mark.parametrize('curriculum, match', [
    (dict(epochs=1, labels=[0]), 'must be a list'),
    ([dict(epochs=0, labels=[0])], r'curriculum\[0\]\.epochs must be an int'),
    ([dict(epochs=1, labels=[])], r'curriculum\[0\]\.labels must be'),
    ([dict(epochs=1, labels=[0]), dict(epochs=1)], r'curriculum\[1\] must'),
    ([dict(epochs=1, labels=[0, 9])], r'labels \[9\] that no item'),
    ([dict(epochs=1, labels=[0], others=1.0)], r'\.others must be a fraction'),
    ([dict(epochs=1, labels=[0, 1, 2, 3, 4], others=0.1)], 'every item'),
    ([dict(epochs=1, labels=[0], other=0.1)], r'curriculum\[0\] must'),
])
def test_bad_curriculum_is_named(curriculum, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ClassCurriculumSampler(_Labels(LABELS), curriculum=curriculum)


def test_items_without_a_label_are_reported():
    class NoLabel(_Labels):
        def get_data_info(self, i):
            return {'filename': 'x.mp4'}

    with pytest.raises(ValueError, match='neither "label" nor "gt_label"'):
        ClassCurriculumSampler(NoLabel(LABELS),
                               curriculum=[dict(epochs=1, labels=[0])])


def test_built_from_a_config_in_every_host_scope():
    from mmengine.registry import DATA_SAMPLERS, DefaultScope
    cfg = dict(type='ClassCurriculumSampler', dataset=_Labels(LABELS),
               curriculum=[dict(epochs=1, labels=[0])], seed=0)
    for scope in ('mmaction', 'mmpretrain', 'mmseg'):
        pytest.importorskip(scope)
        with DefaultScope.overwrite_default_scope(scope):
            registry = __import__(f'{scope}.registry',
                                  fromlist=['DATA_SAMPLERS']).DATA_SAMPLERS
            assert isinstance(registry.build(cfg), ClassCurriculumSampler)
    assert isinstance(DATA_SAMPLERS.build(cfg), ClassCurriculumSampler)
