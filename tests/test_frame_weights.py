"""Frames sampled with a bias carry ``weights``: read and checked with the npz reader, kept by
``cg map``, used by the priors' Boltzmann inversion, ``cg analyze`` and ``cg refine``: a frame
of integer weight ``w`` counts as ``w`` copies of it (exactly in means, variances, populations
and histograms; up to the half count per bin in free energies)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pyg_hipts.cg import FourierDihedrals, HarmonicBonds, dihedrals
from pyg_hipts.cg.analysis import effective_sample_size, radial_distribution
from pyg_hipts.cg.refine import dihedral_correction
from pyg_hipts.cg_workflow.simulate import chosen_frames, starting_frames
from pyg_hipts.cli import run_cli
from pyg_hipts.data import read_npz
from pyg_hipts.data.prepare import prepare

from .conftest import SHARED_DATA
from .test_cg_workflow import MAP_CONFIG, PDB, REPO, _all_atom


def _write_all_atom(path: Path, weights: object) -> Path:
    z, positions, forces = _all_atom(n_frames=10)
    np.savez(path, nuclear_charges=z, coords=positions, forces=forces, weights=weights)
    return path


def test_weights_are_checked_per_frame_and_kept_by_cg_map(tmp_path: Path) -> None:
    weights = np.linspace(0.1, 1.0, 10)
    source = _write_all_atom(tmp_path / "aa.npz", weights)
    output = run_cli(
        [
            *("cg", "map", "--config", str(MAP_CONFIG), "--input", str(source), "--topology", str(PDB)),
            *("--output", str(tmp_path / "cg.npz"), "--temperature", "300", "--stride", "2"),
            *("--reader_options", '{"energy_key": null}'),
        ]
    )
    with np.load(output) as cg:
        np.testing.assert_array_equal(cg["weights"], weights[::2])
    frames = read_npz(output, energy_key=None)
    np.testing.assert_array_equal([float(frame.frame_weight) for frame in frames], weights[::2])

    bad = weights.copy()
    bad[3] = -1.0
    for value, message in (
        (bad, r"aa_bad\.npz: weights must be finite and >= 0; frame 3 has -1\.0"),
        (np.full(10, np.nan), r"frame 0 has nan"),
        (np.ones(9), r"weights must be \[10\] \(one per frame\), got \[9\]"),
        (np.zeros(10), r"every frame has weight 0"),
    ):
        with pytest.raises(ValueError, match=message):
            read_npz(_write_all_atom(tmp_path / "aa_bad.npz", value), energy_key=None)


def test_weighted_boltzmann_inversion_equals_duplicated_frames() -> None:
    generator = np.random.default_rng(1)
    pos = torch.as_tensor(generator.standard_normal((40, 3, 3)))
    copies = torch.as_tensor(generator.integers(1, 4, 40))
    weighted = HarmonicBonds.fit(pos, [[0, 1], [1, 2]], 0.6, weights=copies.double())
    duplicated = HarmonicBonds.fit(pos.repeat_interleave(copies, dim=0), [[0, 1], [1, 2]], 0.6)
    torch.testing.assert_close(weighted.k, duplicated.k, rtol=1e-12, atol=0)
    torch.testing.assert_close(weighted.center, duplicated.center, rtol=1e-12, atol=0)


def _frames_with_dihedral(phi: np.ndarray) -> torch.Tensor:
    """``[F, 4, 3]`` four beads whose dihedral 0-1-2-3 is ``±phi`` (a rotation about the z axis)."""
    pos = np.zeros((len(phi), 4, 3))
    pos[:, 0] = [1.0, 0.0, 0.0]
    pos[:, 2, 2] = 1.5
    pos[:, 3] = np.stack([np.cos(phi), np.sin(phi), np.full_like(phi, 1.5)], axis=-1)
    return torch.as_tensor(pos)


def test_reweighting_uniform_dihedrals_recovers_the_potential() -> None:
    """Dihedrals drawn uniformly, weighted by ``exp(−U/kT)``: the fitted Fourier prior is ``U``."""
    thermal_energy, a1, b1 = 0.6, 1.0, -0.5
    pos = _frames_with_dihedral(np.random.default_rng(2).uniform(-np.pi, np.pi, 200_000))
    phi = dihedrals(pos, torch.tensor([[0, 1, 2, 3]]))[:, 0]
    weights = torch.exp(-(a1 * torch.cos(phi) + b1 * torch.sin(phi)) / thermal_energy)
    fitted = FourierDihedrals.fit(pos, [[0, 1, 2, 3]], thermal_energy, n_terms=3, weights=weights)
    np.testing.assert_allclose(fitted.a[0].numpy(), [a1, 0.0, 0.0], atol=0.03)
    np.testing.assert_allclose(fitted.b[0].numpy(), [b1, 0.0, 0.0], atol=0.03)
    unweighted = FourierDihedrals.fit(pos, [[0, 1, 2, 3]], thermal_energy, n_terms=3)
    assert float(unweighted.a.abs().max()) < 0.03  # the weights made the difference
    assert effective_sample_size(weights.numpy()) < 0.9 * len(weights)


def test_refine_correction_from_weighted_frames_equals_duplicated_frames() -> None:
    generator = np.random.default_rng(3)
    reference = generator.vonmises(-1.0, 2.0, 50_000)
    copies = generator.integers(1, 4, len(reference))
    simulated = generator.vonmises(-0.5, 2.0, 50_000)
    weighted = dihedral_correction(reference, simulated, 0.6, 3, reference_weights=copies.astype(float))
    duplicated = dihedral_correction(np.repeat(reference, copies), simulated, 0.6, 3)
    torch.testing.assert_close(weighted, duplicated, rtol=0, atol=2e-3)


def test_analyze_counts_a_weighted_reference_as_its_duplicated_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    beads = np.load(SHARED_DATA / "cgnet_ala2" / "ala2_coordinates.npy")[::250]  # 40 frames, α and β
    copies = np.random.default_rng(5).integers(1, 4, len(beads))
    np.savez(tmp_path / "weighted.npz", coords=beads, time_ps=np.arange(40.0), weights=copies.astype(float))
    repeated = np.repeat(beads, copies, axis=0)
    np.savez(tmp_path / "repeated.npz", coords=repeated, time_ps=np.arange(float(len(repeated))))
    np.savez(tmp_path / "run.npz", positions=beads[:, None], time_ps=np.arange(40.0))
    reports = {}
    for name in ("weighted", "repeated"):
        reports[name] = run_cli(
            [
                *("cg", "analyze", "--reference", str(tmp_path / f"{name}.npz")),
                *("--trajectory", str(tmp_path / "run.npz"), "--labels", "run"),
                *("--phi_psi", "0", "1", "2", "3", "4", "--output", str(tmp_path / name)),
            ]
        )
    weighted, repeated = reports["weighted"], reports["repeated"]
    assert weighted["reference"]["populations"] == pytest.approx(repeated["reference"]["populations"])
    run_weighted, run_repeated = weighted["runs"]["run"], repeated["runs"]["run"]
    assert run_weighted["jensen_shannon_phi_psi"] == pytest.approx(run_repeated["jensen_shannon_phi_psi"])
    assert run_weighted["jensen_shannon"] == pytest.approx(run_repeated["jensen_shannon"])
    unweighted = run_weighted["populations"]  # the run is the reference's frames, each once
    assert abs(weighted["reference"]["populations"]["alpha"] - unweighted["alpha"]) > 0.01
    effective = copies.sum() ** 2 / np.sum(copies**2)
    assert weighted["reference"]["effective_frames"] == pytest.approx(effective)
    assert "effective_frames" not in repeated["reference"]
    assert f"reference (weighted; {effective:.0f} effective frames)" in capsys.readouterr().out


def test_biased_openmm_frames_hold_the_force_fields_forces_and_their_weights(tmp_path: Path) -> None:
    """``examples/ala2_allatom_openmm.py --bias_ns``: the forces written are those of the force
    field without the metadynamics bias, and the weights vary with the bias (largest 1)."""
    openmm = pytest.importorskip("openmm")
    from openmm import app, unit

    output = tmp_path / "biased.npz"
    subprocess.run(
        [
            *(sys.executable, str(REPO / "examples" / "ala2_allatom_openmm.py"), "--out", str(output)),
            *("--nanoseconds", "0.004", "--save_every_ps", "0.4", "--equilibrate_ps", "1"),
            *("--bias_ns", "0.02", "--bias_on", "phi", "psi"),
        ],
        check=True,
        capture_output=True,
    )
    pdb = app.PDBFile(str(PDB))
    system = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(
        pdb.topology, nonbondedMethod=app.NoCutoff
    )
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    with np.load(output) as frames:
        weights = frames["weights"]
        assert len(weights) == 10 and weights.max() == 1.0 and weights.min() < 0.99
        for positions, forces in zip(frames["coords"], frames["forces"], strict=True):
            context.setPositions(positions * unit.angstrom)
            state = context.getState(getForces=True)
            expected = state.getForces(asNumpy=True).value_in_unit(unit.kilocalorie_per_mole / unit.angstrom)
            np.testing.assert_allclose(forces, expected, rtol=0, atol=2e-3 * np.abs(expected).max())


def test_weighted_radial_distribution_equals_duplicated_frames() -> None:
    generator = np.random.default_rng(6)
    cell = np.diag([9.0, 10.0, 11.0])
    positions = generator.random((12, 60, 3)) @ cell
    positions[:4] *= 0.8  # denser frames, so that the weights matter
    copies = generator.integers(1, 4, len(positions))
    r, weighted = radial_distribution(positions, cell, 4.0, n_bins=20, weights=copies.astype(float))
    _, duplicated = radial_distribution(np.repeat(positions, copies, axis=0), cell, 4.0, n_bins=20)
    _, unweighted = radial_distribution(positions, cell, 4.0, n_bins=20)
    np.testing.assert_allclose(weighted, duplicated, rtol=1e-12)
    assert np.abs(weighted - unweighted).max() > 0.01


def test_a_prepared_dataset_refuses_weighted_frames(tmp_path: Path) -> None:
    source = _write_all_atom(tmp_path / "aa.npz", np.ones(10))
    with pytest.raises(ValueError, match=r"aa\.npz: the frames carry weights .* read the \.npz file itself"):
        prepare(source, tmp_path / "prepared", reader_options={"energy_key": None}, progress=False)


def test_replicas_start_from_frames_chosen_by_weight(tmp_path: Path) -> None:
    weights = torch.tensor([0.0, 0.0, 1.0, 0.0, 3.0])
    np.testing.assert_array_equal(chosen_frames(5, 4, "spread", 0, weights), [2, 4, 4, 4])
    np.testing.assert_array_equal(chosen_frames(5, 3, "spread", 0), [0, 2, 4])  # unweighted: even
    drawn = chosen_frames(5, 20_000, "random", 0, weights)
    counts = np.bincount(drawn.numpy(), minlength=5) / 20_000
    assert counts[[0, 1, 3]].sum() == 0 and counts[4] == pytest.approx(0.75, abs=0.01)

    # through the start file of cg simulate: its frame weights decide
    positions = np.arange(5.0)[:, None, None] + np.zeros((5, 3, 3))
    positions[:, :, 0] += np.arange(3.0)
    np.savez(
        tmp_path / "cg.npz",
        nuclear_charges=[1, 2, 1],
        coords=positions,
        forces=0 * positions,
        weights=weights,
    )
    options = SimpleNamespace(
        start=tmp_path / "cg.npz", format=None, reader_options={}, start_frames="spread", replicas=4, seed=0
    )
    z, start, cell = starting_frames(options)
    assert z.tolist() == [1, 2, 1] and cell is None
    np.testing.assert_array_equal(start[:, 0, 1], [2.0, 4.0, 4.0, 4.0])
