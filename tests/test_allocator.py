"""The opt-in allocator setting: accepted by glibc, and numbers unchanged under it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import torch
    from pyg_hipts.allocator import keep_freed_memory
    from pyg_hipts.nn import HipNN

    torch.manual_seed(0)
    options = dict(n_features=8, n_sensitivities=4, dist_soft_max=2.5, dist_hard_max=3.0, l_max=1)
    model = HipNN([1, 8], **options).double()
    pos = torch.rand(30, 3, dtype=torch.float64) * 4
    z = torch.tensor([8, 1, 1] * 10)
    before = model.predict(z, pos)
    assert keep_freed_memory()
    big = torch.ones(64, 2**20)  # 256 MiB: from the heap now, not from mmap
    del big
    after = model.predict(z, pos)
    assert torch.equal(before.energy, after.energy) and torch.equal(before.forces, after.forces)
    print("ok")
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keep_freed_memory_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
