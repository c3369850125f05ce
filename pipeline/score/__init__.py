"""Uses of a trained run on new photos: the predictor, `iaa score` and its contact sheet."""
