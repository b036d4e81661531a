"""Trained potentials and coarse-grained force fields in OpenMM (needs the ``openmm`` extra).

- :mod:`.force`: any potential as an ``openmm.PythonForce``;
- :mod:`.plugin`: the ``pyg_hipts`` potential of OpenMM-ML (``MLPotential("pyg_hipts", ...)``);
- :mod:`.beads`: systems with the priors as native OpenMM forces, the rest as a Python force;
- :mod:`.files`: writing and reading those systems without pickled code;
- :mod:`.commands`: ``pyg-hipts openmm export`` and ``pyg-hipts openmm run``.
"""

from pyg_hipts.openmm.beads import add_rest, native_system, split_native
from pyg_hipts.openmm.force import PotentialEvaluator, potential_force

__all__ = ["PotentialEvaluator", "add_rest", "native_system", "potential_force", "split_native"]
