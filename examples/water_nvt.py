"""Train HIP-NN-TS on periodic liquid water, then run 1 ps of NVT dynamics with it through ASE.

1. ``pyg-hipts fit --config configs/water.yaml`` (deepmd water: 64 H2O in a 12.44 Å box, eV).
2. Load the best checkpoint into :class:`pyg_hipts.calculators.HipCalculator` (any saved
   potential works, ``--checkpoint``).
3. Langevin NVT at 300 K, 0.5 fs steps, 1 ps, from a training frame.
4. The O–O radial distribution function of the trajectory's second half, drawn beside that of
   the 400 DFT frames, written to ``<out>/water_rdf_OO.png`` (numbers in ``water_rdf_OO.csv``).

Run from the project root (about 15 min on 2 CPU cores with the default budget)::

    python examples/water_nvt.py --train-minutes 10 --out runs/water_example
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
from ase import Atoms, units
from ase.geometry.rdf import get_rdf
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cli import main as pyg_hipts_main
from pyg_hipts.data import read_dataset
from pyg_hipts.timing import max_time
from pyg_hipts.train.checkpoints import newest_checkpoint

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WATER = ROOT.parent / "shared" / "data" / "deepmd_water"
RDF_MAX, RDF_BINS = 6.0, 120


def train(out: Path, minutes: float) -> Path:
    """Fit ``configs/water.yaml`` with a wall-time budget; return the best checkpoint."""
    pyg_hipts_main(
        [
            "fit",
            *("--config", str(ROOT / "configs" / "water.yaml")),
            *("--data.train_file", str(WATER), "--trainer.max_time", max_time(minutes)),
            *("--trainer.logger.init_args.save_dir", str(out)),
        ]
    )
    return newest_checkpoint(out, "best.ckpt")


def oxygen_rdf(frames: list[Atoms]) -> tuple[np.ndarray, np.ndarray]:
    """Average O–O g(r) over ``frames``: ``(r, g)``, each ``[RDF_BINS]``."""
    curves = [get_rdf(frame, RDF_MAX, RDF_BINS, elements=(8, 8)) for frame in frames]
    return curves[0][1], np.mean([g for g, _ in curves], axis=0)


def run_nvt(calculator: HipCalculator, start: Atoms, picoseconds: float, step_fs: float) -> list[Atoms]:
    """Langevin NVT at 300 K; returns snapshots every 10 steps of the second half."""
    atoms = start.copy()
    atoms.calc = calculator
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    dynamics = Langevin(
        atoms, step_fs * units.fs, temperature_K=300, friction=0.01 / units.fs, rng=np.random.default_rng(1)
    )
    n_steps = int(round(1000 * picoseconds / step_fs))
    snapshots: list[Atoms] = []
    started = time.perf_counter()

    def record() -> None:
        step = dynamics.nsteps
        if step >= n_steps // 2:
            snapshots.append(atoms.copy())
        if step % (n_steps // 10) == 0:
            temperature = atoms.get_temperature()
            print(
                f"  step {step}/{n_steps}: T = {temperature:.0f} K, "
                f"E_pot = {atoms.get_potential_energy():.3f} eV, {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            if not np.isfinite(temperature) or temperature > 2000:
                raise SystemExit(f"the dynamics blew up at step {step} (T = {temperature:.0f} K)")

    dynamics.attach(record, interval=10)
    dynamics.run(n_steps)
    return snapshots


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-minutes", type=float, default=10.0)
    parser.add_argument("--picoseconds", type=float, default=1.0)
    parser.add_argument("--step-fs", type=float, default=0.5)
    parser.add_argument("--checkpoint", help="skip training and use this checkpoint or saved potential")
    parser.add_argument("--out", default="runs/water_example")
    args = parser.parse_args()
    print(f"# python {' '.join(sys.argv)}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train(out, args.train_minutes)
    calculator = HipCalculator.from_checkpoint(checkpoint)

    reference = [
        Atoms(numbers=f.z.numpy(), positions=f.pos.numpy(), cell=f.cell[0].numpy(), pbc=True)
        for f in read_dataset(WATER)
    ]
    print(f"NVT: {args.picoseconds} ps at 300 K with {checkpoint}", flush=True)
    snapshots = run_nvt(calculator, reference[0], args.picoseconds, args.step_fs)

    r, g_model = oxygen_rdf(snapshots)
    _, g_reference = oxygen_rdf(reference)
    peak_model, peak_reference = int(np.argmax(g_model)), int(np.argmax(g_reference))
    print(
        f"O–O first peak: model r = {r[peak_model]:.3f} Å, g = {g_model[peak_model]:.2f}; "
        f"DFT frames r = {r[peak_reference]:.3f} Å, g = {g_reference[peak_reference]:.2f}"
    )
    np.savetxt(
        out / "water_rdf_OO.csv",
        np.column_stack([r, g_model, g_reference]),
        delimiter=",",
        header="r_angstrom,g_model_nvt,g_dft_frames",
        comments="",
    )
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(r, g_reference, label="DFT frames (training data)", color="black")
    axis.plot(r, g_model, label=f"HIP-NN-TS NVT, {args.picoseconds:g} ps, 300 K", color="tab:blue")
    axis.set_xlabel("r (Å)")
    axis.set_ylabel("g$_{OO}$(r)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "water_rdf_OO.png", dpi=150)
    print(f"wrote {out / 'water_rdf_OO.png'} and {out / 'water_rdf_OO.csv'}")


if __name__ == "__main__":
    main()
