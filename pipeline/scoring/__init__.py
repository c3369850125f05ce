"""Uses of a trained run on new photos: the predictor, `iaa score`, best shot, video, explanations, export, evaluate-on and `iaa serve`."""
