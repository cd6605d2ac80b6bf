"""Hashed n-gram features of text, and the ``hash`` text encoder built on them.

The featuriser is shared by every step that needs word statistics (``dataselect embed --model
hash`` and ``dataselect score --method dsir``): import :func:`featurize` and
:func:`document_frequency` rather than re-tokenising.

Features of a document: its lower-cased word tokens (runs of Unicode letters, digits and ``_``;
or, with ``tokenizer="wordpunct"``, also the runs of other non-space characters) and the n-grams
of consecutive tokens (bigrams by default), each hashed into one of ``2**20`` buckets (or any
number given). The token hash is BLAKE2b (8-byte digest, read little-endian), never Python's
salted ``hash()``; an n-gram's hash is a fixed 64-bit mix of its (n−1)-gram's hash and its last
token's hash; the bucket is the hash modulo the number of buckets. So a token lands in the same
bucket on any machine.

The encoder turns features into a dense, L2-normalised float32 vector of ``dim`` components:
sublinear tf (1 + ln tf) × idf (ln((1 + n)/(1 + df)) + 1, over the corpus), then a seeded sparse
random projection in which every bucket adds ±1/√c to ``c`` output dimensions. Every step is
chosen for bytes that do not depend on the CPU: logarithms go through :func:`math.log` on the few
distinct integer counts (never ``np.log`` on big arrays, whose SIMD path varies by CPU), sums are
``np.bincount`` (sequential) or column loops in a fixed order, and no BLAS is used.

The functions are pure: arrays in, arrays out, no I/O.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

#: Version of the featuriser and encoder; recorded in the metadata, bumped whenever a byte would change.
FEATURIZER_VERSION = 1
#: Separators: anything that is not a Unicode letter, digit or underscore (RE2 syntax).
TOKEN_PATTERN = r"[^\p{L}\p{N}_]+"
#: A word of the ``wordpunct`` tokeniser (RE2 syntax): nltk's ``\w`` in the ``regex`` module is about
#: letters, marks, decimal digits and connector punctuation; the rest of a non-space run is punctuation.
WORD_CHARS = r"[\p{L}\p{M}\p{Nd}\p{Pc}]"
#: ``words``: the word runs only; ``wordpunct``: also the runs of punctuation between them (nltk's
#: ``WordPunctTokenizer`` pattern ``\w+|[^\w\s]+``, approximated in RE2 for speed; the exact one is in
#: :mod:`dataselect_cli.dsir`).
TOKENIZERS = ("words", "wordpunct")
BUCKET_BITS = 20
#: Number of hash buckets (2**20): large enough that distinct frequent n-grams rarely share one.
N_BUCKETS = 1 << BUCKET_BITS
#: Output dimensions each bucket adds to in the sparse random projection.
NNZ_PER_BUCKET = 4
DEFAULT_DIM = 256

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_BIGRAM_MUL = _U64(0xD6E8FEB86659FD93)
_PROJ_SALT = 0x5851F42D4C957F2D
_DIRECT_LOOKUP = 1 << 16
_TOKEN_CACHE: dict[str, int] = {}
_TOKEN_CACHE_MAX = 4_000_000  # ~0.5 GB of Python objects; cleared (not evicted) past this, which changes no result


def mix64(x: np.ndarray) -> np.ndarray:
    """Apply the splitmix64 finaliser to every element of a uint64 array (wrapping arithmetic).

    >>> mix64(np.array([0, 1], dtype=np.uint64)).tolist()
    [0, 6238072747940578789]
    """
    z = np.asarray(x, dtype=_U64).copy()
    z ^= z >> _U64(30)
    z *= _M1
    z ^= z >> _U64(27)
    z *= _M2
    z ^= z >> _U64(31)
    return z


def token_hash(token: str) -> int:
    """Return the stable 64-bit hash of one token: BLAKE2b of its UTF-8 bytes, 8-byte digest, little-endian.

    >>> token_hash("cat") % 2**20
    862003
    """
    h = _TOKEN_CACHE.get(token)
    if h is None:
        if len(_TOKEN_CACHE) >= _TOKEN_CACHE_MAX:
            _TOKEN_CACHE.clear()
        h = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
        _TOKEN_CACHE[token] = h
    return h


def tokenize(texts: pa.Array | list[str], tokenizer: str = "words") -> tuple[pa.Array, np.ndarray]:
    """Split texts into lower-cased word tokens.

    Parameters
    ----------
    texts : pyarrow string array or list of str, length n
        Nulls give no tokens.
    tokenizer : {"words", "wordpunct"}
        ``words``: runs of letters, digits and ``_``; ``wordpunct``: word runs and the runs of other
        non-space characters between them (``"$3.88"`` → ``$``, ``3``, ``.``, ``88``).

    Returns
    -------
    tokens : pyarrow string array
        Every token of every document, in order; empty tokens dropped.
    doc : ndarray of shape (len(tokens),), int64
        The document (0..n-1) each token belongs to, non-decreasing.

    >>> tokens, doc = tokenize(["Hello, World!", "l'été 2024"])
    >>> tokens.to_pylist(), doc.tolist()
    (['hello', 'world', 'l', 'été', '2024'], [0, 0, 1, 1, 1])
    """
    import pyarrow.compute as pc

    arr = pa.array(texts, pa.string()) if not isinstance(texts, (pa.Array, pa.ChunkedArray)) else texts
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    low = pc.utf8_lower(arr)
    if tokenizer == "wordpunct":  # a space around every word run, then split on spaces
        lists = pc.split_pattern_regex(pc.replace_substring_regex(low, f"({WORD_CHARS}+)", r" \1 "), r"\s+")
    else:
        lists = pc.split_pattern_regex(low, TOKEN_PATTERN)
    flat = pc.list_flatten(lists)
    doc = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    keep = pc.greater(pc.binary_length(flat), 0)
    return flat.filter(keep), doc[keep.to_numpy(zero_copy_only=False)]


def token_hashes(tokens: pa.Array) -> np.ndarray:
    """Hash every token with :func:`token_hash`, computing each distinct token once.

    Returns
    -------
    ndarray of shape (len(tokens),), uint64
    """
    import pyarrow.compute as pc

    if len(tokens) == 0:
        return np.empty(0, dtype=_U64)
    enc = pc.dictionary_encode(tokens)
    words = enc.dictionary.to_pylist()
    table = np.fromiter((token_hash(w) for w in words), dtype=_U64, count=len(words))
    return table[enc.indices.to_numpy()]


def bigram_hashes(h: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hash the bigrams of consecutive tokens of the same document.

    The bigram (a, b) hashes to ``mix64(h(a)·M + h(b))`` with a fixed odd M (wrapping uint64), so
    (a, b) and (b, a) differ.

    Returns
    -------
    h2 : ndarray of uint64
    doc2 : ndarray of int64
        The document of each bigram.
    """
    return ngram_hashes(h, doc, 2)[0]


def ngram_hashes(h: np.ndarray, doc: np.ndarray, ngrams: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hash the n-grams of consecutive tokens of the same document, for n = 2 … ``ngrams``.

    The n-gram (t_1 … t_n) hashes to ``mix64(g·M + h(t_n))``, g the hash of (t_1 … t_{n−1}) and M
    the fixed odd multiplier of :func:`bigram_hashes` (wrapping uint64).

    Returns
    -------
    list of (hashes uint64, doc int64)
        One pair per order 2 … ``ngrams``, in token order.
    """
    out = []
    g = h
    for n in range(2, ngrams + 1):
        g = mix64(g[:-1] * _BIGRAM_MUL + h[n - 1:])  # every window of n tokens, documents not yet separated
        same = doc[: len(doc) - n + 1] == doc[n - 1:]
        out.append((g[same], doc[n - 1:][same]))
    return out


@dataclass(frozen=True)
class Features:
    """Term counts of a batch of documents, one row per distinct (document, bucket) pair.

    Attributes
    ----------
    n_docs : int
    doc : ndarray of int64, sorted
    bucket : ndarray of int64 in [0, buckets), sorted within a document
    tf : ndarray of int64, >= 1
        How often the bucket's unigrams and bigrams occur in the document.
    """

    n_docs: int
    doc: np.ndarray
    bucket: np.ndarray
    tf: np.ndarray

    def tokens_per_doc(self) -> np.ndarray:
        """Number of features (with multiplicity) of each document; 0 for a document with no word."""
        return np.bincount(self.doc, weights=self.tf, minlength=self.n_docs).astype(np.int64)


def featurize(texts: pa.Array | list[str], buckets: int = N_BUCKETS, ngrams: int = 2,
              tokenizer: str = "words") -> Features:
    """Count the hashed n-grams (orders 1 … ``ngrams``) of each document.

    Parameters
    ----------
    texts : pyarrow string array or list of str, length n
    buckets : int, default=2**20
        Number of hash buckets; the bucket is the hash modulo ``buckets``.
    ngrams : int, default=2
        Unigrams and bigrams by default; 1: unigrams only.
    tokenizer : {"words", "wordpunct"}
        See :func:`tokenize`.

    Returns
    -------
    Features

    Examples
    --------
    >>> f = featurize(["the cat", "the the"])
    >>> f.doc.tolist(), f.tf.tolist()
    ([0, 0, 0, 1, 1], [1, 1, 1, 1, 2])
    """
    tokens, doc = tokenize(texts, tokenizer)
    h1 = token_hashes(tokens)
    grams = [(h1, doc), *ngram_hashes(h1, doc, ngrams)]
    b = _U64(buckets)
    return count_features(len(texts), np.concatenate([d for _, d in grams]),
                          np.concatenate([h % b for h, _ in grams]).astype(np.int64), buckets)


def count_features(n_docs: int, doc: np.ndarray, bucket: np.ndarray, buckets: int) -> Features:
    """The :class:`Features` of n-gram occurrences given as (document, bucket) pairs, in any order."""
    key, tf = np.unique(doc * buckets + bucket, return_counts=True)
    return Features(n_docs, key // buckets, key % buckets, tf.astype(np.int64))


def document_frequency(features: Features, buckets: int = N_BUCKETS) -> np.ndarray:
    """Number of documents of the batch in which each bucket occurs: int64 of shape (buckets,).

    Add the arrays of several batches to get the corpus's document frequencies.
    """
    return np.bincount(features.bucket, minlength=buckets).astype(np.int64)


def _log_lookup(values: np.ndarray, fn) -> np.ndarray:
    """Apply a scalar function to each distinct value of an integer array, through a lookup."""
    if len(values) and 0 <= int(values.min()) and int(values.max()) < _DIRECT_LOOKUP:
        # small counts (term frequencies): index a table over 0..max, no sort of the big array
        present = np.flatnonzero(np.bincount(values))
        table = np.zeros(int(present[-1]) + 1, dtype=np.float64)
        table[present] = [fn(int(v)) for v in present]
        return table[values]
    distinct, inverse = np.unique(values, return_inverse=True)
    table = np.array([fn(int(v)) for v in distinct], dtype=np.float64)
    return table[inverse.reshape(-1)]


def idf_weights(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Smoothed inverse document frequency ln((1 + n)/(1 + df)) + 1 of every bucket (float64).

    >>> idf_weights(np.array([0, 1, 3]), 3).round(4).tolist()
    [2.3863, 1.6931, 1.0]
    """
    return _log_lookup(df, lambda v: math.log((1 + n_docs) / (1 + v)) + 1.0)


def sublinear_tf(tf: np.ndarray) -> np.ndarray:
    """1 + ln(tf) for integer counts tf >= 1 (float64)."""
    return _log_lookup(tf, lambda v: 1.0 + math.log(v))


@lru_cache(maxsize=4)
def projection(seed: int, dim: int, buckets: int = N_BUCKETS, nnz: int = NNZ_PER_BUCKET) -> tuple[np.ndarray, np.ndarray]:
    """The seeded sparse random projection: where each bucket adds, and with which sign.

    For bucket b and j < nnz, r = mix64(b·nnz + j + mix64(seed ⊕ salt)); the position is
    (r >> 32) mod dim and the sign is + when the low bit of r is 0. Cached (read-only arrays).

    Returns
    -------
    pos : ndarray of shape (buckets, nnz), int64
    sign : ndarray of shape (buckets, nnz), float64, ±1/√nnz
    """
    key = mix64(np.array([(seed ^ _PROJ_SALT) & 0xFFFFFFFFFFFFFFFF], dtype=_U64))[0]
    r = mix64(np.arange(buckets * nnz, dtype=_U64) + key).reshape(buckets, nnz)
    pos = ((r >> _U64(32)) % _U64(dim)).astype(np.int64)
    sign = np.where((r & _U64(1)) == 0, 1.0, -1.0) / math.sqrt(nnz)
    pos.flags.writeable = False
    sign.flags.writeable = False
    return pos, sign


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Scale the rows of a float64 matrix to unit L2 norm in place; zero rows stay zero.

    The squared norms are summed column by column, in a fixed order, so the result does not
    depend on how a reduction is vectorised.
    """
    ss = np.zeros(x.shape[0], dtype=np.float64)
    for j in range(x.shape[1]):
        col = x[:, j]
        ss += col * col
    norm = np.sqrt(ss)
    norm[norm == 0] = 1.0
    x /= norm[:, None]
    return x


def hash_embed(features: Features, idf: np.ndarray, seed: int, dim: int = DEFAULT_DIM) -> np.ndarray:
    """Embed documents: tf-idf of their hashed n-grams, sparse random projection, L2 normalisation.

    Parameters
    ----------
    features : Features
        From :func:`featurize` with ``len(idf)`` buckets.
    idf : ndarray of shape (buckets,), float64
        From :func:`idf_weights` over the whole corpus.
    seed : int
        Seed of the projection.
    dim : int, default=256

    Returns
    -------
    ndarray of shape (features.n_docs, dim), float32
        Unit rows; a document with no word token gives a zero row.

    Notes
    -----
    x_d = Σ_b (1 + ln tf_{d,b})·idf_b·Σ_{j<c} s_{b,j}·e_{p_{b,j}}, then x_d / ‖x_d‖. The projection
    keeps inner products in expectation (Achlioptas 2003; Li, Hastie & Church 2006).
    """
    pos, sign = projection(seed, dim, len(idf))
    w = sublinear_tf(features.tf) * idf[features.bucket]
    index = (features.doc[:, None] * dim + pos[features.bucket]).reshape(-1)
    values = (w[:, None] * sign[features.bucket]).reshape(-1)
    x = np.bincount(index, weights=values, minlength=features.n_docs * dim).reshape(features.n_docs, dim)
    return l2_normalize(x).astype(np.float32)
