"""Stage 2: training heads on stored features (one run, folds, seed ensembles, ablations, fusion) and `iaa train`."""
