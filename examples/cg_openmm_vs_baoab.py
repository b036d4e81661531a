"""The same coarse-grained alanine dipeptide model sampled by the package's BAOAB and by
OpenMM's ``LangevinMiddleIntegrator``: do the (φ, ψ) populations agree within sampling error?

The model is a trained CG checkpoint (``--checkpoint``, e.g. from ``examples/cg_ala2.py``) or,
by default, the priors of ``configs/cg_ala2.yaml`` fitted by Boltzmann inversion on the cgnet
frames plus an untrained HIP-NN-TS with its weights scaled by 0.1, so that both the native
priors and the Python force of the network take part. ``R`` replicas start from frames spread
over the cgnet trajectory and run ``--steps`` steps in each engine, at 300 K with the same time
step and friction; the first fifth of every run is discarded.

Sampling error: the replicas are independent, so each population's standard error is the
standard deviation of the per-replica populations over ``√R``. The engines agree when every
difference is within 3 combined standard errors, ``|p₁ − p₂| < 3 √(s₁² + s₂²)``. Writes
``<out>/populations.json`` and ``<out>/ramachandran.png``. Run from the repository root::

    python examples/cg_openmm_vs_baoab.py --replicas 100 --steps 10000 --out runs/cg_openmm
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np
import openmm
import torch
import yaml
from openmm import unit

from pyg_hipts.cg import TopologyPrior, dihedrals
from pyg_hipts.cg.analysis import free_energy, ramachandran, state_populations
from pyg_hipts.data import AtomsDataset, make_frame
from pyg_hipts.md import run_langevin
from pyg_hipts.nn import HipNN
from pyg_hipts.openmm import add_rest, native_system
from pyg_hipts.potentials import Potential, SumPotential, load_potential
from pyg_hipts.units import Units, boltzmann_constant

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ROOT.parent / "shared" / "data" / "cgnet_ala2" / "ala2_coordinates.npy"
BEAD_TYPES = [1, 2, 3, 1, 2]  # C N CA C N
BEAD_MASSES = [12.011, 14.007, 12.011, 12.011, 14.007]
TEMPERATURE = 300.0
PHI_PSI = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
SAVE_EVERY = 50


def default_model(frames: np.ndarray) -> Potential:
    """Priors of ``configs/cg_ala2.yaml`` fitted on ``frames`` plus a damped untrained network."""
    terms = yaml.safe_load((ROOT / "configs" / "cg_ala2.yaml").read_text())["model"]["model"]["init_args"][
        "terms"
    ]
    prior_args, network_args = (term["init_args"] for term in terms)
    units = Units("Å", "kcal/mol")
    torch.manual_seed(0)
    network = HipNN([1, 2, 3], **network_args).double()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(0.1)
    model = SumPotential(
        [1, 2, 3], [TopologyPrior([1, 2, 3], **prior_args, temperature=TEMPERATURE), network], units
    )
    data = [make_frame(np.array(BEAD_TYPES), p, None, dtype=torch.float64) for p in frames[::5]]
    model.terms[0].pre_fit(AtomsDataset(data, units, str(FRAMES)))
    return model


def run_baoab(model: Potential, starts: np.ndarray, options: argparse.Namespace) -> np.ndarray:
    """``[F, R, 5, 3]`` (Å) saved every :data:`SAVE_EVERY` steps."""
    trajectory = run_langevin(
        model,
        torch.tensor(BEAD_TYPES),
        torch.as_tensor(starts),
        torch.tensor(BEAD_MASSES, dtype=torch.float64),
        temperature=TEMPERATURE,
        timestep_fs=options.timestep_fs,
        friction_per_ps=options.friction_per_ps,
        n_steps=options.steps,
        save_every=SAVE_EVERY,
        seed=options.seed,
    )
    return trajectory.positions[1:].numpy()


def run_openmm(model: Potential, starts: np.ndarray, options: argparse.Namespace) -> np.ndarray:
    """``[F, R, 5, 3]`` (Å) saved every :data:`SAVE_EVERY` steps."""
    replicas = len(starts)
    system, rest = native_system(model, BEAD_TYPES, BEAD_MASSES, replicas)
    add_rest(system, rest, BEAD_TYPES, periodic=False, replicas=replicas)
    integrator = openmm.LangevinMiddleIntegrator(
        TEMPERATURE * unit.kelvin,
        options.friction_per_ps / unit.picosecond,
        options.timestep_fs * unit.femtosecond,
    )
    integrator.setRandomNumberSeed(options.seed + 1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(starts.reshape(-1, 3) * 0.1)
    context.setVelocitiesToTemperature(TEMPERATURE * unit.kelvin, options.seed + 1)
    saved = []
    for block in range(options.steps // SAVE_EVERY):
        integrator.step(SAVE_EVERY)
        positions = (
            context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        )
        saved.append(np.asarray(positions).reshape(replicas, 5, 3))
        if (block + 1) % max(1, options.steps // SAVE_EVERY // 10) == 0:
            print(f"openmm: step {(block + 1) * SAVE_EVERY}/{options.steps}", flush=True)
    return np.stack(saved)


def per_replica_populations(positions: np.ndarray) -> dict[str, np.ndarray]:
    """``{state: [R]}`` α / β / αL fractions of every replica over the frames after the first fifth."""
    kept = positions[len(positions) // 5 :]
    angles = dihedrals(torch.as_tensor(kept.reshape(-1, 5, 3)), PHI_PSI).numpy().reshape(len(kept), -1, 2)
    rows = [state_populations(angles[:, r, 0], angles[:, r, 1]) for r in range(angles.shape[1])]
    return {state: np.array([row[state] for row in rows]) for state in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", help="a trained CG model (default: fitted priors + damped network)")
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--timestep-fs", type=float, default=2.0)
    parser.add_argument("--friction-per-ps", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/cg_openmm")
    options = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = np.load(FRAMES).astype(np.float64)
    model = load_potential(options.checkpoint).double() if options.checkpoint else default_model(frames)
    starts = frames[np.linspace(0, len(frames) - 1, options.replicas).astype(int)]
    runs = {"baoab": run_baoab(model, starts, options), "openmm": run_openmm(model, starts, options)}
    reference = dihedrals(torch.as_tensor(frames), PHI_PSI).numpy()
    summary: dict[str, dict] = {"reference": state_populations(reference[:, 0], reference[:, 1])}
    populations = {name: per_replica_populations(positions) for name, positions in runs.items()}
    for name, values in populations.items():
        summary[name] = {
            state: {"mean": float(v.mean()), "standard_error": float(v.std(ddof=1) / np.sqrt(len(v)))}
            for state, v in values.items()
        }
    summary["z_scores"] = {
        state: abs(summary["baoab"][state]["mean"] - summary["openmm"][state]["mean"])
        / max(
            np.hypot(summary["baoab"][state]["standard_error"], summary["openmm"][state]["standard_error"]),
            1e-12,
        )
        for state in populations["baoab"]
    }
    summary["agree_within_3_standard_errors"] = bool(max(summary["z_scores"].values()) < 3.0)
    summary["options"] = vars(options)
    (out / "populations.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'':>10} {'alpha':>16} {'beta':>16} {'alpha_L':>16}")
    for name in ("baoab", "openmm"):
        cells = [
            f"{summary[name][s]['mean']:.3f} ± {summary[name][s]['standard_error']:.3f}"
            for s in populations[name]
        ]
        print(f"{name:>10} " + " ".join(f"{c:>16}" for c in cells))
    print("reference  " + " ".join(f"{summary['reference'][s]:>16.3f}" for s in populations["baoab"]))
    print(
        "|difference| / combined standard error: "
        + ", ".join(f"{s} {z:.2f}" for s, z in summary["z_scores"].items())
    )
    kt = boltzmann_constant("kcal/mol") * TEMPERATURE
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    for axis, (name, positions) in zip(axes, runs.items(), strict=True):
        kept = positions[len(positions) // 5 :].reshape(-1, 5, 3)
        angles = dihedrals(torch.as_tensor(kept), PHI_PSI).numpy()
        surface = free_energy(ramachandran(angles[:, 0], angles[:, 1]), kt)
        image = axis.imshow(
            surface.T, origin="lower", extent=(-180, 180, -180, 180), vmax=6.0, cmap="viridis"
        )
        axis.set(title=f"{name}: (φ, ψ) free energy", xlabel="φ (degrees)")
    axes[0].set_ylabel("ψ (degrees)")
    figure.colorbar(image, ax=axes, label="kcal/mol")
    figure.savefig(out / "ramachandran.png", dpi=120)
    print(f"wrote {out / 'populations.json'} and {out / 'ramachandran.png'}")


if __name__ == "__main__":
    main()
