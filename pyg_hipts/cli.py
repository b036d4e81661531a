"""The ``pyg-hipts`` command; every subcommand is registered here.

- ``fit``, ``validate``, ``test``, ``predict``: Lightning's CLI (:mod:`pyg_hipts.train.cli`);
- ``cg map`` / ``cg simulate`` / ``cg analyze``: coarse-graining (:mod:`pyg_hipts.cg_workflow`);
- ``compare``: several models on the same data and budget (:mod:`pyg_hipts.compare.runner`);
- ``ensemble``: members differing by seed (:mod:`pyg_hipts.ensemble.train`);
- ``label``: an ensemble's mean forces and atom energies as labels (:mod:`pyg_hipts.ensemble.labels`);
- ``export``: a potential as an AOTInductor package run by torch alone (:mod:`pyg_hipts.potentials.export`);
- ``prepare``: a data file into a memory-mapped prepared dataset (:mod:`pyg_hipts.data.prepare`);
- ``openmm export`` / ``openmm run``: simulations in OpenMM (:mod:`pyg_hipts.openmm.commands`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from lightning.pytorch.cli import ArgsType

WORKFLOWS = {
    "cg": "pyg_hipts.cg_workflow",
    "compare": "pyg_hipts.compare.runner",
    "ensemble": "pyg_hipts.ensemble.train",
    "export": "pyg_hipts.potentials.export",
    "label": "pyg_hipts.ensemble.labels",
    "openmm": "pyg_hipts.openmm.commands",
    "prepare": "pyg_hipts.data.prepare",
}
"""Subcommands outside Lightning's: name -> module with ``main(args: list[str])``."""


def run_cli(args: ArgsType = None) -> Any:
    """Run ``pyg-hipts`` on ``args`` (``sys.argv[1:]`` when ``None``); returns the Lightning CLI
    object for Lightning's subcommands, the workflow's result otherwise."""
    arguments = list(sys.argv[1:] if args is None else args)
    if arguments[:1] and arguments[0] in WORKFLOWS:
        return importlib.import_module(WORKFLOWS[arguments[0]]).main(arguments[1:])
    from pyg_hipts.train.cli import run_fit_cli

    return run_fit_cli(args)


def main(args: ArgsType = None) -> None:
    """Entry point of the ``pyg-hipts`` command (returns nothing: a console script exits with it)."""
    run_cli(args)


if __name__ == "__main__":
    main()
