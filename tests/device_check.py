"""A dispatch mode for tests that run on the ``meta`` device as a stand-in
for a GPU: ``meta`` runs every op's shape logic, but lets some ops take a
CPU tensor alongside meta ones (a matrix product with a CPU operand, for
one), where a GPU would raise."""
from collections import Counter
from typing import Set

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

#: Ops that move data between devices by design.
_TRANSFERS = (torch.ops.aten.copy_.default, torch.ops.aten._to_copy.default)


class OneDevicePerOp(TorchDispatchMode):
    """Fails every aten op whose tensor arguments lie on more than one
    device, as a GPU would. 0-dim CPU tensors are allowed anywhere (PyTorch
    takes them as scalars), and so are copies between devices.

    ``ops`` counts the ops checked, so that a test can see that the mode
    was active where it expected (for instance in the backward pass).
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.devices: Set[torch.device] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _TRANSFERS:
            devices = {
                t.device for t in tree_leaves((args, kwargs))
                if isinstance(t, torch.Tensor)
                and not (t.device.type == 'cpu' and t.dim() == 0)}
            if len(devices) > 1:
                names = sorted(map(str, devices))
                raise AssertionError(f'{func} takes tensors on {names}')
            self.ops += 1
            self.devices |= devices
        return func(*args, **kwargs)


#: Ops that launch no kernel on a GPU: views and bare allocations.
_NO_KERNEL = ('empty', 'empty_like', 'empty_strided', 'new_empty',
              'new_empty_strided', 'alias', 'detach', 'lift_fresh')


class KernelCount(TorchDispatchMode):
    """Counts the aten ops that launch a kernel on a GPU (all but views and
    bare allocations): on ``meta``, a proxy without a GPU for the launches
    of a step, whose count sets the pace where the CPU that queues them is
    slower than the GPU (small batches). ``counts`` has them by op name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not func.is_view and name not in _NO_KERNEL:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))
