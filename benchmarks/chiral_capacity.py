"""Can HIP-NN learn a chiral mean force by force matching? A synthetic test on CG alanine dipeptide.

The cgnet frames (5 backbone beads) get the target energy ``E = A (sin φ + sin ψ)`` (kcal/mol),
which is odd under reflection (``φ, ψ → −φ, −ψ``), and its forces ``−∇E``, optionally plus
Gaussian noise of standard deviation ``σ`` per component (the real CG forces carry noise of about
20 kcal/mol/Å). HIP-NN with and without the pseudoscalar features is fitted to the forces alone
on the first 80 % of the trajectory (time blocks) and tested on the last 10 % against the
noise-free target. A reflection-invariant model sees ``(φ, ψ)`` and ``(−φ, −ψ)`` alike, so it can
follow an odd target only where a dihedral keeps one sign in the frames (there ``sin φ`` is a
function of ``cos φ``).

First printed: how much of the frames' (φ, ψ) plane is seen together with its mirror image
(:func:`mirror_coverage`). Force matching learns the gradient of the mean-force potential
where frames are; the part odd under reflection is fixed only where a region and its mirror
image are both sampled, or along sampled paths between them.

Printed per run: the unexplained fraction of the target's force variance on the test frames,
``⟨|F_pred − F|²⟩ / ⟨|F|²⟩``, and the Pearson correlation of predicted and target energies.

    python benchmarks/chiral_capacity.py --epochs 40 --noise 0 20 --threads 1
    python benchmarks/chiral_capacity.py --noise    # the coverage alone
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pyg_hipts.cg.analysis import ramachandran, state_populations
from pyg_hipts.cg.priors import dihedrals
from pyg_hipts.nn import HipNN

CGNET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cgnet_ala2" / "ala2_coordinates.npy"
PHI_PSI = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
SPECIES = torch.tensor([1, 2, 3, 1, 2])
SIZES = dict(n_features=64, n_sensitivities=16, dist_soft_min=1.0, dist_soft_max=5.5, dist_hard_max=6.0)


def chiral_target(pos: torch.Tensor, amplitude: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``pos [B, 5, 3]`` -> energies ``[B]`` ``A (sin φ + sin ψ)`` and forces ``[B, 5, 3]``."""
    pos = pos.clone().requires_grad_(True)
    energy = amplitude * torch.sin(dihedrals(pos, PHI_PSI)).sum(-1)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), -grad


def mirror_coverage(phi: np.ndarray, psi: np.ndarray, n_bins: int = 18) -> dict[str, float]:
    """Fractions of frames (``phi``, ``psi`` ``[B]`` in radians): with ``φ > 0``; within 30° of
    ``φ = 0`` (the crossing between the two halves); in a bin of the ``n_bins²`` Ramachandran
    histogram whose mirror bin ``(−φ, −ψ)`` holds frames too."""
    probability = ramachandran(phi, psi, n_bins)
    mirrored = (probability > 0) & (probability[::-1, ::-1] > 0)
    return {
        "with φ > 0": state_populations(phi, psi)["alpha_L"],
        "with |φ| < 30°": float((np.abs(phi) < np.radians(30.0)).mean()),
        f"in a {360 / n_bins:g}° bin whose mirror bin is sampled": float(probability[mirrored].sum()),
    }


def fit(
    pos: torch.Tensor,
    forces: torch.Tensor,
    test_pos: torch.Tensor,
    test_forces: torch.Tensor,
    test_energy: torch.Tensor,
    pseudoscalars: bool,
    epochs: int,
    seed: int,
) -> tuple[float, float]:
    """Force-match a fresh HIP-NN on ``pos [B, 5, 3]`` / ``forces [B, 5, 3]``.

    Returns the unexplained force fraction and the energy correlation on the test frames.
    """
    torch.manual_seed(seed)
    model = HipNN(
        [1, 2, 3], n_interaction_layers=2, n_atom_layers=2, l_max=2, pseudoscalars=pseudoscalars, **SIZES
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n_frames, batch_size = len(pos), 128

    def flat(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        count = len(frames)
        return SPECIES.repeat(count), frames.reshape(-1, 3), torch.arange(count).repeat_interleave(5)

    for _ in range(epochs):
        for chunk in torch.randperm(n_frames).split(batch_size):
            z, xyz, mol = flat(pos[chunk])
            out = model.predict(z, xyz, mol, create_graph=True)
            loss = (out.forces - forces[chunk].reshape(-1, 3)).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    z, xyz, mol = flat(test_pos)
    out = model.predict(z, xyz, mol)
    target = test_forces.reshape(-1, 3)
    unexplained = float((out.forces.detach() - target).square().sum() / target.square().sum())
    energy = out.energy.detach().flatten()
    correlation = float(torch.corrcoef(torch.stack([energy, test_energy]))[0, 1])
    return unexplained, correlation


def _coords(path: str) -> torch.Tensor:
    """The bead positions ``coords [F, 5, 3]`` of a CG training file."""
    with np.load(path) as arrays:
        return torch.as_tensor(arrays["coords"], dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--amplitude", type=float, default=1.0, help="A in kcal/mol")
    parser.add_argument("--noise", type=float, nargs="*", default=[0.0, 20.0], help="σ in kcal/mol/Å")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--coverage_of", nargs="*", default=[], help="CG training files (npz, 5 ala2 beads) to cover too"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    coords = torch.as_tensor(np.load(CGNET), dtype=torch.float32)
    energy, forces = chiral_target(coords, args.amplitude)
    n_train, n_test = int(0.8 * len(coords)), int(0.1 * len(coords))
    test = slice(len(coords) - n_test, None)
    for source, frames in [("cgnet", coords)] + [(path, _coords(path)) for path in args.coverage_of]:
        phi, psi = dihedrals(frames, PHI_PSI).double().numpy().T
        for name, fraction in mirror_coverage(phi, psi).items():
            print(f"# {source}: frames {name}: {100 * fraction:.2f} %")
    if not args.noise:
        return
    print(f"# {len(coords)} cgnet frames; train on the first {n_train}, test on the last {n_test}")
    print(f"# target A (sin φ + sin ψ), A = {args.amplitude} kcal/mol", end="; ")
    print(f"{args.epochs} epochs, {args.threads} thread(s)")
    print(
        "| noise σ (kcal/mol/Å) | pseudoscalars | unexplained force fraction | energy correlation | minutes |"
    )
    print("|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(args.seed)
    for sigma in args.noise:
        noisy = forces[:n_train] + sigma * torch.randn(forces[:n_train].shape, generator=generator)
        for pseudoscalars in (False, True):
            start = time.perf_counter()
            unexplained, correlation = fit(
                coords[:n_train],
                noisy,
                coords[test],
                forces[test],
                energy[test],
                pseudoscalars,
                args.epochs,
                args.seed,
            )
            minutes = (time.perf_counter() - start) / 60
            print(
                f"| {sigma:g} | {pseudoscalars} | {unexplained:.3f} | {correlation:+.3f} | {minutes:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
