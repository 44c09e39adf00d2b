"""Counter-based random numbers: splitmix64 over ``(seed, stream, index)``.

Every random draw in fastgram is a pure function of ``(seed, stream, index)``:

- ``seed_key(seed) = mix(seed + GOLDEN)``
- ``stream_key(seed_key, stream) = mix(seed_key + (stream + 1) * STREAM_MUL)``
- ``word(stream_key, index) = mix(stream_key + (index + 1) * GOLDEN)``  (a 64-bit word)
- ``uniform(word) = (word >> 11) * 2**-53``  (a double in [0, 1), 53 random bits)
- ``below(word, n) = floor(word * n / 2**64)``  (an integer in [0, n), exact, no floats)

``mix`` is the splitmix64 finaliser (a bijection of 64-bit words), all arithmetic wraps modulo
2**64. Draws therefore do not depend on the order they are computed in, the number of threads,
or how a batch is split; :mod:`fastgram.reference` computes the same words with NumPy
``uint64`` arithmetic, bit for bit.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from fastgram._jit import kernel

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STREAM_MUL = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@kernel
def mix(z):
    """splitmix64 finaliser of a uint64 word."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel
def seed_key(seed):
    """Key of a seed (``seed`` is a uint64)."""
    return mix(np.uint64(seed) + GOLDEN)


@kernel
def stream_key(skey, stream):
    """Key of stream ``stream`` (int64 >= 0) under seed key ``skey``."""
    return mix(skey + (np.uint64(stream) + _ONE) * STREAM_MUL)


@kernel
def word(key, index):
    """The 64-bit random word at ``index`` (int64 >= 0) of the stream with key ``key``."""
    return mix(key + (np.uint64(index) + _ONE) * GOLDEN)


@kernel
def first_words(skey, first, out, m):
    """``out[k] = word(stream_key(skey, first + k), 0)`` for ``k < m``: index 0 of ``m`` streams.

    The loop has no dependence between entries, so it compiles to vector instructions.
    """
    base = skey + (np.uint64(first) + _ONE) * STREAM_MUL
    for k in range(m):
        out[k] = mix(mix(base + np.uint64(k) * STREAM_MUL) + GOLDEN)


@kernel
def uniform(w):
    """A double in [0, 1) from the top 53 bits of a word."""
    return np.float64(w >> _S11) * _INV53


@intrinsic
def _mulhi(typingctx, a, b):
    """High 64 bits of the 128-bit product of two uint64 words (one ``mul`` instruction)."""
    if a != types.uint64 or b != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        prod = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(prod, ir.Constant(wide, 64)), ir.IntType(64))

    return types.uint64(types.uint64, types.uint64), codegen


@kernel
def below(w, n):
    """``floor(w * n / 2**64)``: an integer in [0, n) for 0 < n < 2**63 (exact 64x64 -> 128 bit).

    The high word of the 128-bit product, as :func:`fastgram.reference.words_below` computes
    it from four 32 x 32-bit products.
    """
    return np.int64(_mulhi(w, np.uint64(n)))


@kernel
def fill_uniform(w_lo, w_hi, seed, offset, out):
    """``out[i, j] = uniform(word(stream_key(seed_key(seed), offset + i), j))``.

    ``out`` is (B, n) float64; rows run in parallel.
    """
    skey = seed_key(seed)
    B, n = out.shape
    for i in range(w_lo, w_hi):
        key = stream_key(skey, offset + i)
        for j in range(n):
            out[i, j] = uniform(word(key, j))
