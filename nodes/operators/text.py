"""Text mappers: HTML to text, Unicode NFKC, whitespace, control characters, URLs, truncate."""

from __future__ import annotations

import re
import unicodedata

from selectolax.lexbor import LexborHTMLParser

from nodes.operators.base import TextMapper, object_schema
from nodes.operators.registry import register

# Inline elements are unwrapped before the text is taken, so "<b>bo</b>ld" stays one word;
# every other element boundary becomes a line break.
INLINE_TAGS = ["a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd", "mark", "q",
               "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var"]  # fmt: skip
DROPPED_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "svg"]
HTML_HINT = re.compile(r"<[A-Za-z!/]|&(?:#?[A-Za-z0-9]+);")
# The name after each "<" in lower-cased text ("<b>" gives "b", "<body>" gives "body"); the
# configured tag names match ^[a-z][a-z0-9-]*$.
TAG_START = re.compile(r"<([a-z0-9-]+)")
INLINE_PREFIXES = tuple(INLINE_TAGS)


@register
class HtmlToText(TextMapper):
    name = "html_to_text"
    label = "HTML to text"
    description = (
        "Parses HTML (lexbor, through selectolax) and keeps the visible text of its body: scripts and styles "
        "are dropped, entities decoded, block elements become line breaks. Text without tags or entities "
        "is left as it is."
    )
    config_schema = object_schema(
        {
            "drop_tags": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                "uniqueItems": True,
                "default": DROPPED_TAGS,
                "description": "Elements removed with their content.",
            },
            "keep_inline_words": {
                "type": "boolean",
                "default": True,
                "description": "Join text split by inline tags (<b>, <a>, <span>...) instead of breaking lines there.",
            },
        }
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.drop_tags = list(config["drop_tags"])
        self.drop_keys = [("<" + tag, tag) for tag in self.drop_tags]
        self.keep_inline = config["keep_inline_words"]

    def map_text(self, text: str) -> str:
        if not HTML_HINT.search(text):
            return text
        # Each strip/unwrap walks the whole tree, per tag: only ask for tags the text has. The
        # names after "<" come from one regex pass (a substring test per tag over the whole
        # text cost more than parsing it). A tag to drop is asked for when "<" + its name
        # starts one of them, as always (an element may come without its own start tag:
        # "</p>" makes a <p>), and so are merged text nodes, also those a strip left apart.
        names = set(TAG_START.findall(text.lower()))
        starts = "<" + "<".join(names)
        present = [tag for key, tag in self.drop_keys if key in starts]
        tree = LexborHTMLParser(text)
        if present:
            tree.strip_tags(present)
        if self.keep_inline and any(name.startswith(INLINE_PREFIXES) for name in names):
            # Inline elements come from their start tags only, whose names are whole names.
            present = [tag for tag in INLINE_TAGS if tag in names]
            if present:
                tree.unwrap_tags(present)
            tree.merge_text_nodes()
        body = tree.body
        return body.text(separator="\n") if body is not None else ""


@register
class UnicodeNFKC(TextMapper):
    name = "unicode_nfkc"
    label = "Unicode NFKC"
    description = "Normalises text to Unicode NFKC (full-width forms, ligatures, compatibility characters)."
    config_schema = object_schema(
        {"form": {"enum": ["NFKC", "NFC"], "default": "NFKC", "description": "Normalisation form."}}
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.form = config["form"]

    def map_text(self, text: str) -> str:
        # ASCII is already normalised, and is_normalized is a fast check without a copy.
        if text.isascii() or unicodedata.is_normalized(self.form, text):
            return text
        return unicodedata.normalize(self.form, text)


@register
class NormalizeWhitespace(TextMapper):
    name = "normalize_whitespace"
    label = "Normalise whitespace"
    description = (
        "Collapses runs of spaces, tabs and other Unicode spaces into one space, strips lines, and keeps at "
        "most one blank line between paragraphs (or puts everything on one line)."
    )
    config_schema = object_schema(
        {
            "keep_newlines": {
                "type": "boolean",
                "default": True,
                "description": "Keep line breaks (at most one blank line in a row); false joins all lines.",
            }
        }
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.keep_newlines = config["keep_newlines"]

    def map_text(self, text: str) -> str:
        if not self.keep_newlines:
            return " ".join(text.split())
        # str.split()/splitlines() are C loops that know every Unicode space and line break;
        # they beat a regex over the whole text (measured: see bench/README.md).
        lines = []
        blank = False
        for line in text.splitlines():
            # Most lines need nothing: printable (so no tab nor other Unicode space), without
            # a double, leading or trailing space. Checking is cheaper than splitting them.
            if not line.isprintable() or "  " in line or line.startswith(" ") or line.endswith(" "):
                line = " ".join(line.split())
            if line:
                if blank and lines:
                    lines.append("")
                lines.append(line)
                blank = False
            else:
                blank = True
        return "\n".join(lines)


CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+")
CONTROL_AND_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff\ufff9-\ufffb]+")


@register
class RemoveControlChars(TextMapper):
    name = "remove_control_chars"
    label = "Remove control characters"
    description = (
        "Removes C0/C1 control characters (keeps tab, line feed and carriage return) and, by default, "
        "invisible characters: zero-width space, word joiner, byte-order mark."
    )
    config_schema = object_schema(
        {"remove_invisible": {"type": "boolean", "default": True, "description": "Also remove U+200B, U+2060, U+FEFF."}}
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.pattern = CONTROL_AND_INVISIBLE if config["remove_invisible"] else CONTROL

    def map_text(self, text: str) -> str:
        # isprintable() is one C pass and true for most text lines; only then is there nothing to do.
        if text.isprintable():
            return text
        return self.pattern.sub("", text)


URL = re.compile(
    r"(?:[Hh][Tt][Tt][Pp][Ss]?|[Ff][Tt][Pp])://[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]|www\.[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]"
)


@register
class RemoveUrls(TextMapper):
    name = "remove_urls"
    label = "Remove URLs"
    description = "Removes http(s)/ftp URLs and www. addresses (trailing punctuation stays), or replaces them."
    config_schema = object_schema(
        {"replacement": {"type": "string", "default": "", "description": "Text put in place of each URL."}}
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.replacement = config["replacement"]

    def map_text(self, text: str) -> str:
        if "://" not in text and "www." not in text:
            return text
        return URL.sub(self.replacement, text)


@register
class Truncate(TextMapper):
    name = "truncate"
    label = "Truncate"
    description = "Cuts the text to at most max_chars characters, at a word boundary if there is one nearby."
    config_schema = object_schema(
        {
            "max_chars": {"type": "integer", "minimum": 1, "default": 100000},
            "at_word_boundary": {
                "type": "boolean",
                "default": True,
                "description": "Cut at the last whitespace in the final 10% of the limit, if any.",
            },
        }
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.max_chars = config["max_chars"]
        self.at_word_boundary = config["at_word_boundary"]

    def map_text(self, text: str) -> str:
        limit = self.max_chars
        if len(text) <= limit:
            return text
        if self.at_word_boundary and not text[limit].isspace():
            cut = max(text.rfind(" ", limit - limit // 10, limit), text.rfind("\n", limit - limit // 10, limit))
            if cut > 0:
                return text[:cut].rstrip()
        return text[:limit]
