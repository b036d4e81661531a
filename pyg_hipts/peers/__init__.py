"""Other packages' models as potentials of this package, for comparisons at equal data, split and
budget (the ``peers`` extra: ``pip install -e ".[peers]"``).

- :class:`pyg_hipts.peers.mace.MacePotential`: MACE (``mace-torch``), on the package's pairs;
- :class:`pyg_hipts.peers.ani.AniPotential`: an ANI model (``torchani``) trained from scratch,
  its AEVs computed on the package's pairs;
- :class:`pyg_hipts.peers.hippynn.HippynnPotential`: hippynn's HIP-NN / HIP-NN-TS networks and
  hierarchical energy head, on the package's pairs.

Each is named by its class path in a model YAML (``configs/models/{mace,ani,hippynn_ts2}.yaml``)
and trains, validates and predicts through the same module, data module and CLI as every
potential. The submodules import their peer package; this one imports none.
"""
