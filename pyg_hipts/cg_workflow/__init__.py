"""Coarse-graining from the command line: ``pyg-hipts cg map | simulate | refine | analyze``.

1. ``cg map``: all-atom frames with forces -> a coarse-grained training file with bead types,
   masses, names, temperature, frame times and units (:mod:`.map_frames`);
2. ``pyg-hipts fit`` on it (its frames are a time series, so the split is by time blocks);
3. ``cg simulate``: Langevin replicas of the trained model, with masses, types, temperature and
   units from the checkpoint; the trajectory and a final state with velocities, ``--continue``
   (:mod:`.simulate`);
4. ``cg refine`` (optional): one step of iterative Boltzmann inversion of the one-dimensional
   dihedral priors from a short simulation, for basin populations that force matching leaves
   wrong (:mod:`.refine`);
5. ``cg analyze``: distributions, free energies, populations and Jensen–Shannon divergences
   against the mapped reference, with block averages (:mod:`.analyze`).
"""

from __future__ import annotations

import importlib
from typing import Any

COMMANDS = {
    "map": "pyg_hipts.cg_workflow.map_frames",
    "simulate": "pyg_hipts.cg_workflow.simulate",
    "refine": "pyg_hipts.cg_workflow.refine",
    "analyze": "pyg_hipts.cg_workflow.analyze",
}


def main(args: list[str]) -> Any:
    """Run ``pyg-hipts cg <command> ...``."""
    if not args or args[0] not in COMMANDS:
        raise SystemExit(f"usage: pyg-hipts cg {{{','.join(COMMANDS)}}} [options]; --help after a command")
    return importlib.import_module(COMMANDS[args[0]]).main(args[1:])
