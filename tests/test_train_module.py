"""PotentialModule (loss and metric numbers, reference-energy fit, EMA, a short fit that learns) and the
data module's splits and reader options."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from pyg_hipts.data import Units, count_species, embedded_dataset_path, fit_reference_energies, save_split
from pyg_hipts.nn import HipNN, HipOutput
from pyg_hipts.train import AtomsDataModule, PotentialModule
from pyg_hipts.train.datamodule import resolve_data_path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ASPIRIN = str(SHARED_DATA / "rmd17" / "rmd17_aspirin_{}_01.npz")
TINY_MODEL = dict(n_features=8, n_sensitivities=6, n_interaction_layers=1, n_atom_layers=1, l_max=1)
QUIET = dict(
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and far faster than on two when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_module(**options) -> PotentialModule:
    """A small HIP-NN-TS module; ``options`` override the model and training defaults."""
    return PotentialModule(**{**TINY_MODEL, "force_weight": 10.0, "lr": 5e-3, **options})


def ethanol_datamodule(**options) -> AtomsDataModule:
    """The embedded ethanol frames: 40 train, 20 validation, 20 test by default."""
    defaults = dict(train_file="embedded:ethanol", n_train=40, n_val=20, n_test=20, batch_size=10)
    return AtomsDataModule(**{**defaults, **options})


class LinearStub(nn.Module):
    """``E_b = Σ_{i ∈ b} w · r_i`` and ``F_i = −w``: errors of a hand-made batch are known exactly."""

    species = [1, 8]

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 2.0, 0.0]))

    def predict_data(self, batch: Batch, *, forces: bool = True, create_graph: bool = False) -> HipOutput:
        atom = (batch.pos @ self.w).unsqueeze(1)
        energy = scatter(atom, batch.batch, dim=0, dim_size=batch.num_graphs)
        force = -self.w.expand_as(batch.pos) if forces else None
        return HipOutput(energy, force, atom, energy, torch.zeros_like(energy))

    def regularization_parameters(self) -> list[torch.Tensor]:
        return [self.w]


def structure_a() -> Data:
    """Two atoms; predicted E = 1 (reference 3), forces off by (−1, 0, 0) on the first atom."""
    return Data(
        z=torch.tensor([1, 8]),
        pos=torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        energy=torch.tensor([3.0]),
        forces=torch.tensor([[0.0, -2.0, 0.0], [-1.0, -2.0, 0.0]]),
        natoms=torch.tensor([2]),
    )


def structure_b() -> Data:
    """One atom; predicted E = 2 (reference 2.5), forces off by (0, 0, −1)."""
    return Data(
        z=torch.tensor([1]),
        pos=torch.tensor([[0.0, 1.0, 0.0]]),
        energy=torch.tensor([2.5]),
        forces=torch.tensor([[-1.0, -2.0, 1.0]]),
        natoms=torch.tensor([1]),
    )


def stub_module(**options) -> PotentialModule:
    module = PotentialModule(species=LinearStub.species, **{**TINY_MODEL, **options})
    module.model = LinearStub()
    return module


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize(
    ("loss", "energy_term", "force_term"),
    [("mse", 4.25 / 2, 2 / 9), ("mae", 2.5 / 2, 2 / 9), ("rmse", math.sqrt(4.25 / 2), math.sqrt(2 / 9))],
)
def test_training_loss_on_hand_made_batch(loss: str, energy_term: float, force_term: float) -> None:
    # energy errors (−2, −0.5); force errors: two components of −1 among 9
    module = stub_module(loss=loss, energy_weight=2.0, force_weight=3.0, l2_weight=0.1)
    value = module.training_step(Batch.from_data_list([structure_a(), structure_b()]), 0)
    expected = 2.0 * energy_term + 3.0 * force_term + 0.1 * (1.0 + 4.0)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert value.requires_grad


def test_epoch_metrics_pool_all_errors() -> None:
    """Batches of 2 and 1 structures: the epoch MAE is over all 3 errors, not a mean of batch means."""
    module = stub_module(loss="mae", energy_weight=2.0, force_weight=3.0)
    module.validation_step(Batch.from_data_list([structure_a(), structure_b()]), 0)
    module.validation_step(Batch.from_data_list([structure_b()]), 1)
    values = {name: value.item() for name, value in module.epoch_metrics("val").items()}
    # energy errors (−2, −0.5, −0.5); per atom (−1, −0.5, −0.5); force components: 3 of 12 are −1
    assert values["energy_mae"] == pytest.approx(1.0)
    assert values["energy_rmse"] == pytest.approx(math.sqrt(4.5 / 3))
    assert values["energy_per_atom_mae"] == pytest.approx(2.0 / 3)
    assert values["energy_per_atom_rmse"] == pytest.approx(math.sqrt(1.5 / 3))
    assert values["force_mae"] == pytest.approx(3 / 12)
    assert values["force_rmse"] == pytest.approx(math.sqrt(3 / 12))
    assert values["loss"] == pytest.approx(2.0 * 1.0 + 3.0 * 3 / 12)


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="loss"):
        PotentialModule(loss="huber")
    with pytest.raises(ValueError, match="ema_decay"):
        PotentialModule(ema_decay=1.0)


def test_reference_energies_are_fitted_on_the_training_set() -> None:
    module, datamodule = tiny_module(), ethanol_datamodule()
    trainer = Trainer(max_epochs=1, limit_train_batches=0, limit_val_batches=0, **QUIET)
    trainer.fit(module, datamodule)
    assert module.hparams.species == [1, 6, 8]
    e0 = fit_reference_energies(datamodule.train_dataset, module.model.species)
    batch = Batch.from_data_list(list(datamodule.datasets["val"]))
    level0 = module.model.predict_data(batch, forces=False).level_energies[:, 0].double()
    expected = count_species(batch.z, batch.batch, module.model.species).double() @ e0
    torch.testing.assert_close(level0, expected, rtol=1e-6, atol=0.0)
    # one composition: Σ_s n_s E0_s is the mean training energy
    assert expected[0].item() == pytest.approx(
        datamodule.train_dataset.energy.double().mean().item(), rel=1e-9
    )


def test_ema_update_rule_and_storage() -> None:
    module = tiny_module(species=[1, 6, 8], ema_decay=0.75)
    assert module.eval_model is module.ema_model
    assert not any(p.requires_grad for p in module.ema_model.parameters())
    assert any(key.startswith("ema_model.") for key in module.state_dict())
    with torch.no_grad():
        for current, averaged in zip(module.model.parameters(), module.ema_model.parameters(), strict=True):
            current.fill_(1.0)
            averaged.fill_(0.0)
    module.on_train_batch_end(None, None, 0)
    for averaged in module.ema_model.parameters():
        torch.testing.assert_close(averaged, torch.full_like(averaged, 0.25))
    assert tiny_module(species=[1, 6, 8]).eval_model is not None  # the model itself without EMA


class ParameterLog(Callback):
    """Copies of the model and EMA parameters at the start of every training batch and at the end."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    def _snapshot(self, module: PotentialModule) -> None:
        copy = [p.detach().clone() for p in module.model.parameters()]
        self.snapshots.append((copy, [p.detach().clone() for p in module.ema_model.parameters()]))

    def on_train_batch_start(self, trainer: Trainer, module: PotentialModule, *args) -> None:
        self._snapshot(module)

    def on_train_end(self, trainer: Trainer, module: PotentialModule) -> None:
        self._snapshot(module)


def test_ema_follows_the_weights_during_fit() -> None:
    decay = 0.6
    module, log = tiny_module(ema_decay=decay), ParameterLog()
    Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, callbacks=[log], **QUIET).fit(
        module, ethanol_datamodule()
    )
    first_model, first_ema = log.snapshots[0]
    for a, b in zip(first_model, first_ema, strict=True):
        torch.testing.assert_close(a, b)  # starts as a copy of the weights (with E0)
    for (_, ema_before), (model_after, ema_after) in zip(log.snapshots[:-1], log.snapshots[1:], strict=True):
        for old, new, current in zip(ema_before, ema_after, model_after, strict=True):
            torch.testing.assert_close(new, old + (1 - decay) * (current - old))
    final_model, final_ema = log.snapshots[-1]
    assert any(not torch.equal(a, b) for a, b in zip(final_model, final_ema, strict=True))


def test_validation_uses_the_ema_weights() -> None:
    module, datamodule = tiny_module(ema_decay=0.5), ethanol_datamodule()
    trainer = Trainer(max_epochs=1, limit_train_batches=2, **QUIET)
    trainer.fit(module, datamodule)
    logged = trainer.validate(module, datamodule, verbose=False)[0]
    batch = Batch.from_data_list(list(datamodule.datasets["val"]))
    output = module.ema_model.predict_data(batch)
    assert logged["val/energy_mae"] == pytest.approx(
        (output.energy.squeeze(1) - batch.energy).abs().mean().item()
    )
    assert logged["val/force_mae"] == pytest.approx(
        (output.forces - batch.forces).abs().mean().item(), rel=1e-5
    )


class ValidationLossLog(Callback):
    """``val/loss`` after every validation run, the sanity check (weights with E0 only) first."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_validation_end(self, trainer: Trainer, module: PotentialModule) -> None:
        self.losses.append(trainer.callback_metrics["val/loss"].item())


def test_short_fit_reduces_the_validation_loss() -> None:
    log = ValidationLossLog()
    trainer = Trainer(max_epochs=12, num_sanity_val_steps=-1, callbacks=[log], **QUIET)
    trainer.fit(tiny_module(lr=1e-2), ethanol_datamodule(n_train=50, n_val=20, n_test=0))
    assert len(log.losses) == 13
    assert log.losses[-1] < 0.5 * log.losses[0]


def test_module_takes_every_model_option_with_its_default() -> None:
    module_options = inspect.signature(PotentialModule).parameters
    for name, option in inspect.signature(HipNN).parameters.items():
        if name != "species":
            assert module_options[name].default == option.default, name


def test_split_with_a_separate_test_file() -> None:
    train, test = ASPIRIN.format("train"), ASPIRIN.format("test")
    if not Path(train).exists():
        pytest.skip("rMD17 aspirin files are not available")
    datamodule = AtomsDataModule(train_file=train, test_file=test, n_train=950, n_val=50)
    datamodule.setup("fit")
    datamodule.setup("test")
    sizes = {name: len(dataset) for name, dataset in datamodule.datasets.items()}
    assert sizes == {"train": 950, "val": 50, "test": 1000}
    assert datamodule.species == [1, 6, 8] and datamodule.units.force == "kcal/mol/Å"
    assert datamodule.has_test_data
    with pytest.raises(ValueError, match="n_test"):
        AtomsDataModule(train_file=train, test_file=test, n_test=10)


def test_split_sizes_and_reuse(tmp_path: Path) -> None:
    drawn = ethanol_datamodule(n_train=None, n_test=None, n_val=None, val_fraction=0.1)
    drawn.setup("fit")
    assert [len(drawn.split[name]) for name in ("train", "val", "test")] == [900, 100, 0]
    assert not drawn.has_test_data
    rest = ethanol_datamodule(n_train=30, n_val=10, n_test=None)
    rest.setup("fit")
    assert len(rest.split["test"]) == 960

    save_split(tmp_path / "split.npz", rest.split)
    reused = ethanol_datamodule(split_file=str(tmp_path / "split.npz"), seed=123)
    reused.setup("fit")
    for name in ("train", "val", "test"):
        assert torch.equal(reused.split[name], rest.split[name])
    assert torch.equal(reused.train_dataset.energy, rest.train_dataset.energy)


def test_reader_options_and_embedded_paths(tmp_path: Path) -> None:
    assert resolve_data_path("embedded:ethanol") == embedded_dataset_path("ethanol")
    assert resolve_data_path("data/x.npz") == Path("data/x.npz")
    frames = np.load(embedded_dataset_path("ethanol"))
    np.savez(
        tmp_path / "ev.npz", Z=frames["nuclear_charges"], R=frames["coords"][:20], E=frames["energies"][:20]
    )
    options = dict(
        z_key="Z", pos_key="R", energy_key="E", forces_key=None, units={"length": "Å", "energy": "eV"}
    )
    datamodule = AtomsDataModule(
        train_file=str(tmp_path / "ev.npz"), reader_options=options, n_train=15, n_val=5
    )
    datamodule.setup("fit")
    assert datamodule.units == Units("Å", "eV")
    assert "forces" not in datamodule.train_dataset[0]


def test_reference_energies_stay_fixed_so_the_averaged_model_has_no_offset() -> None:
    """Level-0 weights (≈ 10⁴ kcal/mol) are frozen by default: a float32 Adam step would move them
    by their last bit while an EMA of them cannot follow, leaving the averaged model offset."""
    module = tiny_module(ema_decay=0.9)
    Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=0, **QUIET).fit(
        module, ethanol_datamodule()
    )
    fitted = module.model.energy_head.heads[0].weight
    assert not fitted.requires_grad
    torch.testing.assert_close(module.ema_model.energy_head.heads[0].weight, fitted, rtol=0, atol=0)
    trainable = tiny_module(trainable_reference_energies=True, species=[1, 6, 8])
    assert trainable.model.energy_head.heads[0].weight.requires_grad


def test_frozen_sensitivities_keep_their_centres_and_widths_through_training() -> None:
    """``trainable_sensitivities=False`` fixes every layer's ``μ`` and ``σ`` while the interaction
    weights still learn; by default both move."""
    for trainable in (False, True):
        options = dict(trainable_sensitivities=trainable, sensitivity_type="gaussian", species=[1, 6, 8])
        module = tiny_module(**options)
        start = copy.deepcopy(module.model.state_dict())
        Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=0, **QUIET).fit(
            module, ethanol_datamodule()
        )
        for index, interaction in enumerate(module.model.interactions):
            prefix = f"blocks.{index}.0.layer."
            for name in ("sensitivity.mu", "sensitivity.sigma"):
                moved = not torch.equal(start[prefix + name], module.model.state_dict()[prefix + name])
                assert moved == trainable, (prefix + name, trainable)
                assert getattr(interaction.sensitivity, name.split(".")[1]).requires_grad == trainable
            assert not torch.equal(start[prefix + "weight"], interaction.weight)
