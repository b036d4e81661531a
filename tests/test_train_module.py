"""PotentialModule (loss terms and metric numbers, species and units from the data, pre-fit of
reference energies, EMA, short fits that learn, any potential passed as an object)."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from pyg_hipts.data import Units, count_species, fit_reference_energies
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import Potential, ReferenceEnergies, Structures, SumPotential
from pyg_hipts.train import AtomsDataModule, PotentialModule
from pyg_hipts.train.losses import AtomEnergyLoss, EnergyLoss, ForceLoss, HierarchicalityLoss, L2Loss

from .test_datamodule import ethanol_datamodule

ETHANOL_SPECIES = [1, 6, 8]
TINY_MODEL = dict(n_features=8, n_sensitivities=6, n_interaction_layers=1, n_atom_layers=1, l_max=1)
QUIET = dict(
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)


def tiny_losses() -> list:
    return [EnergyLoss(1.0), ForceLoss(10.0)]


def tiny_module(model_options: dict | None = None, **options) -> PotentialModule:
    """A small HIP-NN-TS built from the data's species (a factory, as YAML without species gives);
    ``model_options`` override the model's sizes, ``options`` the module's defaults."""
    factory = functools.partial(HipNN, **{**TINY_MODEL, **(model_options or {})})
    return PotentialModule(factory, **{"losses": tiny_losses(), "lr": 5e-3, **options})


def fit_without_steps(module: PotentialModule, datamodule: AtomsDataModule) -> None:
    """Set the module up on the data (species, units, pre-fit) without any training step."""
    Trainer(max_epochs=1, limit_train_batches=0, limit_val_batches=0, **QUIET).fit(module, datamodule)


class LinearStub(Potential):
    """``e_i = w · r_i``, so ``E_b = Σ_{i ∈ b} w · r_i`` and ``F_i = −w``: the errors of a hand-made
    batch are known exactly."""

    periodic = False

    def __init__(self, species: Sequence[int] = (1, 8)) -> None:
        super().__init__(species, 0.0)
        self.w = nn.Parameter(torch.tensor([1.0, 2.0, 0.0]))

    def atom_energies(self, structures: Structures) -> Tensor:
        return structures.pos @ self.w

    def regularization_parameters(self) -> list[Tensor]:
        return [self.w]


def structure_a() -> Data:
    """Two atoms; predicted E = 1 (reference 3), atom energies (0, 1) (references (0.5, 1)), forces
    off by (−1, 0, 0) on the first atom."""
    return Data(
        z=torch.tensor([1, 8]),
        pos=torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        energy=torch.tensor([3.0]),
        forces=torch.tensor([[0.0, -2.0, 0.0], [-1.0, -2.0, 0.0]]),
        atom_energies=torch.tensor([0.5, 1.0]),
        natoms=torch.tensor([2]),
    )


def structure_b() -> Data:
    """One atom; predicted E = 2 (reference 2.5), atom energy 2 (reference 0), forces off by (0, 0, −1)."""
    return Data(
        z=torch.tensor([1]),
        pos=torch.tensor([[0.0, 1.0, 0.0]]),
        energy=torch.tensor([2.5]),
        forces=torch.tensor([[-1.0, -2.0, 1.0]]),
        atom_energies=torch.tensor([0.0]),
        natoms=torch.tensor([1]),
    )


def hand_made_batch() -> Batch:
    return Batch.from_data_list([structure_a(), structure_b()])


# energy errors (−2, −0.5); force errors: two components of −1 among 9; atom energy errors (−0.5, 0, 2)
KINDS = [
    ("mse", 4.25 / 2, 2 / 9, 4.25 / 3),
    ("mae", 2.5 / 2, 2 / 9, 2.5 / 3),
    ("rmse", math.sqrt(4.25 / 2), math.sqrt(2 / 9), math.sqrt(4.25 / 3)),
]


@pytest.mark.parametrize(("kind", "energy_term", "force_term", "atom_term"), KINDS)
def test_data_loss_terms_on_hand_made_batch(
    kind: str, energy_term: float, force_term: float, atom_term: float
) -> None:
    stub, batch = LinearStub(), hand_made_batch()
    output = stub.predict_data(batch, create_graph=True)
    for term, expected in [
        (EnergyLoss(kind=kind), energy_term),
        (ForceLoss(kind=kind), force_term),
        (AtomEnergyLoss(kind=kind), atom_term),
    ]:
        value = term(output, batch, stub)
        assert value.item() == pytest.approx(expected, rel=1e-6), term
        assert value.requires_grad, term
    assert L2Loss()(output, batch, stub).item() == pytest.approx(1.0 + 4.0)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize(("kind", "energy_term", "force_term", "atom_term"), KINDS)
def test_training_loss_is_the_weighted_sum_of_its_terms(
    kind: str, energy_term: float, force_term: float, atom_term: float
) -> None:
    losses = [EnergyLoss(2.0, kind), ForceLoss(3.0, kind), AtomEnergyLoss(0.5, kind), L2Loss(0.1)]
    value = PotentialModule(LinearStub(), losses).training_step(hand_made_batch(), 0)
    expected = 2.0 * energy_term + 3.0 * force_term + 0.5 * atom_term + 0.1 * (1.0 + 4.0)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert value.requires_grad


def test_data_terms_without_their_targets() -> None:
    stub, batch = LinearStub(), hand_made_batch()
    del batch.atom_energies, batch.forces
    output = stub.predict_data(batch)
    assert ForceLoss()(output, batch, stub) is None  # skipped: a batch without forces
    with pytest.raises(ValueError, match="atom_energies"):
        AtomEnergyLoss()(output, batch, stub)
    del batch.energy
    with pytest.raises(ValueError, match="no targets"):
        PotentialModule(stub).training_step(batch, 0)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("in_a_sum", [False, True])
def test_hierarchicality_loss_of_hipnn(in_a_sum: bool) -> None:
    torch.manual_seed(0)
    network = HipNN(ETHANOL_SPECIES, **TINY_MODEL)
    model = network
    if in_a_sum:
        model = SumPotential(ETHANOL_SPECIES, [ReferenceEnergies(ETHANOL_SPECIES), network])
    datamodule = ethanol_datamodule()
    datamodule.setup("fit")
    batch = Batch.from_data_list(list(datamodule.train_dataset)[:5])
    module = PotentialModule(model, [EnergyLoss(1.0), HierarchicalityLoss(0.5)])
    output = model.predict_data(batch, forces=False)
    hierarchicality = output.extras["hierarchicality"]
    assert hierarchicality.shape == (5, 1) and bool((hierarchicality > 0).all())
    expected = (output.energy.squeeze(1) - batch.energy).square().mean() + 0.5 * hierarchicality.mean()
    assert module.training_step(batch, 0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_hierarchicality_loss_needs_a_potential_that_reports_it() -> None:
    with pytest.raises(ValueError, match="ReferenceEnergies reports no hierarchicality"):
        PotentialModule(ReferenceEnergies(ETHANOL_SPECIES), [EnergyLoss(1.0), HierarchicalityLoss(1.0)])
    with pytest.raises(ValueError, match="LinearStub reports no hierarchicality"):
        PotentialModule(LinearStub(), [HierarchicalityLoss(1.0)])


def test_epoch_metrics_pool_all_errors() -> None:
    """Batches of 2 and 1 structures: the epoch MAE is over all 3 errors, not a mean of batch means."""
    module = PotentialModule(LinearStub(), [EnergyLoss(2.0, "mae"), ForceLoss(3.0, "mae")])
    module.validation_step(hand_made_batch(), 0)
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
    with pytest.raises(ValueError, match="loss must be one of"):
        ForceLoss(kind="huber")
    with pytest.raises(ValueError, match="weight must be >= 0"):
        EnergyLoss(weight=-1.0)
    with pytest.raises(ValueError, match="ema_decay"):
        PotentialModule(LinearStub(), ema_decay=1.0)
    with pytest.raises(ValueError, match="nothing to train"):
        PotentialModule(LinearStub(), [EnergyLoss(0.0), ForceLoss(0.0)])
    with pytest.raises(TypeError, match="must be a pyg_hipts Potential, got Linear"):
        PotentialModule(lambda species: nn.Linear(3, 1), species=[1])


def test_species_come_from_the_data_module_unless_given() -> None:
    from_data = tiny_module()
    assert from_data.model is None  # a factory waits for the data's species
    fit_without_steps(from_data, ethanol_datamodule())
    assert from_data.model.species == ETHANOL_SPECIES and from_data.hparams.species == ETHANOL_SPECIES
    given = tiny_module(species=[1, 6, 7, 8])
    assert given.model.species == [1, 6, 7, 8]
    fit_without_steps(given, ethanol_datamodule())
    assert given.model.species == [1, 6, 7, 8] and given.hparams.species == [1, 6, 7, 8]


def test_units_come_from_the_data_and_must_match_it() -> None:
    module = tiny_module(ema_decay=0.5)
    fit_without_steps(module, ethanol_datamodule())
    assert module.units == Units("Å", "kcal/mol")
    assert module.model.units == module.ema_model.units == Units("Å", "kcal/mol")
    in_ev = HipNN(ETHANOL_SPECIES, **TINY_MODEL, units=Units("Å", "eV"))
    with pytest.raises(ValueError, match="the potential works in .*eV.* the data are in .*kcal/mol"):
        fit_without_steps(PotentialModule(in_ev), ethanol_datamodule())


def test_reference_energies_are_fitted_on_the_training_set() -> None:
    module, datamodule = tiny_module(), ethanol_datamodule()
    fit_without_steps(module, datamodule)
    e0 = fit_reference_energies(datamodule.train_dataset, module.model.species)
    batch = Batch.from_data_list(list(datamodule.datasets["val"]))
    level0 = module.model.predict_data(batch, forces=False).extras["level_energies"][:, 0].double()
    expected = count_species(batch.z, batch.batch, module.model.species).double() @ e0
    torch.testing.assert_close(level0, expected, rtol=1e-6, atol=0.0)
    # one composition: Σ_s n_s E0_s is the mean training energy
    assert expected[0].item() == pytest.approx(
        datamodule.train_dataset.energy.double().mean().item(), rel=1e-9
    )


def test_reference_energies_of_a_sum_are_fitted_once() -> None:
    """``ReferenceEnergies + HipNN``: the energy after the pre-fit is the mean training energy (one
    composition), not that offset counted by both terms."""
    network = HipNN(ETHANOL_SPECIES, **TINY_MODEL)
    module = PotentialModule(SumPotential(ETHANOL_SPECIES, [ReferenceEnergies(ETHANOL_SPECIES), network]))
    datamodule = ethanol_datamodule()
    fit_without_steps(module, datamodule)
    e0 = fit_reference_energies(datamodule.train_dataset, ETHANOL_SPECIES)
    torch.testing.assert_close(module.model.terms[0].energies, e0, rtol=1e-9, atol=0.0)
    batch = Batch.from_data_list(list(datamodule.datasets["val"]))
    predicted = module.model.predict_data(batch, forces=False).energy.squeeze(1)
    mean = datamodule.train_dataset.energy.double().mean()
    assert (predicted - mean).abs().max().item() < 5.0  # kcal/mol, against 9.7·10⁴ kcal/mol twice


class ValidationLossLog(Callback):
    """``val/loss`` after every validation run, the sanity check (weights after the pre-fit) first."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_validation_end(self, trainer: Trainer, module: PotentialModule) -> None:
        self.losses.append(trainer.callback_metrics["val/loss"].item())


def short_fit_losses(module: PotentialModule, epochs: int = 12) -> list[float]:
    log = ValidationLossLog()
    trainer = Trainer(max_epochs=epochs, num_sanity_val_steps=-1, callbacks=[log], **QUIET)
    trainer.fit(module, ethanol_datamodule(n_train=50, n_val=20, n_test=0))
    assert len(log.losses) == epochs + 1
    return log.losses


def test_short_fit_reduces_the_validation_loss() -> None:
    losses = short_fit_losses(tiny_module(lr=1e-2))
    assert losses[-1] < 0.5 * losses[0]


def test_module_trains_a_potential_passed_as_an_object() -> None:
    """A sum of reference energies and a HIP-NN, built in Python, trained as it is."""
    torch.manual_seed(0)
    model = SumPotential(
        ETHANOL_SPECIES, [ReferenceEnergies(ETHANOL_SPECIES), HipNN(ETHANOL_SPECIES, n_features=8)]
    )
    module = PotentialModule(model, tiny_losses(), lr=1e-2)
    assert module.model is model and module.hparams.species == ETHANOL_SPECIES
    losses = short_fit_losses(module, epochs=8)
    assert module.model is model and model.units == Units("Å", "kcal/mol")
    assert losses[-1] < 0.5 * losses[0]


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
    trainable = tiny_module(dict(trainable_reference_energies=True), species=ETHANOL_SPECIES)
    assert trainable.model.energy_head.heads[0].weight.requires_grad


def test_frozen_sensitivities_keep_their_centres_and_widths_through_training() -> None:
    """``trainable_sensitivities=False`` fixes every layer's ``μ`` and ``σ`` while the interaction
    weights still learn; by default both move."""
    for trainable in (False, True):
        options = dict(trainable_sensitivities=trainable, sensitivity_type="gaussian")
        module = tiny_module(options, species=ETHANOL_SPECIES)
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
