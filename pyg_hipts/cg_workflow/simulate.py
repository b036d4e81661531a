"""``pyg-hipts cg simulate``: Langevin replicas of a trained (coarse-grained) potential.

The masses, bead names and temperature come from the checkpoint (they were recorded from the
training file of ``pyg-hipts cg map``); the units are the potential's. Replicas start from
frames of ``--start`` (a file the package reads, e.g. the coarse-grained training file), spread
evenly over it or drawn at random. Frames with weights (``weights`` of an npz file, e.g. from a
biased simulation) are chosen by weight: spread evenly over the cumulative weight, or drawn with
probability proportional to it, so that the replicas start in the unbiased ensemble.
``--compile`` evaluates the potential through one compiled graph
(:meth:`~pyg_hipts.potentials.Potential.compile_for_inference`). BAOAB steps
(:class:`pyg_hipts.md.BAOAB`) run in segments of ``--segment_steps``; after each one
``<output>/trajectory.npz`` and ``<output>/state.npz`` are rewritten (atomically), so a stopped
run loses at most one segment:

- ``trajectory.npz``: ``positions [S, R, n, 3]`` (float32), ``time_ps [S]``, ``nuclear_charges``,
  ``names``, ``masses``, ``temperature``, ``length_unit``, ``energy_unit`` (``cell`` when periodic);
- ``state.npz``: the last ``positions`` and ``velocities [R, n, 3]`` (float64), ``step``,
  ``time_ps`` and the run's options.

``--without pyg_hipts.nn.HipNN`` simulates the checkpoint's sum without its network (the priors
alone). ``--continue`` extends the run in ``--output`` by ``--steps`` from its state, with its
velocities and options (the checkpoint, time step, friction, temperature) and new random forces.
::

    pyg-hipts cg simulate --checkpoint runs/cg/best.ckpt --start runs/cg/ala2_cg.npz \\
        --output runs/cg/md --replicas 100 --steps 50000 --timestep_fs 2
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyg_hipts.cg_workflow.options import command_parser
from pyg_hipts.data import read_dataset
from pyg_hipts.md import BAOAB, langevin_integrator
from pyg_hipts.potentials import Potential, SumPotential, load_potential
from pyg_hipts.potentials.io import resolve_class
from pyg_hipts.train.checkpoints import checkpoint_system

TRAJECTORY_FILE = "trajectory.npz"
STATE_FILE = "state.npz"
RUN_OPTIONS = (
    "without",
    "checkpoint",
    "timestep_fs",
    "friction_per_ps",
    "temperature",
    "save_every",
    "seed",
    "min_distance",
)


def _save(path: Path, arrays: dict[str, Any]) -> None:
    """``np.savez`` to ``path`` through a temporary file, so a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)


def chosen_frames(
    n_frames: int, replicas: int, how: str, seed: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``[R]`` indices of the start frames among ``n_frames``.

    ``how = "spread"``: without ``weights [n_frames]``, ``R`` evenly spaced frames; with them,
    the frames at the quantiles ``(r + 1/2) / R`` of the cumulative weight ``Σ_{i<=k} w_i / Σ w``
    (frames of weight 0 are never chosen). ``how = "random"``: ``R`` frames drawn with
    replacement, uniformly or with probability ``w_k / Σ w`` (seeded by ``seed``).
    """
    generator = torch.Generator().manual_seed(seed)
    if weights is None:
        if how == "random":
            return torch.randint(n_frames, (replicas,), generator=generator)
        return torch.linspace(0, n_frames - 1, replicas).round().long()
    if how == "random":
        return torch.multinomial(weights, replicas, replacement=True, generator=generator)
    cumulative = torch.cumsum(weights, 0) / weights.sum()
    quantiles = (torch.arange(replicas, dtype=torch.float64) + 0.5) / replicas
    return torch.searchsorted(cumulative, quantiles).clamp(max=n_frames - 1)


def starting_frames(options: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(z [n], positions [R, n, 3], cell [3, 3] or None)``: ``options.replicas`` frames of
    ``options.start`` chosen by :func:`chosen_frames` (``options.start_frames``, by the frames'
    weights when the file records them)."""
    reader_options = dict(options.reader_options or {})
    if str(options.start).endswith(".npz"):
        reader_options.setdefault("energy_key", None)
    dataset = read_dataset(options.start, options.format, dtype=torch.float64, **reader_options)
    weights = None
    if len(dataset) and "frame_weight" in dataset[0]:
        weights = torch.cat([dataset[i].frame_weight for i in range(len(dataset))])
    chosen = chosen_frames(len(dataset), options.replicas, options.start_frames, options.seed, weights)
    frames = [dataset[int(i)] for i in chosen]
    z = frames[0].z
    for index, frame in zip(chosen.tolist(), frames, strict=True):
        if not torch.equal(frame.z, z):
            raise ValueError(f"{options.start}: frame {index} has other beads than frame {int(chosen[0])}")
    cell = frames[0].cell.reshape(3, 3) if "cell" in frames[0] else None
    return z, torch.stack([frame.pos for frame in frames]), cell


def _run_options(options: Any) -> dict[str, Any]:
    """The options a continuation reuses, with the temperature and masses resolved."""
    system = checkpoint_system(options.checkpoint)
    temperature = options.temperature or system.temperature
    if temperature is None:
        raise ValueError(f"{options.checkpoint} records no temperature: give --temperature (K)")
    masses = options.masses or system.masses
    if masses is None:
        raise ValueError(f"{options.checkpoint} records no masses: give --masses (amu per bead)")
    chosen = {name: getattr(options, name) for name in RUN_OPTIONS}
    return chosen | {"temperature": float(temperature), "masses": list(masses), "names": system.names}


def _without(potential: Potential, class_paths: list[str]) -> Potential:
    """``potential`` without its terms of the classes at ``class_paths`` (e.g. the network, to
    simulate the priors alone)."""
    for path in class_paths:
        if not isinstance(potential, SumPotential):
            raise ValueError(
                f"--without needs a sum of potentials, the checkpoint holds a {type(potential).__name__}"
            )
        potential = potential.without(resolve_class(path, Potential))
    return potential


def _integrator(potential: Potential, z: torch.Tensor, cell, run: dict[str, Any], seed: int) -> BAOAB:
    pbc = None if cell is None else torch.ones(3, dtype=torch.bool)
    return langevin_integrator(
        potential,
        z,
        torch.tensor(run["masses"], dtype=torch.float64),
        temperature=run["temperature"],
        timestep_fs=run["timestep_fs"],
        friction_per_ps=run["friction_per_ps"],
        cell=cell,
        pbc=pbc,
        seed=seed,
        min_distance=run["min_distance"],
    )


def simulate(options: Any) -> Path:
    """Run or continue a simulation (see the module docstring); returns the output folder."""
    output = Path(options.output)
    if options.resume:
        if not (output / STATE_FILE).is_file():
            raise FileNotFoundError(f"{output}: no run to continue ({STATE_FILE} is missing)")
        with np.load(output / STATE_FILE) as state:
            run = json.loads(str(state["options"]))
            x, v = torch.from_numpy(state["positions"]), torch.from_numpy(state["velocities"])
            step, segment = int(state["step"]), int(state["segments"])
        with np.load(output / TRAJECTORY_FILE) as stored:
            trajectory = {name: stored[name] for name in stored.files}
        z = torch.from_numpy(trajectory["nuclear_charges"])
        cell = torch.from_numpy(trajectory["cell"]) if "cell" in trajectory else None
    else:
        if (output / STATE_FILE).exists() and not options.overwrite:
            raise FileExistsError(f"{output} holds a run: give --continue to extend it or --overwrite")
        run = _run_options(options)
        z, x, cell = starting_frames(options)
        v, step, segment = None, 0, 0
        trajectory = None
    if options.steps % run["save_every"] or options.segment_steps % run["save_every"]:
        raise ValueError(
            f"--steps ({options.steps}) and --segment_steps ({options.segment_steps}) must be "
            f"multiples of the run's --save_every ({run['save_every']})"
        )
    potential = _without(load_potential(run["checkpoint"]).to(torch.float64).eval(), run["without"])
    if options.compile:
        potential.compile_for_inference()
    if len(run["masses"]) != len(z):
        raise ValueError(f"{len(run['masses'])} masses for structures of {len(z)} beads")
    integrator = _integrator(potential, z, cell, run, run["seed"])
    if v is None:
        v = integrator.initial_velocities(x)
    units = potential.units
    if trajectory is None:
        trajectory = {
            "positions": x[None].numpy().astype(np.float32),
            "time_ps": np.zeros(1),
            "nuclear_charges": z.numpy(),
            "names": np.array(run["names"] or [str(int(t)) for t in z]),
            "masses": np.array(run["masses"]),
            "temperature": np.array(run["temperature"]),
            "length_unit": np.array(units.length),
            "energy_unit": np.array(units.energy),
        } | ({} if cell is None else {"cell": cell.numpy()})
    output.mkdir(parents=True, exist_ok=True)
    remaining, started = options.steps, time.perf_counter()
    ps_per_step = run["timestep_fs"] / 1000.0
    print(
        f"{len(x)} replicas of {len(z)} beads at {run['temperature']:g} K, {run['timestep_fs']:g} fs steps, "
        f"{options.steps} steps ({options.steps * ps_per_step:g} ps each) from step {step}",
        flush=True,
    )
    while remaining > 0:
        length = min(options.segment_steps, remaining)
        integrator.generator.manual_seed(run["seed"] + 1000 * (segment + 1))  # the same on --continue
        piece = integrator.run(x, length, run["save_every"], velocities=v, report_every=0)
        x, v = piece.positions[-1], piece.velocities[-1]
        step, remaining, segment = step + length, remaining - length, segment + 1
        trajectory["positions"] = np.concatenate(
            [trajectory["positions"], piece.positions[1:].numpy().astype(np.float32)]
        )
        new_times = (step - length + piece.steps[1:].numpy()) * ps_per_step
        trajectory["time_ps"] = np.concatenate([trajectory["time_ps"], new_times])
        _save(output / TRAJECTORY_FILE, trajectory)
        _save(
            output / STATE_FILE,
            {
                "positions": x.numpy(),
                "velocities": v.numpy(),
                "step": np.array(step),
                "segments": np.array(segment),
                "time_ps": np.array(step * ps_per_step),
                "options": np.array(json.dumps(run)),
            },
        )
        elapsed = time.perf_counter() - started
        done = options.steps - remaining
        print(
            f"step {step} ({step * ps_per_step:g} ps), {elapsed:.0f} s, "
            f"{elapsed / done * remaining:.0f} s left, {done / elapsed:.1f} steps/s, "
            f"kinetic temperature / target {integrator.kinetic_temperature_ratio(v):.3f}",
            flush=True,
        )
    print(f"wrote {output / TRAJECTORY_FILE} ({len(trajectory['time_ps'])} frames) and {output / STATE_FILE}")
    return output


def parser():
    """Options of ``pyg-hipts cg simulate``."""
    parser = command_parser("simulate", __doc__)
    parser.add_argument("--checkpoint", help="training checkpoint (or saved potential)")
    parser.add_argument("--start", help="file with the starting frames (e.g. the cg map output)")
    parser.add_argument("--format", help="reader format of --start")
    parser.add_argument("--reader_options", type=dict[str, Any], default={})
    parser.add_argument("--start_frames", choices=("spread", "random"), default="spread")
    parser.add_argument("--output", required=True, help="folder of the trajectory and state")
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--timestep_fs", type=float, default=2.0)
    parser.add_argument("--friction_per_ps", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, help="K (default: the checkpoint's)")
    parser.add_argument("--masses", type=list[float], help="amu per bead (default: the checkpoint's)")
    parser.add_argument("--save_every", type=int, default=50, help="steps between saved frames")
    parser.add_argument("--segment_steps", type=int, default=5000, help="steps between two saves")
    parser.add_argument("--min_distance", type=float, help="stop when two beads come closer (length)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--without",
        type=str,
        nargs="*",
        default=[],
        help="class paths of terms to leave out (pyg_hipts.nn.HipNN)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="evaluate the potential through one compiled graph"
    )
    parser.add_argument("--continue", dest="resume", action="store_true", help="extend the run in --output")
    parser.add_argument("--overwrite", action="store_true", help="replace a run in --output")
    return parser


def main(args: list[str]) -> Path:
    options = parser().parse_args(args)
    if not options.resume and (options.checkpoint is None or options.start is None):
        raise ValueError("a new run needs --checkpoint and --start")
    return simulate(options)
