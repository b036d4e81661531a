"""The coarse-graining commands: ``cg map`` (npz with a topology, DCD through mdtraj, exact sums
and units), ``cg simulate`` (masses and temperature from the checkpoint, segments equal to
``--continue``, compiled equal to eager, priors alone), ``cg analyze`` (a reference against itself)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts.cg import mapping_from_spec
from pyg_hipts.cli import run_cli
from pyg_hipts.data import read_npz
from pyg_hipts.train.checkpoints import newest_checkpoint

from .conftest import SHARED_DATA
from .test_cg_training import small_network_config

REPO = Path(__file__).resolve().parents[1]
PDB = SHARED_DATA / "pdb" / "alanine-dipeptide-nowater.pdb"
MAP_CONFIG = REPO / "configs" / "cg_map" / "ala2_backbone.yaml"
BACKBONE = [4, 6, 8, 14, 16]  # ACE C, ALA N, CA, C, NME N in the PDB
GROUPS = [[0, 1, 2, 3, 4, 5], [6, 7], [8, 9, 10, 11, 12, 13], [14, 15], [16, 17, 18, 19, 20, 21]]
MASSES = {1: 1.008, 6: 12.01, 7: 14.007, 8: 15.999}


def _all_atom(n_frames: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z [22], positions [F, 22, 3] Å, forces [F, 22, 3] kcal/mol/Å)``: the PDB structure
    jiggled, with random forces."""
    mdtraj = pytest.importorskip("mdtraj")
    structure = mdtraj.load(str(PDB))
    z = np.array([atom.element.atomic_number for atom in structure.topology.atoms])
    generator = np.random.default_rng(seed)
    positions = structure.xyz[0] * 10.0 + 0.05 * generator.standard_normal((n_frames, 22, 3))
    return z, positions, 10.0 * generator.standard_normal((n_frames, 22, 3))


def _map(*arguments: str) -> Path:
    return run_cli(["cg", "map", "--config", str(MAP_CONFIG), *arguments])


@pytest.fixture
def mapped(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    z, positions, forces = _all_atom()
    np.savez(
        tmp_path / "aa.npz",
        nuclear_charges=z,
        coords=positions,
        forces=forces,
        energies=np.zeros(len(positions)),
    )
    output = _map(
        *("--input", str(tmp_path / "aa.npz"), "--topology", str(PDB), "--output", str(tmp_path / "cg.npz")),
        *("--temperature", "300", "--frame_spacing_ps", "0.5", "--reader_options", "{}"),
    )
    return output, positions, forces


def test_map_places_beads_and_sums_forces(mapped: tuple[Path, np.ndarray, np.ndarray]) -> None:
    output, positions, forces = mapped
    with np.load(output) as cg:
        np.testing.assert_allclose(cg["coords"], positions[:, BACKBONE], rtol=0, atol=1e-6)
        expected = np.stack([forces[:, group].sum(1) for group in GROUPS], axis=1)
        np.testing.assert_allclose(cg["forces"], expected, rtol=1e-6, atol=1e-6)
        z = _all_atom()[0]
        np.testing.assert_allclose(cg["masses"], [sum(MASSES[z[a]] for a in g) for g in GROUPS], rtol=1e-3)
        assert cg["names"].tolist() == ["C", "N", "CA", "C", "N"]
        assert cg["nuclear_charges"].tolist() == [1, 2, 3, 1, 2]
        assert float(cg["temperature"]) == 300.0 and cg["time_ps"][:2].tolist() == [0.5, 1.0]
    dataset = read_npz(output, energy_key=None)
    assert dataset.system.time_series and dataset.system.temperature == 300.0 and len(dataset) == 60


def test_map_reads_dcd_with_forces_in_openmm_units(
    tmp_path: Path, mapped: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    mdtraj = pytest.importorskip("mdtraj")
    reference, positions, forces = mapped
    topology = mdtraj.load_topology(str(PDB))
    mdtraj.Trajectory(positions / 10.0, topology, time=0.5 * (np.arange(len(positions)) + 1)).save_dcd(
        str(tmp_path / "aa.dcd")
    )
    np.save(tmp_path / "forces.npy", forces * 4.184 * 10.0)  # kJ/mol/nm
    output = _map(
        *(
            "--input",
            str(tmp_path / "aa.dcd"),
            "--topology",
            str(PDB),
            "--forces",
            str(tmp_path / "forces.npy"),
        ),
        *("--output", str(tmp_path / "from_dcd.npz"), "--temperature", "300", "--frame_spacing_ps", "0.5"),
    )
    with np.load(output) as from_dcd, np.load(reference) as from_npz:
        np.testing.assert_allclose(from_dcd["coords"], from_npz["coords"], atol=1e-3)  # DCD is float32
        np.testing.assert_allclose(from_dcd["forces"], from_npz["forces"] * 4.184, rtol=1e-5, atol=1e-4)
        assert str(from_dcd["energy_unit"]) == "kJ/mol" and str(from_dcd["length_unit"]) == "Å"


def test_map_errors_name_bead_and_file(tmp_path: Path) -> None:
    labels = ["ACE1:C", "ALA2:N", "ALA2:CA", "ALA2:CB"]
    with pytest.raises(
        ValueError, match=r"bead 0 \(X\): no atom is labelled 'ALA2:CX'; close: \['ALA2:CB', 'ALA2:CA'"
    ):
        mapping_from_spec([{"name": "X", "atoms": ["ALA2:CX"]}], [1.0] * 4, labels)
    with pytest.raises(ValueError, match=r"bead 0 \(X\): position 'ALA2:C\*' matches 2 atoms, not one"):
        mapping_from_spec([{"name": "X", "atoms": ["ALA2:*"], "position": "ALA2:C*"}], [1.0] * 4, labels)
    with pytest.raises(ValueError, match="force_map 'position' needs every bead on one atom"):
        mapping_from_spec([{"atoms": [0, 1]}], [1.0] * 4, labels, force_map="position")
    single = mapping_from_spec(
        [{"name": "CA", "atoms": ["ALA2:*"], "position": "ALA2:CA"}], [1.0] * 4, labels, "position"
    )
    forces = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(single.forces(forces), forces[[2]])
    np.savez(
        tmp_path / "no_forces.npz", nuclear_charges=np.ones(4), coords=np.eye(4, 3)[None] * 3, energies=[0.0]
    )
    with pytest.raises(ValueError, match="no_forces.npz: missing key 'forces'"):
        _map(
            "--input",
            str(tmp_path / "no_forces.npz"),
            "--output",
            str(tmp_path / "x.npz"),
            "--temperature",
            "300",
        )


def _fit(data: Path, root: Path) -> Path:
    config = small_network_config(REPO / "configs" / "cg_ala2.yaml", root.parent / "small.yaml")
    run_cli(
        [
            *("fit", "--config", str(config), "--data.train_file", str(data)),
            *("--trainer.max_epochs", "1", "--trainer.logger.init_args.save_dir", str(root)),
            *("--data.batch_size", "16", "--test_after_fit", "false"),
        ]
    )
    return newest_checkpoint(root, "best.ckpt")


def _simulate(checkpoint: Path, data: Path, output: Path, *extra: str) -> Path:
    return run_cli(
        [
            *(
                "cg",
                "simulate",
                "--checkpoint",
                str(checkpoint),
                "--start",
                str(data),
                "--output",
                str(output),
            ),
            *("--replicas", "3", "--save_every", "5", "--segment_steps", "10", *extra),
        ]
    )


def test_simulate_segments_equal_continue_and_analyze(
    tmp_path: Path, mapped, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = mapped[0]
    checkpoint = _fit(data, tmp_path / "fit")
    capsys.readouterr()
    whole = _simulate(checkpoint, data, tmp_path / "whole", "--steps", "20")
    progress = [line for line in capsys.readouterr().out.splitlines() if "kinetic temperature" in line]
    assert len(progress) == 2 and all(line.startswith("step ") for line in progress)  # one per segment
    _simulate(checkpoint, data, tmp_path / "parts", "--steps", "10")
    run_cli(
        [
            "cg",
            "simulate",
            "--output",
            str(tmp_path / "parts"),
            "--continue",
            "--steps",
            "10",
            "--save_every",
            "5",
            "--segment_steps",
            "10",
        ]
    )
    with np.load(whole / "trajectory.npz") as one, np.load(tmp_path / "parts" / "trajectory.npz") as two:
        assert one["positions"].shape == (5, 3, 5, 3)
        np.testing.assert_array_equal(one["positions"], two["positions"])
        np.testing.assert_allclose(one["time_ps"], [0.0, 0.01, 0.02, 0.03, 0.04])
        system = read_npz(data, energy_key=None).system
        np.testing.assert_allclose(one["masses"], system.masses)
        assert float(one["temperature"]) == 300.0 and one["names"].tolist() == list(system.names)
    with np.load(whole / "state.npz") as state:
        assert int(state["step"]) == 20 and state["velocities"].shape == (3, 5, 3)
    # the compiled path, its graph run by aot_eager (inductor's code is tested in test_compile.py)
    compile_graph, compiled_graphs = torch.compile, []

    def aot_eager(function, **options):
        compiled_graphs.append(function)
        return compile_graph(function, **options | {"backend": "aot_eager"})

    monkeypatch.setattr(torch, "compile", aot_eager)
    compiled = _simulate(checkpoint, data, tmp_path / "compiled", "--steps", "20", "--compile")
    monkeypatch.undo()
    assert len(compiled_graphs) == 2  # atom_energies (stress, energies alone) and the traced graph
    with np.load(whole / "trajectory.npz") as eager, np.load(compiled / "trajectory.npz") as graph:
        np.testing.assert_allclose(graph["positions"], eager["positions"], rtol=0, atol=1e-5)
    with pytest.raises(FileExistsError, match="holds a run"):
        _simulate(checkpoint, data, tmp_path / "whole", "--steps", "10")
    with pytest.raises(
        ValueError, match=r"--steps \(12\) .* must be multiples of the run's --save_every \(5\)"
    ):
        run_cli(
            ["cg", "simulate", "--output", str(whole), "--continue", "--steps", "12", "--segment_steps", "10"]
        )
    with pytest.raises(FileNotFoundError, match="no run to continue"):
        run_cli(["cg", "simulate", "--output", str(tmp_path / "nothing"), "--continue", "--steps", "10"])

    priors = _simulate(
        checkpoint, data, tmp_path / "priors", "--steps", "10", "--without", "pyg_hipts.nn.HipNN"
    )
    with np.load(priors / "trajectory.npz") as alone, np.load(whole / "trajectory.npz") as full:
        np.testing.assert_array_equal(alone["positions"][0], full["positions"][0])  # same starts
        assert not np.allclose(alone["positions"][-1], full["positions"][2])  # other forces

    refined = run_cli(
        [
            *("cg", "refine", "--checkpoint", str(checkpoint), "--reference", str(data)),
            *("--trajectory", str(whole / "trajectory.npz"), "--output", str(tmp_path / "refined.pt")),
        ]
    )
    again = _simulate(refined, data, tmp_path / "refined_md", "--steps", "10")  # masses from the file
    with np.load(again / "trajectory.npz") as run:
        assert float(run["temperature"]) == 300.0 and run["positions"].shape == (3, 3, 5, 3)

    # the reference frames posing as a run: nothing differs from the reference
    with np.load(data) as cg:
        frames = cg["coords"].reshape(12, 5, 5, 3)  # 60 frames as 12 steps of 5 replicas
        np.savez(tmp_path / "itself.npz", positions=frames, time_ps=np.arange(12.0))
    report = run_cli(
        [
            *("cg", "analyze", "--reference", str(data), "--trajectory", str(tmp_path / "itself.npz")),
            *(
                str(whole / "trajectory.npz"),
                "--labels",
                "itself",
                "md",
                "--phi_psi",
                "0",
                "1",
                "2",
                "3",
                "4",
            ),
            *("--output", str(tmp_path / "analysis"), "--blocks", "3"),
        ]
    )
    itself = report["runs"]["itself"]
    assert max(itself["jensen_shannon"].values()) == pytest.approx(0.0, abs=1e-12)
    assert itself["jensen_shannon_phi_psi"] == pytest.approx(0.0, abs=1e-12)
    assert itself["populations"] == pytest.approx(report["reference"]["populations"])
    assert len(itself["blocks"]["mean"]["beta"]) == 3 and isinstance(itself["blocks"]["converged"], bool)
    assert set(itself["jensen_shannon"]) == {
        "bond 0-1",
        "bond 1-2",
        "bond 2-3",
        "bond 3-4",
        "angle 0-1-2",
        "angle 1-2-3",
        "angle 2-3-4",
        "dihedral 0-1-2-3",
        "dihedral 1-2-3-4",
    }
    assert json.loads((tmp_path / "analysis" / "report.json").read_text()) == report
    for figure in ("internal_coordinates.png", "ramachandran.png", "convergence.png"):
        assert (tmp_path / "analysis" / figure).stat().st_size > 10_000


def test_liquid_one_bead_per_molecule_and_its_rdf(tmp_path: Path) -> None:
    """A periodic box of 27 three-atom molecules (O, H, H) wrapped across the boundary: centres
    of mass made whole, forces summed, and g(r) of the reference against itself."""
    generator = np.random.default_rng(1)
    edge, n_frames = 9.0, 6
    centres = (np.stack(np.meshgrid(*[np.arange(3)] * 3), -1).reshape(-1, 3) + 0.5) * 3.0
    offsets = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    atoms = (centres[:, None] + offsets).reshape(-1, 3)
    positions = atoms + 0.1 * generator.standard_normal((n_frames, 81, 3))
    forces = generator.standard_normal((n_frames, 81, 3))
    cell = np.broadcast_to(np.eye(3) * edge, (n_frames, 3, 3))
    z = np.tile([8, 1, 1], 27)
    np.savez(
        tmp_path / "box.npz",
        nuclear_charges=z,
        coords=positions % edge,
        forces=forces,
        energies=np.zeros(n_frames),
        cell=cell,
        time_ps=np.arange(1.0, n_frames + 1),
        temperature=np.array(300.0),
    )
    output = run_cli(
        [
            *("cg", "map", "--input", str(tmp_path / "box.npz"), "--reader_options", "{cell_key: cell}"),
            *("--molecules", "{size: 3, name: W}", "--output", str(tmp_path / "beads.npz")),
        ]
    )
    masses = np.array([15.999, 1.008, 1.008])
    with np.load(output) as beads:
        whole = positions.reshape(n_frames, 27, 3, 3)
        expected = (whole * masses[:, None]).sum(2) / masses.sum()
        shift = np.round((beads["coords"] - expected) / edge) * edge  # the bead may sit in any image
        np.testing.assert_allclose(beads["coords"] - shift, expected, atol=1e-9)
        np.testing.assert_allclose(beads["forces"], forces.reshape(n_frames, 27, 3, 3).sum(2), atol=1e-9)
        np.testing.assert_allclose(beads["masses"], np.full(27, masses.sum()), rtol=1e-4)
        assert beads["cell"].shape == (n_frames, 3, 3) and beads["names"].tolist() == ["W"] * 27
        np.savez(
            tmp_path / "run.npz",
            positions=beads["coords"][:, None],
            time_ps=beads["time_ps"],
            cell=beads["cell"][0],
        )
    report = run_cli(
        [
            *("cg", "analyze", "--reference", str(output), "--trajectory", str(tmp_path / "run.npz")),
            *("--labels", "itself", "--rdf_max", "4.4", "--output", str(tmp_path / "analysis")),
        ]
    )
    assert report["runs"]["itself"]["jensen_shannon"] == {}  # a box has no internal coordinates
    assert report["runs"]["itself"]["rdf_first_peak"] == report["reference"]["rdf_first_peak"]
    assert 2.5 < report["reference"]["rdf_first_peak"]["position"] < 3.5  # the 3 Å lattice
    assert (
        report["runs"]["itself"]["close_contacts_per_frame"]
        == report["reference"]["close_contacts_per_frame"]
        > 0
    )
    with np.load(tmp_path / "analysis" / "rdf.npz") as curves:
        np.testing.assert_array_equal(curves["g_itself"], curves["g_reference"])
