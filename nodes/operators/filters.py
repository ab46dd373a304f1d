"""Quality filters: length, word count, character ratios, repetition, keywords, language.

Each returns None to keep a record or a short reason to drop it. Counting is done with C
loops (`str.split` with a `maxsplit`, regexes whose first element is a character class) and
cheap bounds are checked first, so most records are decided without a full count.
"""

from __future__ import annotations

from collections import Counter
import functools
import re
from typing import Any

from nodes.operators.base import TextFilter, object_schema, text_problem
from nodes.operators.registry import register

OPTIONAL_INT: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0}
RATIO: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1}


def _bounds_problem(config: dict[str, Any], low: str, high: str) -> list[tuple[str, str]]:
    if config[low] is not None and config[high] is not None and config[low] > config[high]:
        return [(high, f"must be at least {low} ({config[low]})")]
    return []


@register
class TextLength(TextFilter):
    name = "text_length"
    label = "Text length"
    description = "Keeps records whose text has between min_length and max_length characters."
    config_schema = object_schema(
        {
            "min_length": {**OPTIONAL_INT, "default": 50, "description": "Fewer characters: dropped as too_short."},
            "max_length": {**OPTIONAL_INT, "default": None, "description": "More characters: dropped as too_long."},
        }
    )

    @classmethod
    def check_config(cls, config):
        return _bounds_problem(config, "min_length", "max_length")

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.min_length = config["min_length"] or 0
        self.max_length = config["max_length"]

    def check_text(self, text: str) -> str | None:
        n = len(text)
        if n < self.min_length:
            return "too_short"
        if self.max_length is not None and n > self.max_length:
            return "too_long"
        return None


@register
class WordCount(TextFilter):
    name = "word_count"
    label = "Word count"
    description = "Keeps records with between min_words and max_words whitespace-separated words."
    config_schema = object_schema(
        {
            "min_words": {**OPTIONAL_INT, "default": 5, "description": "Fewer words: dropped as too_few_words."},
            "max_words": {**OPTIONAL_INT, "default": None, "description": "More words: dropped as too_many_words."},
        }
    )

    @classmethod
    def check_config(cls, config):
        return _bounds_problem(config, "min_words", "max_words")

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.min_words = config["min_words"] or 0
        self.max_words = config["max_words"]
        # Splitting stops once the answer is known: one word past the larger bound.
        self.split_limit = (self.max_words if self.max_words is not None else self.min_words) + 1

    def check_text(self, text: str) -> str | None:
        if len(text) < self.min_words:  # a word has at least one character
            return "too_few_words"
        n = len(text.split(None, self.split_limit))
        if n < self.min_words:
            return "too_few_words"
        if self.max_words is not None and n > self.max_words:
            return "too_many_words"
        return None


# Runs of characters that are neither letters/digits nor whitespace (underscore counts as special).
SPECIAL_RUN = re.compile(r"(?:[^\w\s]|_)+")
ALNUM_RUN = re.compile(r"[^\W_]+")


# For ASCII text, deleting the letters, digits and whitespace bytes leaves exactly the special
# ones: bytes.translate is a table lookup per byte, several times faster than the regex.
ASCII_ALNUM = bytes(c for c in range(128) if chr(c).isalnum())
ASCII_ALNUM_SPACE = bytes(c for c in range(128) if chr(c).isalnum() or chr(c).isspace())


ASCII = bytes(range(128))


def special_count(text: str) -> int:
    if text.isascii():
        return len(text.encode("ascii").translate(None, ASCII_ALNUM_SPACE))
    # Mostly-ASCII text with a few other characters (a "©", curly quotes): the bytes trick for
    # the ASCII part, the regex for the rest. What translate leaves is the ASCII specials plus
    # every byte of the non-ASCII characters. Deleting every ASCII byte leaves the non-ASCII
    # characters' UTF-8, in order (a translate is much faster than a regex looking for them).
    data = text.encode("utf-8", "surrogatepass")
    other = data.translate(None, ASCII).decode("utf-8", "surrogatepass")
    other_bytes = len(data) - (len(text) - len(other))
    # Runs, not single characters: few and short, so findall builds a short list.
    return len(data.translate(None, ASCII_ALNUM_SPACE)) - other_bytes + sum(map(len, SPECIAL_RUN.findall(other)))


def alnum_count(text: str) -> int:
    if text.isascii():
        return len(text) - len(text.encode("ascii").translate(None, ASCII_ALNUM))
    return sum(map(len, ALNUM_RUN.findall(text)))


@register
class SpecialCharRatio(TextFilter):
    name = "special_char_ratio"
    label = "Special-character ratio"
    description = (
        "Drops records where the share of characters that are neither letters, digits nor whitespace "
        "(punctuation, symbols, emoji, markup debris) is above max_ratio."
    )
    config_schema = object_schema({"max_ratio": {**RATIO, "default": 0.25}})

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.max_ratio = config["max_ratio"]

    def check_text(self, text: str) -> str | None:
        if not text:
            return None
        if special_count(text) > self.max_ratio * len(text):
            return "too_many_special_chars"
        return None


@register
class AlnumRatio(TextFilter):
    name = "alnum_ratio"
    label = "Alphanumeric ratio"
    description = "Drops records where the share of letters and digits among all characters is below min_ratio."
    config_schema = object_schema({"min_ratio": {**RATIO, "default": 0.25}})

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.min_ratio = config["min_ratio"]

    def check_text(self, text: str) -> str | None:
        if not text:
            return "too_few_alphanumeric" if self.min_ratio > 0 else None
        if alnum_count(text) < self.min_ratio * len(text):
            return "too_few_alphanumeric"
        return None


@register
class Repetition(TextFilter):
    name = "repetition"
    label = "Repetition"
    description = (
        "Drops boilerplate and spam: too many lines that repeat an earlier line (repeated_lines), or too many "
        "word n-grams that repeat an earlier one (repeated_ngrams). Null disables a check."
    )
    config_schema = object_schema(
        {
            "max_duplicate_line_fraction": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 1,
                "default": 0.3,
                "description": "Share of non-empty lines that repeat an earlier line.",
            },
            "ngram_size": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
            "max_duplicate_ngram_fraction": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 1,
                "default": 0.3,
                "description": "Share of word n-grams that repeat an earlier n-gram.",
            },
        }
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.max_lines = config["max_duplicate_line_fraction"]
        self.n = config["ngram_size"]
        self.max_ngrams = config["max_duplicate_ngram_fraction"]

    def check_text(self, text: str) -> str | None:
        if self.max_lines is not None:
            lines = [line for line in (line.strip() for line in text.splitlines()) if line]
            if len(lines) > 1 and (len(lines) - len(set(lines))) > self.max_lines * len(lines):
                return "repeated_lines"
        if self.max_ngrams is not None:
            words = text.split()
            n = self.n
            total = len(words) - n + 1
            if total > 1:
                grams = Counter(zip(*(words[i:] for i in range(n)), strict=False))
                if total - len(grams) > self.max_ngrams * total:
                    return "repeated_ngrams"
        return None


@register
class Keywords(TextFilter):
    name = "keywords"
    label = "Blocklist / keywords"
    description = (
        "mode=block drops records containing more than max_matches of the words (blocklisted); mode=require "
        "drops records containing none of them (no_keyword)."
    )
    config_schema = object_schema(
        {
            "words": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 100000},
            "mode": {"enum": ["block", "require"], "default": "block"},
            "whole_words": {"type": "boolean", "default": True, "description": "Match whole words only."},
            "case_sensitive": {"type": "boolean", "default": False},
            "max_matches": {"type": "integer", "minimum": 0, "default": 0, "description": "mode=block: allowed hits."},
        },
        required=["words"],
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        # Longest first, so an alternation prefers "bad words" over "bad"; one compiled regex is
        # a C scan however many words there are.
        alternation = "|".join(re.escape(word) for word in sorted(set(config["words"]), key=len, reverse=True))
        if config["whole_words"]:
            alternation = rf"(?<!\w)(?:{alternation})(?!\w)"
        self.pattern = re.compile(alternation, 0 if config["case_sensitive"] else re.IGNORECASE)
        self.require = config["mode"] == "require"
        self.max_matches = config["max_matches"]

    def check_text(self, text: str) -> str | None:
        if self.require:
            return None if self.pattern.search(text) else "no_keyword"
        if self.max_matches == 0:
            return "blocklisted" if self.pattern.search(text) else None
        for hits, _ in enumerate(self.pattern.finditer(text), start=1):
            if hits > self.max_matches:
                return "blocklisted"
        return None


@functools.cache
def _language_identifier():
    # langid ships its model inside the package: nothing is downloaded. Loading it takes ~1.5 s
    # and ~60 MB, so it happens once per process, on first use.
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


@register
class Language(TextFilter):
    name = "language"
    label = "Language"
    description = (
        "Identifies the language with langid (97 languages, model shipped in the package) and keeps records "
        "in one of the given languages with at least min_score confidence."
    )
    config_schema = object_schema(
        {
            "languages": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-z]{2,3}$"},
                "minItems": 1,
                "uniqueItems": True,
                "description": "ISO 639-1 codes, e.g. en, zh, de.",
            },
            "min_score": {**RATIO, "default": 0.5},
            "annotate_field": {
                "type": ["string", "null"],
                "minLength": 1,
                "default": None,
                "description": "If set, kept records get the detected language code in this field.",
            },
            "max_chars": {
                "type": "integer",
                "minimum": 100,
                "default": 2000,
                "description": "Only the first max_chars characters are classified (enough, and bounded cost).",
            },
        },
        required=["languages"],
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.languages = frozenset(config["languages"])
        self.min_score = config["min_score"]
        self.annotate = config["annotate_field"]
        self.max_chars = config["max_chars"]
        self.identifier = _language_identifier()

    def classify(self, text: str) -> tuple[str | None, str | None]:
        """(language, drop reason or None)."""
        if not text.strip():
            return None, "no_language"
        language, score = self.identifier.classify(text[: self.max_chars])
        if language not in self.languages:
            return language, "wrong_language"
        if score < self.min_score:
            return language, "low_language_score"
        return language, None

    def check_text(self, text: str) -> str | None:
        return self.classify(text)[1]

    def process_batch(self, records):
        if self.annotate is None:
            return super().process_batch(records)
        field = self.text_field
        kept = []
        dropped = []
        for record in records:
            text = record.get(field)
            if text.__class__ is not str:
                dropped.append((record, text_problem(text)))
                continue
            language, reason = self.classify(text)
            if reason is None:
                record[self.annotate] = language
                kept.append(record)
            else:
                dropped.append((record, reason))
        return kept, dropped
