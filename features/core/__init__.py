"""The bottom floor every package imports and that imports nothing of ours: the error root and exit codes, the registry class, quiet start-up."""
