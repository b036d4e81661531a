"""``pyg-hipts cg refine``: one step of iterative Boltzmann inversion of a trained model's
one-dimensional dihedral priors, from a simulation of it (:mod:`pyg_hipts.cg.refine`).

The frames of ``--trajectory`` (``cg simulate`` output, after ``--discard_ps``) are compared
with the reference frames of ``--reference`` (the ``cg map`` output the model was trained on),
dihedral by dihedral; each prior is corrected by ``--damping`` times the difference of their
free energies. The refined model is written to ``--output`` with the checkpoint's masses, names
and temperature, ready for ``cg simulate --checkpoint``::

    pyg-hipts cg refine --checkpoint runs/cg/best.ckpt --reference runs/cg/ala2_cg.npz \\
        --trajectory runs/cg/md_short/trajectory.npz --output runs/cg/refined.pt
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pyg_hipts.cg.refine import refine_dihedral_priors
from pyg_hipts.cg_workflow.analyze import read_reference, read_simulation
from pyg_hipts.cg_workflow.options import command_parser
from pyg_hipts.potentials import load_potential, save_potential
from pyg_hipts.train.checkpoints import checkpoint_system
from pyg_hipts.units import boltzmann_constant


def refine(options: Any) -> Path:
    """Refine and write the model (see the module docstring); returns the output path."""
    model = load_potential(options.checkpoint).double()
    system = checkpoint_system(options.checkpoint)
    temperature = options.temperature or system.temperature
    if temperature is None:
        raise ValueError(f"{options.checkpoint} records no temperature: give --temperature (K)")
    reference = read_reference(Path(options.reference))
    simulated = read_simulation(Path(options.trajectory), options.discard_ps).positions
    n = simulated.shape[-2]
    changes = refine_dihedral_priors(
        model,
        torch.as_tensor(reference.positions[:, 0]),
        torch.as_tensor(simulated.reshape(-1, n, 3)),
        boltzmann_constant(model.units.energy) * temperature,
        options.damping,
        reference.weights,
    )
    output = save_potential(model, options.output, extra={"system": system.as_dict()})
    print(
        f"wrote {output}: dihedral priors corrected by iterative Boltzmann inversion at {temperature:g} K "
        f"(RMS change over the reference frames, {model.units.energy}: "
        + ", ".join(f"{name} {value:.3f}" for name, value in changes.items())
        + ")"
    )
    return output


def parser():
    """Options of ``pyg-hipts cg refine``."""
    parser = command_parser("refine", __doc__)
    parser.add_argument("--checkpoint", required=True, help="trained model (checkpoint or refined file)")
    parser.add_argument("--reference", required=True, help="the mapped reference frames (cg map output)")
    parser.add_argument("--trajectory", required=True, help="a cg simulate trajectory.npz of the model")
    parser.add_argument("--output", required=True, help="refined model file to write")
    parser.add_argument("--discard_ps", type=float, default=0.0, help="equilibration dropped from the run")
    parser.add_argument("--damping", type=float, default=1.0, help="fraction of the correction applied")
    parser.add_argument("--temperature", type=float, help="K (default: the checkpoint's)")
    return parser


def main(args: list[str]) -> Path:
    return refine(parser().parse_args(args))
