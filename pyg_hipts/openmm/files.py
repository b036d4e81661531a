"""The files of an exported OpenMM simulation, written and read without pickled code.

An export folder holds:

- ``system.xml``: the ``System`` with its particles, masses, box and native forces
  (:func:`~pyg_hipts.openmm.beads.native_system`), by OpenMM's ``XmlSerializer``;
- ``model.json``: the checkpoint of the potential, the species of one replica, the number of
  replicas and whether the system is periodic; the Python force of the rest is built from the
  checkpoint when the system is read (:func:`read_simulation_system`);
- ``start.xml``: the starting positions and box as an OpenMM ``State``; ``start.pdb`` the same
  to look at.

A ``System`` XML holding a ``PythonForce`` would unpickle a Python function when read, so
:func:`read_system` refuses it before OpenMM parses it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import openmm
from openmm import app

from pyg_hipts.openmm.beads import add_rest, split_native
from pyg_hipts.potentials import Potential, load_potential

PICKLED_FORCE = re.compile(r"<Force\b[^>]*\btype=\"PythonForce\"")


@dataclass
class ModelRecord:
    """``model.json``: ``checkpoint`` (absolute path), ``species`` of one replica, ``replicas``,
    ``periodic``."""

    checkpoint: str
    species: list[int]
    replicas: int
    periodic: bool

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> ModelRecord:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no model record; export the simulation first")
        try:
            fields = json.loads(path.read_text())
            return cls(
                str(fields["checkpoint"]),
                [int(s) for s in fields["species"]],
                int(fields["replicas"]),
                bool(fields["periodic"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a model record of pyg-hipts openmm export: {error}") from error


def write_system(system: openmm.System, path: Path) -> None:
    """``system`` as XML; refused when it holds a ``PythonForce`` (it would be stored as a pickle)."""
    text = openmm.XmlSerializer.serialize(system)
    if PICKLED_FORCE.search(text):
        raise ValueError("a System with a PythonForce is not written: it would be stored as pickled code")
    path.write_text(text)


def read_system(path: Path) -> openmm.System:
    """The ``System`` of an XML file, refused (before parsing) when it holds pickled code."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such system file")
    text = path.read_text()
    if PICKLED_FORCE.search(text):
        raise ValueError(f"{path}: holds a PythonForce, i.e. pickled code, which is never read")
    try:
        system = openmm.XmlSerializer.deserialize(text)
    except Exception as error:  # OpenMM raises a bare Exception for malformed XML
        raise ValueError(f"{path}: not an OpenMM System XML file: {error}") from error
    if not isinstance(system, openmm.System):
        raise ValueError(f"{path}: holds a {type(system).__name__}, not a System")
    return system


def bead_topology(species: list[int], replicas: int, elements: bool) -> app.Topology:
    """A topology of ``replicas`` residues of the particles ``species``: atoms of those elements
    when ``elements``, else beads ``B1, B2, …`` without an element."""
    topology = app.Topology()
    chain = topology.addChain()
    for replica in range(replicas):
        residue = topology.addResidue("MOL", chain, id=str(replica + 1))
        for index, number in enumerate(species):
            element = app.Element.getByAtomicNumber(number) if elements else None
            topology.addAtom(element.symbol if elements else f"B{index + 1}", element, residue)
    return topology


def read_simulation_system(
    folder: Path, device: str = "cpu", compile: bool = False
) -> tuple[openmm.System, ModelRecord, Potential]:
    """The complete ``System`` of an export folder: ``system.xml`` plus the Python force of the
    checkpoint's non-native terms (compiled for inference with ``compile``); also its record and
    the checkpoint's potential."""
    record = ModelRecord.read(folder / "model.json")
    system = read_system(folder / "system.xml")
    expected = len(record.species) * record.replicas
    if system.getNumParticles() != expected:
        raise ValueError(
            f"{folder / 'system.xml'} has {system.getNumParticles()} particles, the model record "
            f"{expected} ({record.replicas} × {len(record.species)})"
        )
    potential = load_potential(record.checkpoint)
    _, rest = split_native(potential)
    if rest is not None and compile:
        rest.compile_for_inference()
    add_rest(system, rest, record.species, record.periodic, record.replicas, device=device)
    return system, record, potential
