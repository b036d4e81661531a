"""HIP-NN-TS training and inference steps on the CPU and on a CUDA device, same batch, same model.

The batch: ``--molecules`` rMD17 aspirin frames (21 atoms each); the model: the sizes of
``benchmarks/model_speed.py`` (64 features, 20 sensitivities, 2 interaction layers, l = 2),
float32. GPU times are taken after ``torch.cuda.synchronize()``; medians of ``--repeat`` runs.
Run on a GPU machine (``benchmarks/gpu_check.sh`` does)::

    python benchmarks/gpu_step.py --molecules 64 256 1024
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.model_speed import SIZES, aspirin_batch
from pyg_hipts.nn import HipNN
from pyg_hipts.timing import median_seconds


def steps(device: str, molecules: int) -> tuple:
    """``(inference, training)`` callables on ``device`` that end synchronised."""
    z, pos, batch, energy, forces = (t.to(device) for t in aspirin_batch(molecules))
    model = HipNN(species=[1, 6, 8], l_max=2, **SIZES).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def synchronise() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def infer() -> None:
        model.predict(z, pos, batch)
        synchronise()

    def train() -> None:
        optimizer.zero_grad()
        out = model.predict(z, pos, batch, create_graph=True)
        loss = (out.energy.flatten() - energy).square().mean() + (out.forces - forces).square().mean()
        loss.backward()
        optimizer.step()
        synchronise()

    return infer, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}, CPU {options.threads} threads")
    columns = [
        "molecules",
        "CPU train ms",
        "GPU train ms",
        "GPU/CPU",
        "CPU infer ms",
        "GPU infer ms",
        "GPU structures/s",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|")
    for molecules in options.molecules:
        times = {}
        for device in ("cpu", "cuda"):
            infer, train = steps(device, molecules)
            repeat = options.repeat if device == "cuda" or molecules <= 256 else 3
            times[device] = (median_seconds(infer, repeat, 3), median_seconds(train, repeat, 3))
        (cpu_infer, cpu_train), (gpu_infer, gpu_train) = times["cpu"], times["cuda"]
        print(
            f"| {molecules} | {1e3 * cpu_train:.1f} | {1e3 * gpu_train:.2f} | {cpu_train / gpu_train:.1f}x | "
            f"{1e3 * cpu_infer:.1f} | {1e3 * gpu_infer:.2f} | {molecules / gpu_train:,.0f} |"
        )


if __name__ == "__main__":
    main()
