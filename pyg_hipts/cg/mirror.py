"""How a coarse-grained model weighs a structure against its mirror image: populations of the two
halves of the Ramachandran plane without sampling the crossing between them.

Inversion ``σ: R ↦ −R`` flips the sign of every dihedral, so it maps the half ``φ < 0`` onto
``φ > 0`` (α onto the mirror of α, β onto the mirror of β), and it preserves volume. For a model
of energy ``U`` the configurational integrals of a region ``A`` and of its image therefore obey

    Z(σA) / Z(A) = ⟨exp(−ΔU / kT)⟩_A,    ΔU(R) = U(σR) − U(R),

the average taken over the model's own Boltzmann ensemble restricted to ``A`` (free-energy
perturbation along the mirror map). Frames of a simulation that stays on one side (the barrier at
``φ = 0`` is not crossed in the run) still sample that side's local equilibrium, so

    p(φ > 0) / p(φ < 0) = ⟨exp(−ΔU / kT)⟩_{φ<0},

and the α and β populations follow from their shares within ``φ < 0``. A model of O(3)-invariant
features has ``ΔU = 0`` and puts exactly half the population at ``φ > 0``; pseudoscalar features
(:mod:`pyg_hipts.nn`) make ``ΔU`` non-zero. Frames on the other side give the reverse ratio,
``p(φ < 0) / p(φ > 0) = ⟨exp(−ΔU / kT)⟩_{φ>0}``, an independent check of the same number.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyg_hipts.cg.analysis import state_populations
from pyg_hipts.cg.priors import dihedrals
from pyg_hipts.potentials import Potential


def mirror_energy_differences(model: Potential, z: Tensor, positions: Tensor, chunk: int = 2000) -> Tensor:
    """``ΔU [F] = U(−R) − U(R)`` of frames ``positions [F, n, 3]`` of one molecule of bead types
    ``z [n]``, in the model's energy unit (float64; ``chunk`` frames per evaluation)."""
    n = positions.shape[1]
    differences = []
    for start in range(0, len(positions), chunk):
        frames = positions[start : start + chunk].double()
        both = torch.cat([frames, -frames])  # [2f, n, 3]: the frames, then their images
        batch = torch.arange(len(both)).repeat_interleave(n)
        energy = model.predict(z.repeat(len(both)), both.reshape(-1, 3), batch, forces=False).energy
        original, mirrored = energy.reshape(2, -1).detach()
        differences.append(mirrored - original)
    return torch.cat(differences)


def mirror_populations(
    model: Potential, z: Tensor, positions: Tensor, beads: list[int], thermal_energy: float
) -> dict[str, float]:
    """α / β / αL populations of ``model`` from its simulated frames ``positions [F, n, 3]``
    (φ = dihedral ``beads[0:4]``, ψ = ``beads[1:5]``; see the module docstring), with
    ``frames_below`` / ``frames_above`` (frames with φ < 0 / φ ≥ 0) and ``ratio_from_below`` /
    ``ratio_from_above``, the two estimates of ``p(φ > 0) / p(φ < 0)``."""
    angles = dihedrals(positions.double(), torch.tensor([beads[:4], beads[1:]])).numpy()
    phi, psi = angles[:, 0], angles[:, 1]
    below = phi < 0
    if not below.any():
        raise ValueError("no frame with φ < 0: the mirror estimate needs the φ < 0 side sampled")
    factors = torch.exp(-mirror_energy_differences(model, z, positions) / thermal_energy).numpy()
    ratio = float(factors[below].mean())
    shares = state_populations(phi[below], psi[below])
    return {
        "alpha": shares["alpha"] / (1.0 + ratio),
        "beta": shares["beta"] / (1.0 + ratio),
        "alpha_L": ratio / (1.0 + ratio),
        "frames_below": int(below.sum()),
        "frames_above": int((~below).sum()),
        "ratio_from_below": ratio,
        "ratio_from_above": float(1.0 / factors[~below].mean()) if (~below).any() else float("nan"),
    }


def format_mirror_populations(result: dict[str, float]) -> str:
    """One line of :func:`mirror_populations`' result."""
    return (
        f"alpha {100 * result['alpha']:.1f} %, beta {100 * result['beta']:.1f} %, "
        f"alpha_L {100 * result['alpha_L']:.1f} % (p(φ>0)/p(φ<0) = {result['ratio_from_below']:.4g} from "
        f"{result['frames_below']} frames with φ < 0, {result['ratio_from_above']:.4g} from "
        f"{result['frames_above']} with φ > 0)"
    )
