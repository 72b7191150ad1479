"""The hot loops only: pure functions of arrays, no I/O, no Dask, no logging.

``reference`` is the plain-NumPy specification; ``cpu`` the Numba kernels; ``gpu`` (CuPy) is
imported lazily and only when asked for, so dw2v never needs CuPy to train on the CPU.
"""
