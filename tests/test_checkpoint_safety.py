"""Loading potentials executes no pickled code, and bad files end in errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts import load_potential, save_potential
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import CheckpointError, build_potential


class _Payload:
    """Unpickling this object would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _small() -> HipNN:
    return HipNN([1, 6, 8], n_features=4, n_sensitivities=4, n_interaction_layers=1, n_atom_layers=1)


def test_a_crafted_checkpoint_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    model = _small()
    crafted = {"potential": model.spec(), "state_dict": model.state_dict(), "extra": _Payload(marker)}
    path = tmp_path / "crafted.ckpt"
    torch.save(crafted, path)
    with pytest.raises(CheckpointError, match=r"crafted\.ckpt: refused to load: .*could run code"):
        load_potential(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "class_path",
    ["subprocess.Popen", "os.system", "builtins.eval", "pyg_hipts.data.read_dataset", "torch.nn.Linear"],
)
def test_a_spec_naming_anything_but_a_trusted_potential_is_refused(tmp_path: Path, class_path: str) -> None:
    path = tmp_path / "spec.ckpt"
    torch.save(
        {"potential": {"class_path": class_path, "init_args": {"args": ["touch", "x"]}}, "state_dict": {}},
        path,
    )
    with pytest.raises(
        CheckpointError, match=r"spec\.ckpt: cannot rebuild the potential: .*(trusted|subclass)"
    ):
        load_potential(path)


def test_a_nested_untrusted_class_is_refused_before_anything_is_built() -> None:
    spec = _small().spec()
    spec["init_args"]["n_features"] = {"class_path": "subprocess.Popen", "init_args": {"args": ["true"]}}
    with pytest.raises(ValueError, match="outside the trusted packages"):
        build_potential(spec)


def test_truncated_foreign_old_and_missing_files_name_the_file(tmp_path: Path) -> None:
    good = save_potential(_small(), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: not a readable checkpoint"):
        load_potential(truncated)
    foreign = tmp_path / "frames.npz"
    np.savez(foreign, coords=np.zeros((2, 3, 3)))
    with pytest.raises(CheckpointError, match=r"frames\.npz: not a readable checkpoint"):
        load_potential(foreign)
    old = tmp_path / "old.ckpt"
    torch.save({"hyper_parameters": {"n_features": 4}, "state_dict": {}}, old)
    with pytest.raises(CheckpointError, match=r"old\.ckpt: no potential in this file .*older layout"):
        load_potential(old)
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt: no such checkpoint"):
        load_potential(tmp_path / "missing.ckpt")


def test_weights_that_do_not_fit_are_an_error_naming_the_file(tmp_path: Path) -> None:
    model = _small()
    state = model.state_dict()
    state.pop(next(iter(state)))
    path = tmp_path / "partial.pt"
    torch.save({"potential": model.spec(), "state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"partial\.pt: the weights do not fit the potential"):
        load_potential(path)


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = save_potential(_small(), tmp_path / "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert load_potential(path).species == [1, 6, 8]


def test_every_loader_passes_its_trusted_packages_on(tmp_path: Path) -> None:
    from pyg_hipts.calculators import HipCalculator
    from pyg_hipts.potentials import Ensemble

    paths = [save_potential(_small(), tmp_path / f"member{i}.pt") for i in range(2)]
    (tmp_path / "ensemble.yaml").write_text("checkpoints: [member0.pt, member1.pt]\n")
    only_pyg = ("torch_geometric",)
    loaders = {
        "calculator": lambda trusted: HipCalculator.from_checkpoint(paths[0], trusted=trusted),
        "calculator ensemble": lambda trusted: HipCalculator.from_ensemble(
            tmp_path / "ensemble.yaml", trusted=trusted
        ),
        "ensemble": lambda trusted: Ensemble.from_file(tmp_path / "ensemble.yaml", trusted=trusted),
    }
    for name, load in loaders.items():
        assert load(("pyg_hipts",)) is not None, name
        refusal = r"member0\.pt: .*outside the trusted packages \['torch_geometric'\]"
        with pytest.raises(CheckpointError, match=refusal):
            load(only_pyg)
