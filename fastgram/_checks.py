"""Argument checks shared by the public modules.

Kernels trust their inputs; these helpers are what makes that safe. Each raises ``TypeError``
for the wrong kind of argument and ``ValueError`` for a wrong value, with a message that names
the argument, what was expected and what came.
"""

from __future__ import annotations

import builtins
import math
import numbers
import operator
import os

import numpy as np

#: Tokens examined per step when scanning a stream (bounds the scratch memory of checks).
SCAN_CHUNK = 1 << 22

#: Default memory budget for a dense ``(V, V)`` int64 table: 2 GiB (V up to 16,384).
DENSE_TABLE_BUDGET = 2 << 30


#: Largest V of a dense table (keys ``a * V + b`` must fit in 32 bits).
DENSE_MAX_VOCAB = 65_535


def fmt_int(n: int) -> str:
    """``1234567 -> '1,234,567'``, for messages."""
    return f"{int(n):,}"


def fmt_bytes(n: float) -> str:
    """Human-readable byte count: ``fmt_bytes(3 << 30) -> '3.0 GiB'``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def require_int(value, name: str, *, min: int | None = None, max: int | None = None) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``.

    Accepts Python and NumPy integers (not ``bool``). ``min``/``max`` are inclusive bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = operator.index(value)
    if min is not None and value < min:
        raise ValueError(f"{name} must be >= {fmt_int(min)}, got {fmt_int(value)}")
    if max is not None and value > max:
        raise ValueError(f"{name} must be <= {fmt_int(max)}, got {fmt_int(value)}")
    return value


def require_min_count(value, name: str = "min_count") -> int:
    """A count threshold (an integer >= 1) as a Python int. One past int64 is read as the int64
    maximum: counts are int64 and at most the tokens counted, so either keeps no n-gram."""
    return min(require_int(value, name, min=1), INT64_MAX)


def require_float(
    value,
    name: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
) -> float:
    """Return ``value`` as a finite Python float within the given bounds, or raise.

    ``min_open``/``max_open`` make the corresponding bound exclusive.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = to_float(value, name)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo = "(" if min_open else "["
    hi = ")" if max_open else "]"
    interval = f"{lo}{'-inf' if min is None else min}, {'inf' if max is None else max}{hi}"
    if min is not None and (value < min or (min_open and value == min)):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    if max is not None and (value > max or (max_open and value == max)):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def to_float(value, name: str) -> float:
    """``float(value)``; an integer past the float range is a ``ValueError`` naming ``name``."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got an integer of {len(str(abs(int(value))))} digits") from None


def as_int_array(x, name: str) -> np.ndarray:
    """``x`` as an integer ndarray without copying an ndarray (memmaps stay memmaps).

    Lists and other sequences are converted with :func:`numpy.asarray`. Booleans, floats and
    other kinds raise ``TypeError``.
    """
    arr = x if isinstance(x, np.ndarray) else _as_rectangular(x, name)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size == 0 and not isinstance(x, np.ndarray):
            return np.zeros(0, dtype=np.uint8)  # an empty list
        raise TypeError(f"{name} must be an array of integers, got dtype {arr.dtype}")
    return arr


def _as_rectangular(x, name: str) -> np.ndarray:
    """:func:`numpy.asarray` of a sequence; ragged nesting is a ``ValueError`` naming ``name``."""
    try:
        return np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array (every row the same length)") from None


def _holds_bool(seq) -> bool:
    """Whether a (nested) list or tuple holds a bool (``np.asarray`` would make it 0 or 1)."""
    return any(_holds_bool(x) if isinstance(x, (list, tuple)) else isinstance(x, (bool, np.bool_)) for x in seq)


def ndim_of(x, name: str) -> int:
    """``numpy.ndim(x)``; ragged nesting is a ``ValueError`` naming ``name``."""
    return x.ndim if isinstance(x, np.ndarray) else _as_rectangular(x, name).ndim


def as_token_stream(x, name: str = "tokens") -> np.ndarray:
    """A 1-D integer token stream (any integer dtype, byte order or strides)."""
    arr = as_int_array(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def as_float_array(x, name: str) -> np.ndarray:
    """``x`` as a float32 or float64 ndarray (no copy for those dtypes).

    Integer, boolean and complex inputs raise ``TypeError``: the result dtype follows the
    input's float dtype, so the caller must choose it.
    """
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        if arr.dtype.kind == "f" and arr.dtype.itemsize == 2:
            raise TypeError(f"{name} must be float32 or float64, got float16 (cast it first)")
        raise TypeError(f"{name} must be float32 or float64, got dtype {arr.dtype}")
    return arr


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (``None`` where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_result_size(shape: tuple, itemsize: int, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` when an output of ``shape`` would not fit in memory
    (rather than a ``MemoryError`` from deep inside NumPy)."""
    need = itemsize * math.prod(int(d) for d in shape)
    limit = physical_memory()
    if limit is not None and need > limit:
        raise ValueError(
            f"{name}: the result of shape {tuple(int(d) for d in shape)} would take {fmt_bytes(need)}, "
            f"more than this machine's {fmt_bytes(limit)} of memory"
        )


def stream_max(tokens: np.ndarray) -> int:
    """Largest id in a 1-D stream, read in chunks (no full-size temporaries)."""
    best = -1
    for lo in range(0, tokens.shape[0], SCAN_CHUNK):
        best = max(best, int(tokens[lo : lo + SCAN_CHUNK].max()))
    return best


def first_out_of_range(tokens: np.ndarray, limit: int) -> tuple[int, int] | None:
    """``(position, value)`` of the first id outside ``[0, limit)``, or ``None``.

    Reads the stream in chunks of :data:`SCAN_CHUNK`, so the extra memory is O(chunk) whatever
    the stream's length, dtype or strides. Skips the scan when the dtype cannot hold a bad id.
    """
    info = np.iinfo(tokens.dtype)
    if info.min >= 0 and info.max < limit:
        return None
    for lo in range(0, tokens.shape[0], SCAN_CHUNK):
        chunk = tokens[lo : lo + SCAN_CHUNK]
        if (info.min < 0 and chunk.min() < 0) or chunk.max() >= limit:
            bad = np.flatnonzero((chunk < 0) | (chunk >= limit))[0]
            return lo + int(bad), int(chunk[bad])
    return None


def check_token_range(tokens: np.ndarray, limit: int, name: str = "tokens", offset: int = 0) -> None:
    """Raise ``ValueError`` naming the first id outside ``[0, limit)``.

    ``offset`` is added to positions, so streaming callers report positions in the whole
    stream rather than in the current chunk.
    """
    bad = first_out_of_range(tokens, limit)
    if bad is not None:
        pos, value = bad
        where = f"{name}: token id {fmt_int(value)} at position {fmt_int(pos + offset)}"
        if value < 0:
            raise ValueError(f"{where} is negative (token ids are >= 0)")
        raise ValueError(f"{where} is outside [0, {fmt_int(limit)})")


def kernel_view(chunk: np.ndarray) -> np.ndarray:
    """The chunk as a C-contiguous, native-order, *unsigned* integer array for a kernel.

    Signed ids must already be checked to be non-negative: they are reinterpreted (a view, no
    copy) as the unsigned type of the same width. Only a non-contiguous or byte-swapped chunk
    is copied, so callers pass chunks of bounded size. Kernels are therefore compiled for four
    dtypes (uint8/16/32/64) at most.
    """
    unsigned = np.dtype(f"u{chunk.dtype.itemsize}")
    if chunk.flags.c_contiguous and chunk.dtype.isnative:
        return chunk.view(unsigned)
    native = chunk.dtype.newbyteorder("=")
    return np.ascontiguousarray(chunk, dtype=native).view(unsigned)


def needs_chunked_copy(tokens: np.ndarray) -> bool:
    """Whether :func:`kernel_view` would copy (so the caller should feed it chunks)."""
    return not (tokens.flags.c_contiguous and tokens.dtype.isnative)


def check_dense_table(vocab_size: int, max_bytes: int = DENSE_TABLE_BUDGET, name: str = "vocab_size") -> None:
    """Raise ``ValueError`` if a dense ``(V, V)`` int64 table would exceed the ``max_memory`` budget.

    Dense tables are also limited to ``V <= 65,535`` (their kernels pack ``a * V + b`` into
    32 bits); a table that size is 32 GiB, so the budget is the limit in practice.
    """
    if vocab_size > DENSE_MAX_VOCAB:
        raise ValueError(
            f"{name}={fmt_int(vocab_size)} is too large for a dense table (at most "
            f"{fmt_int(DENSE_MAX_VOCAB)}); count sparsely with count_ngrams(tokens, 2)"
        )
    need = 8 * vocab_size * vocab_size
    if need > max_bytes:
        raise ValueError(
            f"{name}={fmt_int(vocab_size)} needs a dense ({fmt_int(vocab_size)}, "
            f"{fmt_int(vocab_size)}) int64 table of {fmt_bytes(need)}, over the memory budget "
            f"max_memory={fmt_bytes(max_bytes)}; raise max_memory or count sparsely with count_ngrams(tokens, 2)"
        )


def resolve_vocab_size(tokens: np.ndarray, vocab_size, name: str = "vocab_size") -> int:
    """``vocab_size`` checked, or ``max(tokens) + 1`` when ``None`` (1 for an empty stream, the
    same default in every counter)."""
    if vocab_size is not None:
        return require_int(vocab_size, name, min=1, max=MAX_VOCAB)
    if tokens.shape[0] == 0:
        return 1
    info = np.iinfo(tokens.dtype)
    if info.min < 0:
        check_token_range(tokens, int(info.max) + 1)  # any negative id is an error
    V = stream_max(tokens) + 1
    if V > MAX_VOCAB:
        raise ValueError(f"tokens: largest id {fmt_int(V - 1)} is over the largest vocabulary of 2**63 ids")
    return V


# ---------------------------------------------------------------------------------------------
# n-gram arguments
# ---------------------------------------------------------------------------------------------

#: Longest n-gram order.
MAX_ORDER = 8

#: Largest vocabulary: ids must fit the kernels' uint64 arithmetic with one value to spare.
MAX_VOCAB = 1 << 63


def check_order(n, name: str = "n") -> int:
    """An n-gram order in ``1 .. MAX_ORDER``."""
    return require_int(n, name, min=1, max=MAX_ORDER)


def check_vocab_size(vocab_size, name: str = "vocab_size") -> int:
    """A vocabulary size in ``1 .. 2**63``."""
    return require_int(vocab_size, name, min=1, max=MAX_VOCAB)


def check_key_space(V: int, n: int) -> None:
    """Raise ``ValueError`` unless n-grams of order ``n`` over ``V`` ids pack into 64 bits.

    The limit of code that stores one uint64 key per n-gram (the store, the Dask path); the
    counters themselves take wider keys (:func:`key_words`).
    """
    if V**n > 1 << 64:
        bits = (V**n - 1).bit_length()
        raise ValueError(
            f"n-grams of order n={n} over vocab_size={fmt_int(V)} need {bits} bits per "
            f"packed key, more than 64 (V**n must be <= 2**64); use a smaller n or vocabulary"
        )


#: Most uint64 words per n-gram key (n <= 8 ids of at most 32 bits each).
MAX_KEY_WORDS = 4
#: Largest vocabulary whose n-grams (n >= 2) may take several key words.
MAX_WIDE_VOCAB = 1 << 32


def key_words(V: int, n: int) -> int:
    """How many uint64 words a key of an n-gram over ``V`` ids takes (1 when ``V**n <= 2**64``).

    Wider keys split the n ids into groups of ``g`` ids, ``g`` the most with ``V**g <= 2**64``
    (see :mod:`fastgram.counting.result`). Raises ``ValueError`` when ``V**n > 2**64`` and
    ``V > 2**32`` (a pair of ids would not fit one word).
    """
    if V**n <= 1 << 64:
        return 1
    if V > MAX_WIDE_VOCAB:
        bits = (V**n - 1).bit_length()
        raise ValueError(
            f"n-grams of order n={n} over vocab_size={fmt_int(V)} need {bits} bits per key; keys wider "
            f"than 64 bits need vocab_size <= 2**32 (two ids per 64-bit word); use a smaller vocabulary"
        )
    g = 1
    while V ** (g + 1) <= 1 << 64:
        g += 1
    return -(-n // g)


def check_separator(separator, V: int, name: str = "separator") -> int | None:
    """A document-boundary id in ``[0, V)``, or ``None``."""
    if separator is None:
        return None
    return require_int(separator, name, min=0, max=V - 1)


# ---------------------------------------------------------------------------------------------
# seeds, weights and tables (sampling, metrics)
# ---------------------------------------------------------------------------------------------

INT64_MAX = (1 << 63) - 1


def seed_arg(seed) -> np.uint64:
    """``seed`` as a uint64 (an integer in ``[0, 2**64)``)."""
    return np.uint64(require_int(seed, "seed", min=0, max=(1 << 64) - 1))


def offset_arg(offset, rows: int) -> np.int64:
    """``offset`` as an int64 such that ``offset + rows`` streams stay in the int64 range."""
    return np.int64(require_int(offset, "offset", min=0, max=INT64_MAX - max(rows, 1)))


def _index(idx, shape) -> str:
    """Index of a flat position in ``shape``, for messages: ``[3, 4]``."""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(int(idx), shape)) + "]"


def float_array(x, name: str) -> np.ndarray:
    """``x`` as a float32 or float64 ndarray in either byte order (no copy).

    Callers convert to native float64 where they copy anyway (running sums, weights), so a
    byte-swapped input costs no extra pass.
    """
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind == "f" and arr.dtype.itemsize in (4, 8):
        return arr
    return as_float_array(arr, name)  # raises the TypeError


def check_weights(arr: np.ndarray, name: str, *, allow_neg_inf: bool = False) -> None:
    """Raise ``ValueError`` naming the first NaN, infinite or negative entry of ``arr``."""
    if arr.size == 0:
        return
    bad = (np.isnan(arr) | (arr == np.inf)) if allow_neg_inf else ~np.isfinite(arr)
    if bad.any():
        pos = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must be finite, got {arr.ravel()[pos]} at {_index(pos, arr.shape)}")
    if not allow_neg_inf and arr.dtype.kind in "if":
        neg = arr < 0
        if neg.any():
            pos = int(np.flatnonzero(neg.ravel())[0])
            raise ValueError(f"{name} must be non-negative, got {arr.ravel()[pos]} at {_index(pos, arr.shape)}")


def table_array(table, name: str) -> np.ndarray:
    """A 2-D, non-empty integer or float32/float64 table (any byte order), checked for bad entries."""
    arr = table if isinstance(table, np.ndarray) else np.asarray(table)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of integers or floats, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        arr = float_array(arr, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, V), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {arr.shape}")
    check_weights(arr, name)
    return arr


def current_ids(current, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids, flat as given and as int64 (no copy when they already are int64).

    The range is not checked here: the kernels check each id as they read it (an id that
    does not fit int64 becomes negative, so it is caught there too).
    """
    flat = as_int_array(current, name).reshape(-1)
    if flat.dtype == np.int64 and flat.dtype.isnative and flat.flags.c_contiguous:
        return flat, flat
    return flat, flat.astype(np.int64)


def per_row_arg(
    value,
    name: str,
    rows: int,
    lead: tuple = (),
    *,
    integer: bool = False,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    clip: int | None = None,
) -> np.ndarray:
    """A scalar or one value per row as a (rows,) int64 or float64 array, checked like the scalar.

    ``clip`` (integers only): values above it are read as ``clip``, for an argument whose larger
    values all mean the same (``top_k >= V`` keeps every token), so that any integer, however
    large and of whatever dtype, is taken.

    An array must have shape ``(rows,)`` or ``lead`` (the leading dimensions of the data);
    a bad entry is named by its index: ``top_p[3] must be in (0.0, 1.0], got 1.5``.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a 0-d array is a scalar
    if not isinstance(value, (np.ndarray, list, tuple)):
        one = (
            require_int(value, name, min=min, max=max)
            if integer
            else require_float(value, name, min=min, max=max, min_open=min_open)
        )
        if integer and clip is not None:
            one = builtins.min(one, clip)
        return np.full(rows, one, np.int64 if integer else np.float64)
    arr = value if isinstance(value, np.ndarray) else _as_rectangular(value, name)
    if not isinstance(value, np.ndarray) and _holds_bool(value):
        raise TypeError(f"{name} must be a number or an array of numbers, got a bool in {value!r}")
    if integer and (arr.dtype.kind not in "iu"):
        raise TypeError(f"{name} must be an integer or an array of integers, got dtype {arr.dtype}")
    if not integer and (arr.dtype.kind not in "iuf" or arr.dtype.kind == "b"):
        raise TypeError(f"{name} must be a real number or an array of them, got dtype {arr.dtype}")
    if arr.shape not in ((rows,), tuple(lead)):
        raise ValueError(f"{name} must be a scalar or have one value per row, shape ({rows},), got shape {arr.shape}")
    flat = arr.reshape(rows)
    if not integer:
        flat = flat.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            raise ValueError(f"{name}[{int(bad[0])}] must be finite, got {flat[bad[0]]!r}")
    else:
        if clip is not None:  # in a dtype that holds both (clip >= 0 fits uint64 and int64)
            wide = flat.astype(np.uint64 if arr.dtype.kind == "u" else np.int64)
            flat = np.minimum(wide, wide.dtype.type(clip))
        if arr.dtype.kind == "u" and flat.size and flat.max() > INT64_MAX:
            raise ValueError(f"{name} must be <= {fmt_int(INT64_MAX)}, got {fmt_int(flat.max())}")
        flat = flat.astype(np.int64)
    low = np.zeros(rows, bool) if min is None else (flat <= min if min_open else flat < min)
    high = np.zeros(rows, bool) if max is None else flat > max
    bad = np.flatnonzero(low | high)
    if bad.size:
        i = int(bad[0])
        shown = fmt_int(flat[i]) if integer else repr(float(flat[i]))
        if integer:
            raise ValueError(f"{name}[{i}] must be >= {fmt_int(min)}, got {shown}")
        interval = f"{'(' if min_open else '['}{'-inf' if min is None else min}, {'inf' if max is None else max}]"
        raise ValueError(f"{name}[{i}] must be in {interval}, got {shown}")
    return flat
