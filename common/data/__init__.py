"""Datasets and transforms shared by every family."""
from common.data.dataset import ImageSource, create_dataset
from common.data.image_file import read_rgb
from common.data.samples import class_names, dataset_samples
from common.data.transforms import create_transforms

__all__ = ["ImageSource", "create_dataset", "read_rgb", "class_names", "dataset_samples",
           "create_transforms"]
