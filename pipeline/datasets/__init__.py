"""Dataset registry: each file registers a `DatasetSpec` whose loader returns a `Manifest`."""
from pipeline.datasets.base import (  # noqa: F401
    DATASETS,
    DatasetError,
    DatasetSpec,
    Manifest,
    default_data_dir,
    load_dataset,
)
from pipeline.datasets import aadb, ava, demo, flickr, folder, koniq10k  # noqa: F401  (registration)
