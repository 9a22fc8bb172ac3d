"""Degree of smoothing of SGD, SHB and NSHB: training engine and analyses.

Reproduces Sato & Iiduka's study of how mini-batch noise smooths the loss (see
``docs/method.md``). Each formula lives in exactly one module:

- ``theory``    δ for each optimizer, Theorem 4.4's C² bounds, Rastrigin smoothing
- ``optim``     the three update rules
- ``train``     the training loop, both run protocols, the stopping rule, checkpoints
- ``cbs``       critical batch size from a table of CBS runs
- ``sharpness`` worst-case and average adaptive sharpness
- ``noise``     measured C², K², search-direction noise, gradient noise scale
- ``tables``    Parquet schemas and atomic I/O
- ``grid``      a workflow config's training cells and the jobs that train them
"""

__version__ = "0.1.0"
