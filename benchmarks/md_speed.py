"""MD steps per second: OpenMM vs the ASE calculator vs the package's BAOAB, eager vs compiled.

Systems, each with the model of its shipped config (random weights; the speed does not depend
on them): rMD17 ethanol (9 atoms, ``configs/quickstart.yaml``), the deepmd water box (192
atoms) and a 4 × 4 × 4 tiling of it (12,288 atoms), both periodic with ``configs/water.yaml``,
and coarse-grained alanine dipeptide (5 beads, ``configs/cg_ala2.yaml``: priors fitted on the
cgnet frames + HIP-NN-TS) as 100 replicas at once. Engines, all Langevin at 300 K, 1 fs:

- ``openmm``: ``LangevinMiddleIntegrator`` on the CPU platform, the model as a ``PythonForce``
  (``MLPotential("pyg_hipts")``; the CG priors as native forces);
- ``ase``: ``ase.md.langevin.Langevin`` with :class:`~pyg_hipts.calculators.HipCalculator`
  (one structure: not run for the CG replicas);
- ``baoab``: :func:`pyg_hipts.md.run_langevin` (all replicas as one batch).

Each runs eager and compiled (:meth:`~pyg_hipts.potentials.Potential.compile_for_inference`);
the time excludes the first steps (set-up and compilation). Run from the repository root::

    python benchmarks/md_speed.py --threads 1 [--dtype float32] [--systems ethanol water water12k cg_ala2]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openmm
import torch
import yaml
from ase import Atoms
from ase.md.langevin import Langevin
from ase.units import fs
from openmm import app, unit
from openmmml import MLPotential

from pyg_hipts.allocator import keep_freed_memory
from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cg import TopologyPrior
from pyg_hipts.data import AtomsDataset, embedded_dataset_path, make_frame, read_deepmd
from pyg_hipts.md import run_langevin
from pyg_hipts.nn import HipNN
from pyg_hipts.openmm import add_rest, native_system
from pyg_hipts.openmm.files import bead_topology
from pyg_hipts.potentials import Potential, SumPotential
from pyg_hipts.units import Units

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CG_MASSES = [12.011, 14.007, 12.011, 12.011, 14.007]
CG_TYPES = [1, 2, 3, 1, 2]


def config_terms(name: str) -> list[dict]:
    """The ``{class_path, init_args}`` of the model terms of ``configs/<name>.yaml``."""
    model = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())["model"]["model"]
    return model["init_args"]["terms"] if model["class_path"].endswith("SumPotential") else [model]


def network(name: str, species: list[int], units: Units) -> HipNN:
    arguments = next(t["init_args"] for t in config_terms(name) if t["class_path"].endswith("HipNN"))
    torch.manual_seed(0)
    return HipNN(species, units=units, **arguments)


def cg_model() -> tuple[Potential, np.ndarray]:
    """Priors of ``configs/cg_ala2.yaml`` fitted on 2000 cgnet frames, plus its network."""
    frames = np.load(SHARED / "cgnet_ala2" / "ala2_coordinates.npy")[:2000].astype(np.float64)
    units = Units("Å", "kcal/mol")
    arguments = next(
        t["init_args"] for t in config_terms("cg_ala2") if t["class_path"].endswith("TopologyPrior")
    )
    prior = TopologyPrior([1, 2, 3], **arguments, temperature=300.0)  # the cgnet simulation
    model = SumPotential([1, 2, 3], [prior, network("cg_ala2", [1, 2, 3], units)], units)
    data = AtomsDataset(
        [make_frame(np.array(CG_TYPES), p, None, dtype=torch.float64) for p in frames], units, "cgnet ala2"
    )
    prior.pre_fit(data)
    with torch.no_grad():  # an untrained network small next to the priors, so the dynamics stay sane
        for parameter in model.terms[1].parameters():
            parameter.mul_(0.1)
    return model, frames


def systems(names: list[str]) -> dict[str, dict]:
    """Per system: ``model``, ``z [n]``, ``start [R, n, 3]`` (Å), ``masses [n]``, ``cell`` or None."""
    found = {}
    if "ethanol" in names:
        data = np.load(embedded_dataset_path("ethanol"))
        z = data["nuclear_charges"].tolist()
        found["ethanol"] = dict(
            model=network("quickstart", [1, 6, 8], Units("Å", "kcal/mol")),
            z=z,
            start=data["coords"][:1],
            cell=None,
        )
    water = read_deepmd(SHARED / "deepmd_water" / "data_0", dtype=torch.float64)[0]
    for name, tiles in (("water", 1), ("water12k", 4)):
        if name in names:
            box = water.cell[0].numpy()
            shifts = np.stack(np.meshgrid(*[np.arange(tiles)] * 3, indexing="ij"), -1).reshape(-1, 3) @ box
            pos = (water.pos.numpy()[None] + shifts[:, None]).reshape(1, -1, 3)
            found[name] = dict(
                model=network("water", [1, 8], Units("Å", "eV")),
                z=water.z.tolist() * len(shifts),
                start=pos,
                cell=box * tiles,
            )
    if "cg_ala2" in names:
        model, frames = cg_model()
        found["cg_ala2"] = dict(model=model, z=CG_TYPES, start=frames[:100], cell=None, masses=CG_MASSES)
    for system in found.values():
        if "masses" not in system:
            system["masses"] = [
                app.Element.getByAtomicNumber(s).mass.value_in_unit(unit.dalton) for s in system["z"]
            ]
    return found


def per_second(run: Callable[[int], None], steps: int, warmup: int) -> float:
    run(warmup)
    start = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - start)


def openmm_steps(system: dict, model: Potential, threads: int) -> Callable[[int], None]:
    replicas, n = system["start"].shape[:2]
    if isinstance(model, SumPotential) and any(isinstance(t, TopologyPrior) for t in model.terms):
        mm_system, rest = native_system(model, system["z"], system["masses"], replicas)
        if model.is_compiled and rest is not None:
            rest.compile_for_inference()  # the rest is a new potential of the (eager) terms
        add_rest(mm_system, rest, system["z"], periodic=False, replicas=replicas, dtype=model.dtype)
    else:
        topology = bead_topology(system["z"], 1, elements=True)
        if system["cell"] is not None:
            topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in (system["cell"] * 0.1).tolist()])
        dtype = str(model.dtype).removeprefix("torch.")
        mm_system = MLPotential("pyg_hipts", potential=model, dtype=dtype).createSystem(topology)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(mm_system, integrator, platform, {"Threads": str(threads)})
    if system["cell"] is not None:
        context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in (system["cell"] * 0.1).tolist()))
    context.setPositions(system["start"].reshape(-1, 3) * 0.1)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 0)

    def run(steps: int) -> None:
        integrator.step(steps)
        assert context.getSystem().getNumParticles() > 0  # the context lives as long as the runner

    return run


def ase_steps(system: dict, model: Potential) -> Callable[[int], None]:
    cell = system["cell"]
    atoms = Atoms(
        numbers=system["z"],
        positions=system["start"][0],
        cell=cell,
        pbc=cell is not None,
        masses=system["masses"],
    )
    atoms.calc = HipCalculator(model, dtype=model.dtype)
    dynamics = Langevin(atoms, 1 * fs, temperature_K=300, friction=0.001 / fs, rng=np.random.default_rng(0))
    return dynamics.run


def baoab_steps(system: dict, model: Potential) -> Callable[[int], None]:
    dtype = model.dtype
    start = torch.as_tensor(system["start"], dtype=dtype)
    cell = None if system["cell"] is None else torch.as_tensor(system["cell"], dtype=dtype)
    pbc = None if cell is None else torch.ones(3, dtype=torch.bool)
    masses = torch.as_tensor(system["masses"], dtype=dtype)

    def run(steps: int) -> None:
        run_langevin(
            model,
            torch.as_tensor(system["z"]),
            start,
            masses,
            temperature=300.0,
            timestep_fs=1.0,
            friction_per_ps=1.0,
            n_steps=steps,
            save_every=steps,
            cell=cell,
            pbc=pbc,
        )

    return run


def engine_steps(engine: str, system: dict, model: Potential, threads: int) -> Callable[[int], None]:
    """``run(steps)`` of ``engine`` on ``system`` with ``model``."""
    if engine == "openmm":
        return openmm_steps(system, model, threads)
    return ase_steps(system, model) if engine == "ase" else baoab_steps(system, model)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--systems", nargs="+", default=["ethanol", "water", "water12k", "cg_ala2"])
    parser.add_argument("--engines", nargs="+", default=["openmm", "ase", "baoab"])
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    keep_freed_memory()  # the 12k box (docs/speed.md)
    steps = {"ethanol": (200, 20), "water": (40, 5), "water12k": (4, 2), "cg_ala2": (100, 10)}
    print(f"threads {options.threads}, {options.dtype}; steps/s (timed steps after warm-up steps)")
    print(f"{'system':>9} {'atoms':>6} {'engine':>7} {'eager':>9} {'compiled':>9} {'compiled/eager':>15}")
    for name, system in systems(options.systems).items():
        eager = system["model"].to(getattr(torch, options.dtype)).eval()
        compiled = copy.deepcopy(eager).compile_for_inference()
        timed, warmup = steps[name]
        rates: dict[str, dict[str, float]] = {}
        for engine in options.engines:
            if engine == "ase" and system["start"].shape[0] > 1:
                continue  # one structure per calculator
            for label, model in (("eager", eager), ("compiled", compiled)):
                run = engine_steps(engine, system, model, options.threads)
                rates.setdefault(engine, {})[label] = per_second(run, timed, warmup)
            rate = rates[engine]
            atoms = system["start"].shape[0] * system["start"].shape[1]
            print(
                f"{name:>9} {atoms:>6} {engine:>7} {rate['eager']:9.2f} {rate['compiled']:9.2f} "
                f"{rate['compiled'] / rate['eager']:15.2f}",
                flush=True,
            )
        for engine in ("ase", "baoab"):
            if engine in rates and "openmm" in rates:
                ratio = rates["openmm"]["eager"] / rates[engine]["eager"]
                print(f"{name:>9}: openmm / {engine} (eager) = {ratio:.2f}")


if __name__ == "__main__":
    main()
