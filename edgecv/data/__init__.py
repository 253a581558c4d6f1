"""Datasets: one in-memory uint8 form for every source (digits, the Keras datasets, a folder of
class subfolders, an archive of one), split train/val/test with a fixed seed. The loading is in
:mod:`edgecv.data.datasets`; folders, archives, Keras' cache and streaming have their own
modules (:mod:`~edgecv.data.folder`, :mod:`~edgecv.data.archive`,
:mod:`~edgecv.data.keras_cache`, :mod:`~edgecv.data.stream`)."""

from edgecv.data.datasets import (Dataset, Split, count_images, dataset_kind,
                                  held_out_fraction, load_dataset, memory_budget,
                                  resize_batch, source_spec, split_fractions,
                                  stratified_split)

__all__ = ["Dataset", "Split", "count_images", "dataset_kind", "held_out_fraction",
           "load_dataset", "memory_budget", "resize_batch",
           "source_spec", "split_fractions", "stratified_split"]
