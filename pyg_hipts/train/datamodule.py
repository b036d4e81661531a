"""Lightning data module: files of structures -> train / validation / test / predict loaders.

Splits. The frames of ``train_file`` are split into train, validation and, without a
``test_file``, test sets, by ``split``: ``"random"`` (with ``seed``), ``"blocks"`` (contiguous
time blocks in file order: train, then validation, then test, :func:`pyg_hipts.data.block_split`)
or ``"auto"``, the default: blocks when the file is a time series (it records ``time_ps``, as
the coarse-grained files of ``pyg-hipts cg map`` do, :mod:`pyg_hipts.data.system`), random
otherwise. The sizes:

- ``n_val`` frames for validation, or ``round(val_fraction · n)`` when ``n_val`` is not given;
- with ``test_file`` every frame of that file is a test frame (``n_test`` must be left unset);
  otherwise ``n_test`` frames of ``train_file`` are (or ``round(test_fraction · n)`` when
  ``n_test`` is not given), or all
  frames left after ``n_train`` and ``n_val``, or none when none of ``n_train``, ``n_test`` and
  ``test_fraction`` is given;
- ``n_train`` frames for training, by default all the others.

``split_file`` reuses a split saved earlier instead. The split in use is written as ``split.npz``
(indices into ``train_file``, see :func:`pyg_hipts.data.save_split`) into the trainer's log
directory, next to the ``checkpoints`` folder, when fitting starts.

Batches. In-memory files are batched by PyG's ``DataLoader``; prepared datasets (folders written
by ``pyg-hipts prepare``), and any data with ``max_atoms``, are batched straight from their
contiguous arrays (:mod:`pyg_hipts.data.batching`): shuffled per epoch with ``seed``, and under
DDP each rank takes its own, disjoint share of the batches.

Files are read with :func:`pyg_hipts.data.read_dataset` (``format`` and ``reader_options``, e.g.
npz key names or ``units: {length: Å, energy: eV}``); ``"embedded:<name>"`` names a dataset
shipped with the package (:func:`pyg_hipts.data.embedded_dataset_path`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader as TorchDataLoader
from torch_geometric.loader import DataLoader

from pyg_hipts.data import (
    AtomsDataset,
    Units,
    block_split,
    embedded_dataset_path,
    load_split,
    random_split,
    read_dataset,
    save_split,
)
from pyg_hipts.data.batching import BatchAssembler, FrameBatchSampler, pass_through
from pyg_hipts.data.splits import SPLIT_METHODS
from pyg_hipts.data.storage import PreparedDataset
from pyg_hipts.data.system import SystemInfo

EMBEDDED_PREFIX = "embedded:"
SPLIT_FILE_NAME = "split.npz"


def resolve_data_path(path: str | Path) -> Path:
    """``"embedded:<name>"`` -> the embedded dataset file; any other value is a plain path."""
    text = str(path)
    if text.startswith(EMBEDDED_PREFIX):
        return embedded_dataset_path(text[len(EMBEDDED_PREFIX) :])
    return Path(text)


class AtomsDataModule(LightningDataModule):
    """Structures with energies and forces from files, batched with PyG's ``DataLoader``.

    Args:
        train_file: file (or deepmd folder, or ``embedded:<name>``) holding the training and
            validation frames, and the test frames when ``test_file`` is not given.
        test_file: a separate file of test frames, all used.
        predict_file: structures to predict with ``pyg-hipts predict``.
        format: reader format for all files (by default from each file's suffix).
        reader_options: keyword arguments of the reader (npz keys, ``units`` as a mapping with
            ``length`` and ``energy``, ...).
        test_reader_options: reader options for ``test_file`` and ``predict_file`` when they are
            laid out differently (e.g. training labels with ``atom_energies``, a plain test file);
            by default ``reader_options``.
        n_train, n_val, n_test, val_fraction, test_fraction: split sizes (see the module
            docstring); fractions make a config fit files of any length.
        split: ``"auto"``, ``"random"`` or ``"blocks"`` (see the module docstring).
        split_file: an existing ``split.npz`` to use instead of drawing one.
        batch_size: structures per training batch.
        eval_batch_size: structures per validation / test / predict batch (default ``batch_size``).
        max_atoms: batch by atoms instead: as many structures as fit under this many atoms
            (training and evaluation; ``batch_size`` is then not used).
        num_workers: loader worker processes.
        seed: seed of the random split.
        allow_unseen_species: accept species in ``test_file`` that ``train_file`` lacks (with a
            warning): the model then knows them without having been trained on them, so this is
            only for reference energies given by the user. Otherwise they are an error.
    """

    def __init__(
        self,
        train_file: str | None = None,
        test_file: str | None = None,
        predict_file: str | None = None,
        format: str | None = None,
        reader_options: dict[str, Any] | None = None,
        test_reader_options: dict[str, Any] | None = None,
        n_train: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        val_fraction: float = 0.05,
        test_fraction: float | None = None,
        split: str = "auto",
        split_file: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        max_atoms: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        allow_unseen_species: bool = False,
    ) -> None:
        super().__init__()
        if split not in SPLIT_METHODS:
            raise ValueError(f"split must be one of {list(SPLIT_METHODS)}, got {split!r}")
        if test_file is not None and (n_test is not None or test_fraction is not None):
            raise ValueError(
                "n_test and test_fraction select test frames from train_file; "
                "with test_file all its frames are used"
            )
        self.save_hyperparameters()
        self._files: dict[str, AtomsDataset] = {}
        self.split: dict[str, Tensor] | None = None
        self.datasets: dict[str, AtomsDataset] = {}

    def _read(self, path: str, training: bool = False) -> AtomsDataset:
        """Read (once) the dataset at ``path``, with the training or the test reader options."""
        hp = self.hparams
        chosen = hp.reader_options if training or hp.test_reader_options is None else hp.test_reader_options
        key = f"{'train' if training else 'test'}:{path}"
        if key not in self._files:
            options = dict(chosen or {})
            if isinstance(options.get("units"), Mapping):
                options["units"] = Units(**options["units"])
            self._files[key] = read_dataset(resolve_data_path(path), hp.format, **options)
        return self._files[key]

    def _train_source(self) -> AtomsDataset:
        if self.hparams.train_file is None:
            raise ValueError("train_file is required for fit, validate and test")
        return self._read(self.hparams.train_file, training=True)

    @property
    def species(self) -> list[int]:
        """Sorted species of ``train_file`` (and of ``test_file`` with ``allow_unseen_species``):
        the species a model must know. Test species that training lacks are an error naming them."""
        return sorted(set(self._train_source().species) | set(self._unseen_test_species()))

    def _unseen_test_species(self) -> list[int]:
        """Species of ``test_file`` that ``train_file`` lacks: an error, or a warning with
        ``allow_unseen_species``."""
        found = set(self._train_source().species)
        unseen: list[int] = []
        if self.hparams.test_file is not None:
            unseen = sorted(set(self._read(self.hparams.test_file).species) - found)
            if unseen and not self.hparams.allow_unseen_species:
                raise ValueError(
                    f"{self.hparams.test_file}: species {unseen} do not occur in the training data "
                    f"{self.hparams.train_file} (species {sorted(found)}); a model cannot learn them. "
                    "Set data.allow_unseen_species true only with reference energies you give."
                )
            if unseen:
                warnings.warn(
                    f"{self.hparams.test_file}: species {unseen} are not in the training data; "
                    "their energies come only from the reference energies you give",
                    stacklevel=2,
                )
        return unseen

    @property
    def units(self) -> Units:
        """Units of the data (of ``train_file``, else of ``predict_file``)."""
        if self.hparams.train_file is None and self.hparams.predict_file is not None:
            return self._read(self.hparams.predict_file).units
        return self._train_source().units

    @property
    def train_dataset(self) -> AtomsDataset | PreparedDataset:
        """The training subset (available after ``setup``), e.g. for the reference-energy fit."""
        return self.datasets["train"]

    def draw_split(self, n: int) -> dict[str, Tensor]:
        """The split of ``n`` frames of ``train_file``: loaded from ``split_file`` or drawn."""
        hp = self.hparams
        if hp.split_file is not None:
            return load_split(hp.split_file, n, dataset=self._train_source())
        n_val = hp.n_val if hp.n_val is not None else round(hp.val_fraction * n)
        n_test = (
            hp.n_test if hp.n_test is not None or hp.test_fraction is None else round(hp.test_fraction * n)
        )
        if hp.test_file is not None or (hp.n_train is None and n_test is None):
            n_test = 0
        n_train = hp.n_train if hp.n_train is not None else n - n_val - (n_test or 0)
        if self.split_method == "blocks":
            return block_split(n, n_train=n_train, n_val=n_val, n_test=n_test)
        return random_split(n, n_train=n_train, n_val=n_val, n_test=n_test, seed=hp.seed)

    @property
    def split_method(self) -> str:
        """``"random"`` or ``"blocks"``: the ``split`` option with ``"auto"`` resolved."""
        if self.hparams.split != "auto":
            return self.hparams.split
        return "blocks" if self.system.time_series else "random"

    @property
    def system(self) -> SystemInfo:
        """Masses, names, temperature and frame times that ``train_file`` records."""
        return getattr(self._train_source(), "system", SystemInfo())

    def setup(self, stage: str) -> None:
        """Read the files and build the datasets the ``stage`` needs (``fit`` also saves the split)."""
        if stage == "predict":
            if self.hparams.predict_file is None:
                raise ValueError("predict needs data.predict_file")
            self.datasets["predict"] = self._read(self.hparams.predict_file)
            return
        source = self._train_source()
        if self.split is None:
            self.split = self.draw_split(len(source))
        for name in ("train", "val", "test"):
            self.datasets[name] = source[self.split[name]]
        if self.hparams.test_file is not None:
            self.datasets["test"] = self._read(self.hparams.test_file)
            if self.datasets["test"].units != source.units:
                raise ValueError(
                    f"units of test_file {self.datasets['test'].units} differ from {source.units}"
                )
        self._unseen_test_species()
        if stage == "fit":
            self._save_split()

    def _save_split(self) -> None:
        """Write the split as ``split.npz`` into the trainer's log directory (global rank 0)."""
        if self.trainer is None:
            return
        log_dir = self.trainer.log_dir  # a collective call: every process must make it
        if log_dir is None or not self.trainer.is_global_zero:
            return
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        save_split(Path(log_dir) / SPLIT_FILE_NAME, self.split, dataset=self._train_source())

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[name]
        if len(dataset) == 0:
            raise ValueError(f"the {name} set is empty; check the split sizes or data files")
        hp = self.hparams
        batch_size = hp.batch_size if shuffle else (hp.eval_batch_size or hp.batch_size)
        workers = {"num_workers": hp.num_workers, "persistent_workers": hp.num_workers > 0}
        if not isinstance(dataset, PreparedDataset) and hp.max_atoms is None:
            return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **workers)
        world_size, rank = (
            (1, 0) if self.trainer is None else (self.trainer.world_size, self.trainer.global_rank)
        )
        sampler = FrameBatchSampler(
            dataset.frame_sizes(),
            batch_size=None if hp.max_atoms else batch_size,
            max_atoms=hp.max_atoms,
            shuffle=shuffle,
            seed=hp.seed,
            num_replicas=world_size,
            rank=rank,
        )
        return TorchDataLoader(
            BatchAssembler(dataset), sampler=sampler, batch_size=None, collate_fn=pass_through, **workers
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    @property
    def has_test_data(self) -> bool:
        """Whether a test set exists (a ``test_file`` or test frames carved from ``train_file``)."""
        if self.hparams.test_file is not None:
            return True
        if self.split is None:
            self.split = self.draw_split(len(self._train_source()))
        return len(self.split["test"]) > 0
