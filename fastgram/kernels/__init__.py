"""Numba kernels: ``@kernel``-decorated code only.

No argument checks, no Python objects, no I/O: the public modules check every input before a
kernel sees it, and kernels trust what they get (Numba does not bounds-check).
"""
