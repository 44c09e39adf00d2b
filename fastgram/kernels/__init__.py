"""Numba kernels: ``@kernel``-decorated code only (and the two dense bigram drivers of
:mod:`fastgram.kernels.counting`, plain Python that deals its kernels to threads).

No argument checks, no Python objects, no I/O: the public modules check every input before a
kernel sees it, and kernels trust what they get (Numba does not bounds-check).

No kernel here is ``parallel=True``. A kernel that does part of a job takes its range of work
items first, ``(w_lo, w_hi, ...)``, and the wrapper deals even (or cost-balanced) runs of items
to Numba's threads with :func:`fastgram._jit.parallel_chunks` / :func:`~fastgram._jit.parallel_for`,
which call the kernel's own machine code: each kernel is compiled once, not again inside a
parallel loop (see :mod:`fastgram._jit`).
"""
