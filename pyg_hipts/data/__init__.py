"""Data input: datasets with units, readers for common formats, splits and energy statistics."""

from pyg_hipts.data.dataset import AtomsDataset, Units, make_frame
from pyg_hipts.data.embedded_data import embedded_dataset_path
from pyg_hipts.data.readers import FORMATS, read_ani_hdf5, read_ase, read_dataset, read_deepmd, read_npz
from pyg_hipts.data.splits import (
    block_split,
    load_split,
    random_split,
    read_index_file,
    save_split,
    validate_split,
)
from pyg_hipts.data.statistics import count_species, fit_reference_energies
from pyg_hipts.data.system import SystemInfo

__all__ = [
    "FORMATS",
    "AtomsDataset",
    "SystemInfo",
    "Units",
    "block_split",
    "count_species",
    "embedded_dataset_path",
    "fit_reference_energies",
    "load_split",
    "make_frame",
    "random_split",
    "read_ani_hdf5",
    "read_ase",
    "read_dataset",
    "read_deepmd",
    "read_index_file",
    "read_npz",
    "save_split",
    "validate_split",
]
