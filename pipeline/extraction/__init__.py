"""Stage 1: the extraction plan, the store lifecycle, workers on a dask cluster, compaction, and `iaa extract`."""
