"""The counter-based random numbers (splitmix64 over ``(seed, stream, index)``) in NumPy."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------
#
# Random numbers: splitmix64 over (seed, stream, index), as in fastgram/kernels/random.py.
# NumPy uint64 array arithmetic wraps modulo 2**64 silently; scalars are kept in 1-element
# arrays so no overflow warning is raised.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_MUL = np.uint64(0xD1B54A32D192ED03)


def _u64(x):
    return np.asarray(x, dtype=np.uint64)


def _mix(z):
    z = _u64(z)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_words(seed, streams, indices):
    """The 64-bit words ``word(stream_key(seed_key(seed), stream), index)`` (broadcast)."""
    with np.errstate(over="ignore"):
        skey = _mix(_u64([seed]) + _GOLDEN)
        keys = _mix(skey + (_u64(streams) + np.uint64(1)) * _STREAM_MUL)
        return _mix(keys + (_u64(indices) + np.uint64(1)) * _GOLDEN)


def words_to_uniform(words):
    """Doubles in [0, 1): the top 53 bits of each word times 2**-53."""
    return (_u64(words) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def words_below(words, n):
    """``floor(word * n / 2**64)`` for ``0 < n < 2**63``: exact integers in ``[0, n)``."""
    w = _u64(words)
    m = _u64(n)
    lo32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    w_lo, w_hi = w & lo32, w >> s32
    m_lo, m_hi = m & lo32, m >> s32
    lo_lo, hi_lo, lo_hi, hi_hi = w_lo * m_lo, w_hi * m_lo, w_lo * m_hi, w_hi * m_hi
    cross = (lo_lo >> s32) + (hi_lo & lo32) + lo_hi
    return ((hi_lo >> s32) + (cross >> s32) + hi_hi).astype(np.int64)


def uniform(shape, *, seed, offset=0):
    """``u[i, j]``: the uniform at stream ``offset + i``, index ``j``; shape (B, n) or (n,)."""
    if np.ndim(shape) == 0:
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    B, n = (1, shape[0]) if len(shape) == 1 else shape
    streams = offset + np.arange(B, dtype=np.int64)[:, None]
    indices = np.arange(n, dtype=np.int64)[None, :]
    return words_to_uniform(random_words(seed, streams, indices)).reshape(shape)


# ---------------------------------------------------------------------------------------------
# n-grams
# ---------------------------------------------------------------------------------------------
