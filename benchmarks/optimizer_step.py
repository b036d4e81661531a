"""Time one Adam step over a model's weights: PyTorch's default, ``foreach`` and ``fused`` forms.

The training module asks for the fused form where every weight allows it
(``configure_optimizers``); this prints each form's step time and its ratio to the default,
measured in the same run. Gradients are random: the step's cost does not depend on them.

Run from the project root, e.g.::

    python benchmarks/optimizer_step.py --config configs/rmd17_hiphop.yaml --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
import yaml

from pyg_hipts.nn import HipNN


def step_ms(weights: list[torch.Tensor], repeat: int, **options: bool) -> float:
    """Mean milliseconds of ``Adam(weights, **options).step()`` after a warm-up of 10 steps."""
    optimizer = torch.optim.Adam(weights, lr=1e-3, **options)
    for _ in range(10):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(repeat):
        optimizer.step()
    return (time.perf_counter() - start) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/rmd17_hiphop.yaml")
    parser.add_argument("--species", type=int, nargs="+", default=[1, 6, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config) as handle:
        sizes = yaml.safe_load(handle)["model"]["model"]["init_args"]
    weights = list(HipNN(species=args.species, **sizes).parameters())
    for weight in weights:
        weight.grad = torch.randn_like(weight)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {args.config}")
    print(f"# {len(weights)} weight tensors, {sum(w.numel() for w in weights):,} weights")
    default = step_ms(weights, args.repeat, foreach=False)
    print(f"default (for loop)  {default:7.2f} ms")
    for name, options in (("foreach", {"foreach": True}), ("fused", {"fused": True})):
        elapsed = step_ms(weights, args.repeat, **options)
        print(f"{name:<19} {elapsed:7.2f} ms   default / {name}: {default / elapsed:.2f}x")


if __name__ == "__main__":
    main()
