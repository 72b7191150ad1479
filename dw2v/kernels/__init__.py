"""The hot loops only: pure functions of arrays, no I/O, no Dask, no logging.

``reference`` is the plain-NumPy specification the others are tested against; ``cpu`` the
Numba kernels of skip-gram (per-pair and HogBatch negatives) and CBOW, the alias sampler and the
subsampling; ``cpu_train`` runs them over a shard's sentences, in Hogwild threads; ``averaging``
the exchange's kernels (the offer by owner, the touched-row weighted average, the settle, the NaN
check); ``lookup`` the hash table that finds a batch's dictionary in the vocabulary when
shards are encoded (Arrow's strings as offsets and bytes); ``gpu`` the numba-cuda kernels
(CuPy arrays on a GPU, NumPy arrays under the CUDA simulator), imported only when a worker
trains on a GPU, so dw2v never needs CuPy or a GPU to train on the CPU.
"""
