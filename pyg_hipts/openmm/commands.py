"""``pyg-hipts openmm export`` and ``pyg-hipts openmm run``: a trained potential (all-atom or
coarse-grained, molecular or periodic) simulated in OpenMM without a script.

``export`` writes a folder (:mod:`pyg_hipts.openmm.files`) from a checkpoint and a starting
structure read by the package's readers; ``run`` integrates it with OpenMM's
``LangevinMiddleIntegrator`` (or ``VerletIntegrator`` for NVE) and writes ``trajectory.dcd``,
``log.csv`` and ``state.xml`` (positions and velocities); ``run --continue`` resumes from
``state.xml``. Masses are the elements' for all-atom models; a model with coarse-grained priors
needs ``--masses`` (amu, one per bead). The temperature defaults to the one the priors were
fitted at.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import yaml
from openmm import app, unit

from pyg_hipts.data import read_dataset
from pyg_hipts.openmm.beads import flat_terms, native_system, split_native
from pyg_hipts.openmm.files import ModelRecord, bead_topology, read_simulation_system, write_system
from pyg_hipts.openmm.force import Scales
from pyg_hipts.potentials import Potential, load_potential
from pyg_hipts.units import length_factor


def model_temperature(potential: Potential) -> float | None:
    """The temperature (K) the potential's priors were fitted at, ``None`` without priors."""
    temperatures = {
        t.temperature for t in flat_terms(potential) if getattr(t, "temperature", None) is not None
    }
    if len(temperatures) > 1:
        raise ValueError(f"the priors were fitted at different temperatures {sorted(temperatures)}")
    return temperatures.pop() if temperatures else None


def starting_positions(options: argparse.Namespace) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """``(positions [R, n, 3] nm, species [n], box [3, 3] nm or None)`` of the chosen frames."""
    reader_options: dict[str, Any] = yaml.safe_load(options.reader_options) or {}
    dataset = read_dataset(options.structure, options.format, **reader_options)
    to_nm = length_factor(dataset.units.length, "nm")
    frames = [options.frames[r % len(options.frames)] for r in range(options.replicas)]
    for frame in frames:
        if not 0 <= frame < len(dataset):
            raise ValueError(f"{options.structure}: no frame {frame} (it has {len(dataset)})")
    chosen = [dataset[f] for f in frames]
    species = chosen[0].z.tolist()
    for frame, data in zip(frames, chosen, strict=True):
        if data.z.tolist() != species:
            raise ValueError(f"{options.structure}: frame {frame} has other species than frame {frames[0]}")
    positions = np.stack([data.pos.double().numpy() * to_nm for data in chosen])
    box = None
    if getattr(chosen[0], "cell", None) is not None:
        box = chosen[0].cell.double().numpy().reshape(3, 3) * to_nm
        if not all(np.allclose(d.cell.double().numpy().reshape(3, 3) * to_nm, box) for d in chosen):
            raise ValueError(f"{options.structure}: frames {frames} have different cells")
    return positions, species, box


def write_start(system: openmm.System, positions: np.ndarray, box: np.ndarray | None, path: Path) -> None:
    """The starting positions ``[N, 3]`` (nm) and box as an OpenMM ``State`` XML file."""
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    if box is not None:
        context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in box.tolist()))
    context.setPositions(positions)
    path.write_text(openmm.XmlSerializer.serialize(context.getState(getPositions=True)))


def export(options: argparse.Namespace) -> Path:
    potential = load_potential(options.checkpoint)
    positions, species, box = starting_positions(options)
    native, _ = split_native(potential)
    if options.masses is None:
        if native:
            raise ValueError(
                "the model has coarse-grained priors: give --masses, one per bead (amu), "
                f"for the {len(species)} beads"
            )
        masses = [app.Element.getByAtomicNumber(s).mass.value_in_unit(unit.dalton) for s in species]
    else:
        masses = options.masses
    model_box = None if box is None else box * Scales(potential.units).length
    system, _ = native_system(potential, species, masses, options.replicas, model_box)
    folder = Path(options.output)
    folder.mkdir(parents=True, exist_ok=True)
    write_system(system, folder / "system.xml")
    record = ModelRecord(str(Path(options.checkpoint).resolve()), species, options.replicas, box is not None)
    record.write(folder / "model.json")
    write_start(system, positions.reshape(-1, 3), box, folder / "start.xml")
    topology = bead_topology(species, options.replicas, elements=not native)
    if box is not None:
        topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in box.tolist()] * unit.nanometer)
    with open(folder / "start.pdb", "w") as handle:
        app.PDBFile.writeFile(topology, positions.reshape(-1, 3) * unit.nanometer, handle)
    print(
        f"wrote {folder}: {options.replicas} replica(s) of {len(species)} particles, "
        f"{system.getNumForces()} native force(s); run it with: pyg-hipts openmm run {folder}"
    )
    return folder


def run(options: argparse.Namespace) -> Path:
    folder = Path(options.folder)
    system, record, potential = read_simulation_system(folder, options.device, options.compile)
    temperature = options.temperature
    if temperature is None:
        temperature = model_temperature(potential)
        if temperature is None and options.integrator == "langevin":
            raise ValueError("the model records no temperature: give --temperature (K)")
    if options.integrator == "langevin":
        integrator = openmm.LangevinMiddleIntegrator(
            temperature * unit.kelvin,
            options.friction_per_ps / unit.picosecond,
            options.timestep_fs * unit.femtosecond,
        )
        integrator.setRandomNumberSeed(options.seed)
    else:
        integrator = openmm.VerletIntegrator(options.timestep_fs * unit.femtosecond)
    topology = bead_topology(record.species, record.replicas, elements=False)  # masses are the system's
    platform = openmm.Platform.getPlatformByName(options.platform)
    simulation = app.Simulation(topology, system, integrator, platform)
    state_file = folder / "state.xml"
    if options.resume and not state_file.is_file():
        raise FileNotFoundError(f"{state_file}: nothing to continue from; run without --continue first")
    simulation.loadState(str(state_file if options.resume else folder / "start.xml"))
    if not options.resume and temperature is not None:
        simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, options.seed)
    every = options.report_every
    simulation.reporters.append(app.DCDReporter(str(folder / "trajectory.dcd"), every, append=options.resume))
    columns = {
        "step": True,
        "time": True,
        "potentialEnergy": True,
        "kineticEnergy": True,
        "totalEnergy": True,
    }
    with open(folder / "log.csv", "a" if options.resume else "w") as log:
        log_reporter = app.StateDataReporter(log, every, temperature=True, append=options.resume, **columns)
        simulation.reporters.append(log_reporter)
        simulation.reporters.append(
            app.StateDataReporter(
                sys.stdout,
                every,
                step=True,
                progress=True,
                remainingTime=True,
                speed=True,
                totalSteps=simulation.currentStep + options.steps,
            )
        )
        simulation.step(options.steps)
    simulation.saveState(str(state_file))
    print(f"ran {options.steps} steps; wrote {folder / 'trajectory.dcd'}, {folder / 'log.csv'}, {state_file}")
    return folder


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="pyg-hipts openmm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="write an OpenMM simulation folder from a checkpoint")
    out.add_argument("--checkpoint", required=True, help="training checkpoint or saved potential")
    out.add_argument("--structure", required=True, help="starting structure(s), any readable format")
    out.add_argument("--format")
    out.add_argument("--reader_options", default="{}", help="YAML mapping for the reader")
    out.add_argument("--frames", type=int, nargs="+", default=[0], help="frames the replicas start from")
    out.add_argument("--replicas", type=int, default=1, help="copies simulated at once (cycling --frames)")
    out.add_argument("--masses", type=float, nargs="+", help="amu per particle (required for CG models)")
    out.add_argument("--output", required=True, help="folder to write")
    go = commands.add_parser("run", help="run an exported simulation folder")
    go.add_argument("folder")
    go.add_argument("--steps", type=int, required=True)
    go.add_argument("--timestep_fs", type=float, default=1.0)
    go.add_argument("--temperature", type=float, help="K (default: the model's prior temperature)")
    go.add_argument("--friction_per_ps", type=float, default=1.0)
    go.add_argument("--integrator", choices=("langevin", "verlet"), default="langevin")
    go.add_argument("--report_every", type=int, default=100)
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--platform", default="CPU", help="OpenMM platform (CPU, Reference, CUDA, ...)")
    go.add_argument("--device", default="cpu", help="torch device of the Python force")
    go.add_argument("--compile", action="store_true", help="compile the Python force's potential")
    go.add_argument("--continue", dest="resume", action="store_true", help="continue from state.xml")
    return main_parser


def main(args: list[str]) -> Path:
    options = parser().parse_args(args)
    return export(options) if options.command == "export" else run(options)
