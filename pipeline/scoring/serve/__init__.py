"""`iaa serve`: a web page and JSON API scoring photos with a trained run."""
