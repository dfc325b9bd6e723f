"""Training: datasets (image folder + optional masks), RD losses (``losses``),
settings (``config``) and the trainer (``trainer``). Import from the submodules."""
