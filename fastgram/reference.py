"""Plain-NumPy references: the executable specification of every kernel.

One function per public kernel, with the same signature and the same result. They are written
to be read, not to be fast: obvious NumPy, no tricks. They assume valid input (the public
wrappers check it) and may use O(N) memory. Tests and ``fastgram check`` compare each kernel
with its reference on the same inputs.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------


def count_bigrams(tokens, vocab_size=None, **_options):
    """``counts[a, b]`` = number of positions ``i`` with ``tokens[i] == a`` and ``tokens[i+1] == b``.

    The classic one-liner: pack each pair into one int64 key ``a * V + b`` and histogram the
    keys. Uses about 24 bytes of temporaries per token. Options of the fast version that do not
    change the result (progress, memory budgets) are accepted and ignored.
    """
    tokens = np.asarray(tokens)
    if vocab_size is None:
        vocab_size = int(tokens.max()) + 1 if tokens.size else 0
    V = int(vocab_size)
    a = tokens[:-1].astype(np.int64)
    b = tokens[1:].astype(np.int64)
    keys = a * V + b
    return np.bincount(keys, minlength=V * V).reshape(V, V).astype(np.int64)
