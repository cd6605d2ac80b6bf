"""DSIR (Xie, Santurkar, Ma & Liang, NeurIPS 2023): importance weights of raw documents toward a target corpus.

Each document is a bag of hashed n-grams (its count vector c ∈ ℕ^B). Two multinomials over the B
buckets are fitted by counting: γ_T on the target corpus (all of it, optionally with a Laplace
pseudo-count a: (c_T + a)/(N_T + a·B)), γ_R on the raw corpus (or its first ``fit_tokens`` features,
counted as the ``data-selection`` package counts them). The log importance weight of a document is
its log-likelihood ratio under the two (the multinomial coefficient cancels):

    log w = Σ_b c_b · (log(γ_T[b] + 1e-8) − log(γ_R[b] + 1e-8)),

the 1e-8 being the package's. Its length is (Σ_b c_b + n(n−1)/2) // n for n-gram orders 1…n (the
word count, for documents of at least n words); documents shorter than ``min_length`` are left out
of the resampling.

Two featurisers: the project's own (:func:`dataselect_cli.text.featurize`: BLAKE2b token hashes
mixed into n-gram hashes, vectorised, the default) and ``compat="data-selection"``, the package's
exactly (nltk's WordPunctTokenizer pattern ``\\w+|[^\\w\\s]+`` in the ``regex`` module on the
lower-cased text, n-grams joined by spaces, bucket = sha256(UTF-8) as a big-endian integer mod B).

Pure functions on arrays; no I/O. Logarithms of the B bucket probabilities go through :func:`math.log`
(never ``np.log``, whose SIMD path varies by CPU), sums over a document through ``np.bincount``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from . import text as text_mod
from .errors import InputError
from .text import Features

#: The ``--compat`` choice that reproduces the ``data-selection`` package (PyPI, 1.0.3).
COMPAT = "data-selection"
#: Added to every probability before its logarithm, as the package does.
EPS = 1e-8
#: ``fit_tokens="auto"``: the package's ``num_tokens_to_fit='auto'``, 100,000 features per bucket.
AUTO_TOKENS_PER_BUCKET = 100_000
#: The package's word pattern (nltk's WordPunctTokenizer), for the ``regex`` module.
WORDPUNCT = r"\w+|[^\w\s]+"
_BUCKET_CACHE: dict[int, dict[str, int]] = {}
_BUCKET_CACHE_MAX = 4_000_000  # cleared (not evicted) past this, which changes no result


def sha256_bucket(gram: str, buckets: int) -> int:
    """The package's bucket of a token or space-joined n-gram: int(sha256(UTF-8).hexdigest(), 16) mod B.

    >>> sha256_bucket("alice", 10000), sha256_bucket("alice went", 10000)
    (6720, 114)
    """
    return int.from_bytes(hashlib.sha256(gram.encode("utf-8")).digest(), "big") % buckets


def _wordpunct():
    try:
        import regex
    except ImportError:
        raise InputError("--compat data-selection needs the regex package (nltk's tokeniser uses it): "
                         "pip install 'dataselect[dsir]'") from None
    return regex.compile(WORDPUNCT, regex.UNICODE | regex.MULTILINE | regex.DOTALL)


def check_compat() -> None:
    """Refuse ``--compat data-selection`` up front when the ``regex`` package is missing."""
    _wordpunct()


def compat_features(texts: pa.Array | list, buckets: int, ngrams: int) -> Features:
    """The package's hashed n-gram counts (``get_ngram_counts``) of each document, as :class:`Features`.

    Tokens: ``regex.findall(r"\\w+|[^\\w\\s]+", text.lower())``; orders 1 … ``ngrams``, each n-gram the
    space-joined tokens; bucket :func:`sha256_bucket`. Nulls give no features.
    """
    pat = _wordpunct()
    cache = _BUCKET_CACHE.setdefault(buckets, {})
    if len(cache) >= _BUCKET_CACHE_MAX:
        cache.clear()
    docs: list[int] = []
    out: list[int] = []
    values = texts.to_pylist() if isinstance(texts, (pa.Array, pa.ChunkedArray)) else list(texts)
    for i, t in enumerate(values):
        if t is None:
            continue
        words = pat.findall(t.lower())
        grams = list(words)
        for n in range(2, ngrams + 1):
            grams += [" ".join(words[j:j + n]) for j in range(len(words) - n + 1)]
        for g in grams:
            b = cache.get(g)
            if b is None:
                b = cache[g] = sha256_bucket(g, buckets)
            out.append(b)
        docs.extend([i] * len(grams))
    return text_mod.count_features(len(values), np.array(docs, np.int64), np.array(out, np.int64), buckets)


@dataclass(frozen=True)
class Featurizer:
    """How documents become hashed n-gram counts: the parameters the scores file records.

    Attributes
    ----------
    ngrams : int
        Orders 1 … ngrams (2: unigrams and bigrams, the package's default).
    buckets : int
        B, the number of hash buckets (10,000 by default, as the package).
    tokenizer : {"words", "wordpunct"}
        The project's tokenisers (:func:`dataselect_cli.text.tokenize`); ignored with ``compat``.
    compat : str or None
        ``"data-selection"``: the package's tokeniser and sha256 buckets, exactly.
    """

    ngrams: int = 2
    buckets: int = 10_000
    tokenizer: str = "words"
    compat: str | None = None

    def __post_init__(self) -> None:
        if self.ngrams < 1:
            raise InputError(f"--ngrams must be >= 1; got {self.ngrams}")
        if self.buckets < 2:
            raise InputError(f"--buckets must be >= 2; got {self.buckets}")
        if self.tokenizer not in text_mod.TOKENIZERS:
            raise InputError(f"--tokenizer must be one of {', '.join(text_mod.TOKENIZERS)}; got {self.tokenizer!r}")
        if self.compat not in (None, COMPAT):
            raise InputError(f"--compat must be {COMPAT}; got {self.compat!r}")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ngrams": self.ngrams, "buckets": self.buckets}
        if self.compat:
            out.update({"compat": self.compat, "tokenizer": "nltk-wordpunct", "hash": "sha256"})
        else:
            out.update({"tokenizer": self.tokenizer, "hash": "blake2b-mix64",
                        "featurizer_version": text_mod.FEATURIZER_VERSION})
        return out

    def __call__(self, texts: pa.Array) -> Features:
        if self.compat:
            return compat_features(texts, self.buckets, self.ngrams)
        return text_mod.featurize(texts, self.buckets, self.ngrams, self.tokenizer)


def bucket_counts(f: Features, buckets: int, docs: np.ndarray | None = None) -> np.ndarray:
    """Σ of the count vectors of a batch's documents (those where ``docs`` is True): int64 of shape (B,)."""
    if docs is not None:
        keep = docs[f.doc]
        return np.bincount(f.bucket[keep], weights=f.tf[keep], minlength=buckets).astype(np.int64)
    return np.bincount(f.bucket, weights=f.tf, minlength=buckets).astype(np.int64)


def lengths(f: Features, ngrams: int) -> np.ndarray:
    """The package's length of each document, (Σ_b c_b + n(n−1)/2) // n: its word count when it has ≥ n words.

    >>> lengths(text_mod.featurize(["a b c", "a"]), 2).tolist()
    [3, 1]
    """
    return (f.tokens_per_doc() + ngrams * (ngrams - 1) // 2) // ngrams


def fit_tokens_cap(fit_tokens: str | int, buckets: int) -> int | None:
    """The raw fit's feature budget: ``auto`` = 100,000·B, ``all`` = None (no cap), or the number given."""
    if fit_tokens == "auto":
        return AUTO_TOKENS_PER_BUCKET * buckets
    if fit_tokens == "all":
        return None
    try:
        cap = int(fit_tokens)
    except (TypeError, ValueError):
        raise InputError(f"--fit-tokens must be auto, all or a positive number; got {fit_tokens!r}") from None
    if cap < 1:
        raise InputError(f"--fit-tokens must be auto, all or a positive number; got {fit_tokens!r}")
    return cap


def fit_mask(doc_tokens: np.ndarray, first_row: int, shard_totals: np.ndarray, cap: int | None) -> np.ndarray:
    """Which documents of a batch the raw fit counts, as the package does; updates ``shard_totals`` in place.

    The package splits the raw rows into P virtual shards (row mod P, P = its ``num_proc``) and fits
    each shard on its documents in order until its count of features exceeds cap // P: a document
    is counted when its shard had at most cap // P features before it.

    Parameters
    ----------
    doc_tokens : ndarray of shape (m,), int64
        Features of each document of the batch (Σ_b c_b).
    first_row : int
        Row of the corpus where the batch starts.
    shard_totals : ndarray of shape (P,), int64
        Features seen so far by each shard.
    cap : int or None
        None: every document is counted.
    """
    if cap is None:
        return np.ones(len(doc_tokens), bool)
    p = len(shard_totals)
    shard = (first_row + np.arange(len(doc_tokens))) % p
    take = np.zeros(len(doc_tokens), bool)
    for s in range(p):
        rows = np.flatnonzero(shard == s)
        c = doc_tokens[rows]
        before = shard_totals[s] + np.cumsum(c) - c
        take[rows] = before <= cap // p
        shard_totals[s] += int(c.sum())
    return take


def distribution(counts: np.ndarray, laplace: float = 0.0) -> np.ndarray:
    """γ = (c + a)/(Σ c + a·B): the fitted multinomial over the buckets (float64 of shape (B,)).

    >>> distribution(np.array([3, 1, 0]), 1.0).tolist()
    [0.5714285714285714, 0.2857142857142857, 0.14285714285714285]
    """
    c = np.asarray(counts, np.float64)
    return (c + laplace) / (float(c.sum()) + laplace * len(c))


def _log_eps(p: np.ndarray) -> np.ndarray:
    return np.array([math.log(v + EPS) for v in p.tolist()], np.float64)


def log_ratio(target_counts: np.ndarray, raw_counts: np.ndarray, laplace: float = 0.0) -> np.ndarray:
    """log(γ_T + 1e-8) − log(γ_R + 1e-8) per bucket, γ_T smoothed by ``laplace``: float64 of shape (B,).

    Parameters
    ----------
    target_counts : ndarray of shape (B,), int64
    raw_counts : ndarray of shape (B,), int64
    laplace : float
        The target's pseudo-count a (the package's ``target_laplace_smoothing``; 0 in PyPI 1.0.3).
    """
    return _log_eps(distribution(target_counts, laplace)) - _log_eps(distribution(raw_counts))


def log_weights(f: Features, ratio: np.ndarray) -> np.ndarray:
    """log w = Σ_b c_b·ratio[b] of each document of a batch: float64 of shape (n_docs,).

    >>> f = text_mod.featurize(["a", "a a"], buckets=4, ngrams=1)
    >>> r = np.zeros(4); r[f.bucket[0]] = 0.5
    >>> log_weights(f, r).tolist()
    [0.5, 1.0]
    """
    return np.bincount(f.doc, weights=f.tf * ratio[f.bucket], minlength=f.n_docs)


def mixture_log_weight(logw: np.ndarray, proportions: np.ndarray) -> np.ndarray:
    """log Σ_t π_t·w_t per document, the importance weight toward the mixture Σ_t π_t·γ_T of the targets.

    Parameters
    ----------
    logw : ndarray of shape (T, n), float64
    proportions : ndarray of shape (T,), float64, summing to 1
    """
    z = logw + np.array([math.log(p) if p > 0 else -math.inf for p in proportions.tolist()])[:, None]
    m = z.max(axis=0)
    safe = np.where(np.isfinite(m), m, 0.0)
    return safe + np.log(np.exp(z - safe).sum(axis=0))


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) = Σ_{p_b > 0} p_b·(log(p_b + 1e-8) − log(q_b + 1e-8)) in nats, with the weights' 1e-8."""
    on = p > 0
    return math.fsum((p[on] * (_log_eps(p[on]) - _log_eps(q[on]))).tolist())


def kl_reduction(target_counts: np.ndarray, raw_counts: np.ndarray, selected_counts: np.ndarray,
                 laplace: float = 0.0) -> dict[str, Any]:
    """The paper's data metric: mean over targets of KL(γ_T ‖ q_raw) − KL(γ_T ‖ q_selected).

    Parameters
    ----------
    target_counts : ndarray of shape (T, B), int64
        Each target's counts (T = 1 for pooled targets).
    raw_counts, selected_counts : ndarray of shape (B,), int64
        The counts of the whole raw corpus and of the selected documents.
    laplace : float
        The target's pseudo-count, as in the weights.

    Returns
    -------
    dict
        ``kl_reduction`` (nats; positive when the selection is closer to the targets than the raw
        data), ``kl_raw`` and ``kl_selected`` per target.
    """
    q_raw, q_sel = distribution(raw_counts), distribution(selected_counts)
    raw, sel = [], []
    for t in np.atleast_2d(target_counts):
        p = distribution(t, laplace)
        raw.append(kl(p, q_raw))
        sel.append(kl(p, q_sel))
    return {"kl_reduction": float(np.mean(np.array(raw) - np.array(sel))), "kl_raw": raw, "kl_selected": sel}


def pack_counts(counts: np.ndarray) -> str:
    """A count vector as text for a file's metadata: zlib-compressed little-endian int64, base64."""
    return base64.b64encode(zlib.compress(np.asarray(counts, "<i8").tobytes(), 9)).decode("ascii")


def unpack_counts(data: str) -> np.ndarray:
    """The inverse of :func:`pack_counts`."""
    return np.frombuffer(zlib.decompress(base64.b64decode(data)), "<i8").astype(np.int64)
