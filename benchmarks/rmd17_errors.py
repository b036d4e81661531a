"""Where the force error of a trained rMD17 model comes from: fitting or generalisation, and
which test frames leave the range the training frames sampled.

For a checkpoint and a molecule it prints, in meV/Å per force component:

- the force MAE on the 1000 training frames (``rmd17_<molecule>_train_01.npz``) and on the 1000
  test frames: their ratio is the generalisation gap;
- the test MAE per atom;
- the test frames with at least one interatomic distance outside the training range (by more
  than ``--margin`` Å), their share of the frames and of the summed error, and the MAE of the
  other frames.

Run from the project root, e.g.::

    python benchmarks/rmd17_errors.py --molecule ethanol \\
        --checkpoint runs/rmd17_benchmark/ethanol/version_0/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from rmd17_files import KCAL_TO_MEV, rmd17_file

from pyg_hipts.potentials import Potential, load_potential


def predicted_forces(model: Potential, z: np.ndarray, coords: np.ndarray, chunk: int = 100) -> np.ndarray:
    """Forces ``[F, n, 3]`` of ``model`` on frames ``coords [F, n, 3]`` of one molecule."""
    forces = []
    for start in range(0, len(coords), chunk):
        pos = torch.as_tensor(coords[start : start + chunk], dtype=torch.float32)
        frames, n = pos.shape[:2]
        batch = torch.arange(frames).repeat_interleave(n)
        out = model.predict(torch.as_tensor(z).repeat(frames), pos.reshape(-1, 3), batch)
        forces.append(out.forces.detach().view(frames, n, 3).numpy())
    return np.concatenate(forces)


def pair_distances(coords: np.ndarray) -> np.ndarray:
    """``[F, n(n−1)/2]`` interatomic distances of each frame."""
    first, second = np.triu_indices(coords.shape[1], k=1)
    return np.linalg.norm(coords[:, second] - coords[:, first], axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--molecule", default="ethanol")
    parser.add_argument("--margin", type=float, default=0.02, help="Å beyond the training range")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# python {' '.join(sys.argv)}", flush=True)
    model = load_potential(args.checkpoint)
    units = model.units
    if units is not None and units.force != "kcal/mol/Å":
        raise ValueError(f"{args.checkpoint}: trained on forces in {units.force}, rMD17 is in kcal/mol/Å")

    frame_errors = {}
    for split in ("train", "test"):
        with np.load(rmd17_file(args.molecule, split)) as data:
            z, coords, forces = data["nuclear_charges"], data["coords"], data["forces"]
        error = np.abs(predicted_forces(model, z, coords) - forces) * KCAL_TO_MEV
        frame_errors[split] = error.mean(axis=(1, 2))
        print(f"{split:5s} force MAE {error.mean():6.1f} meV/Å", flush=True)
        if split == "test":
            per_atom = " ".join(f"{z_i}:{e:.1f}" for z_i, e in zip(z, error.mean(axis=(0, 2)), strict=True))
            print(f"test force MAE per atom (Z:meV/Å): {per_atom}")
        distances = pair_distances(coords)
        if split == "train":
            low, high = distances.min(0), distances.max(0)
        else:
            outside = ((distances < low - args.margin) | (distances > high + args.margin)).any(axis=1)
    test = frame_errors["test"]
    print(f"generalisation gap (test / train force MAE): {test.mean() / frame_errors['train'].mean():.1f}")
    error_share = test[outside].sum() / test.sum()
    print(
        f"test frames with a distance outside the training range (±{args.margin} Å): {outside.sum()} "
        f"({100 * outside.mean():.1f} % of frames, {100 * error_share:.1f} % of the error); "
        f"MAE {test[outside].mean():.1f} meV/Å there, {test[~outside].mean():.1f} meV/Å on the others"
    )


if __name__ == "__main__":
    main()
