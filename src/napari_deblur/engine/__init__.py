"""The headless engine: operators, PSFs, noise and solvers on plain arrays.

Nothing here imports napari, Qt or touches files.
"""
