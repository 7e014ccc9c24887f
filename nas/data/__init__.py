"""Datasets held in memory as uint8 tensors, their readers, and the on-device batch loader."""
from nas.data.dataset import ImageDataset, channel_stats, fit_images, make_dataset, stratified_split
from nas.data.loader import DeviceLoader, augment_batch
from nas.data.fetch import SOURCES, data_home, fetch
from nas.data.readers import (LAYOUTS, make_synthetic, read_cifar, read_fashion_mnist, read_imagefolder,
                              read_mnist5k, read_npz)
from nas.data.registry import DATASETS, DEFAULT_FOLDER_SIZE, DataSpec, load_dataset, parse_data_spec

__all__ = [
    "DATASETS",
    "DEFAULT_FOLDER_SIZE",
    "LAYOUTS",
    "SOURCES",
    "DataSpec",
    "DeviceLoader",
    "ImageDataset",
    "augment_batch",
    "channel_stats",
    "data_home",
    "fetch",
    "fit_images",
    "load_dataset",
    "make_dataset",
    "make_synthetic",
    "parse_data_spec",
    "read_cifar",
    "read_fashion_mnist",
    "read_imagefolder",
    "read_mnist5k",
    "read_npz",
    "stratified_split",
]
