"""Host–device synchronisations of a training step, counted on the CPU.

On a GPU every read of a device value by the host (``aten._local_scalar_dense``: ``int()``,
``float()``, ``bool()``, ``.item()``) and every operator whose output size depends on the data
(``nonzero``, ``masked_select``, ``unique``) waits for the device. A dispatch mode sees the same
operators on the CPU, so the count is tested here without a GPU. The step of HIP-NN-TS (l = 2)
needs: the number of structures, the largest structure (open or cell-list search), the pair list
(largest structure, ``nonzero`` of the pairs within the cutoff, the largest neighbour count and
the canonical half), two consistency checks of the pair list, and one check each for the inputs,
the species, close atoms, the sensitivity range and finite energies.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch_geometric.data import Batch

from pyg_hipts.data import embedded_dataset_path, read_npz
from pyg_hipts.nn import HipNN

READS = {"aten._local_scalar_dense.default"}
DATA_DEPENDENT = {
    "aten.nonzero.default",
    "aten.masked_select.default",
    "aten._unique2.default",
    "aten.unique_dim.default",
}
STEP_READS, STEP_DATA_DEPENDENT = 11, 2


class SyncCounter(TorchDispatchMode):
    """Counts the operators that synchronise with a device (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        indices = args[1] if name == "aten.index.Tensor" else ()
        if name in READS | DATA_DEPENDENT or any(i is not None and i.dtype == torch.bool for i in indices):
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def _step(model: HipNN, batch: Batch) -> None:
    out = model.predict(batch.z, batch.pos, batch.batch, create_graph=True)
    loss = (out.energy.flatten() - batch.energy.float()).square().mean() + (
        out.forces - batch.forces
    ).square().mean()
    loss.backward()


def test_training_step_synchronisations() -> None:
    frames = read_npz(embedded_dataset_path("ethanol"))
    batch = Batch.from_data_list([frames[i] for i in range(16)])
    model = HipNN(
        species=[1, 6, 8], n_features=16, n_sensitivities=8, dist_soft_max=4.5, dist_hard_max=5.0, l_max=2
    )
    _step(model, batch)  # first call: one-time work
    with SyncCounter() as counter:
        _step(model, batch)
    reads = sum(counter.counts[name] for name in READS)
    data_dependent = sum(counter.counts[name] for name in DATA_DEPENDENT)
    assert (reads, data_dependent) == (STEP_READS, STEP_DATA_DEPENDENT), dict(counter.counts)
    assert set(counter.counts) <= READS | DATA_DEPENDENT, dict(counter.counts)
