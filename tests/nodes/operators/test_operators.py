"""Behaviour of each built-in operator: input text -> output text or drop reason."""

import pytest

from nodes.operators import registry
from nodes.operators.base import MISSING_TEXT, TEXT_NOT_STRING
from nodes.operators.pii import cn_id_valid, luhn_valid


def run(name, text, **config):
    """(output text or None, drop reason or None) of one operator on one record."""
    operator = registry.get(name).build(config)
    kept, dropped = operator.process_batch([{"text": text}])
    if kept:
        return kept[0]["text"], None
    return None, dropped[0][1]


@pytest.mark.parametrize(
    ("name", "config", "text", "expected"),
    [
        ("html_to_text", {}, "<p>Hello <b>bo</b>ld &amp; <a href='x'>link</a></p><p>Two</p>", "Hello bold & link\nTwo"),
        ("html_to_text", {}, "<html><head><title>T</title></head><body><script>x=1</script>Hi</body></html>", "Hi"),
        ("html_to_text", {}, "<style>p{}</style><div>A</div><noscript>js</noscript>", "A"),
        ("html_to_text", {}, "no markup, a < b and c > d", "no markup, a < b and c > d"),
        ("html_to_text", {}, "", ""),
        ("html_to_text", {"keep_inline_words": False}, "<p>a<b>b</b></p>", "a\nb"),
        ("unicode_nfkc", {}, "\uff46\uff55\uff4c\uff4c\u3000\uff57\uff49\uff44\uff54\uff48 ﬁ ①", "full width fi 1"),
        ("unicode_nfkc", {}, "plain ascii", "plain ascii"),
        ("unicode_nfkc", {"form": "NFC"}, "ﬁ e\u0301", "ﬁ é"),
        ("normalize_whitespace", {}, "  a \t b\u00a0 c  \n\n\n\n  d \r\n e\u3000f  ", "a b c\n\nd\ne f"),
        ("normalize_whitespace", {}, " \n\t ", ""),
        ("normalize_whitespace", {"keep_newlines": False}, " a \n\n b\tc ", "a b c"),
        ("remove_control_chars", {}, "a\x00b\x07c\td\ne\x1bf\x85g\u200bh\ufeff", "abc\td\nefgh"),
        ("remove_control_chars", {"remove_invisible": False}, "a\u200bb\x01", "a\u200bb"),
        ("remove_control_chars", {}, "clean text", "clean text"),
        ("remove_urls", {}, "see https://ex.com/a?b=1. and www.site.org, ok", "see . and , ok"),
        ("remove_urls", {"replacement": "[URL]"}, "(http://x.io/p) ftp://f.net/file", "([URL]) [URL]"),
        ("remove_urls", {}, "no links here", "no links here"),
        ("truncate", {"max_chars": 20}, "the quick brown fox jumps", "the quick brown fox"),
        (
            "truncate",
            {"max_chars": 22, "at_word_boundary": False},
            "the quick brown fox jumps",
            "the quick brown fox ju",
        ),
        ("truncate", {"max_chars": 5}, "short", "short"),
    ],
)
def test_text_mappers(name, config, text, expected):
    assert run(name, text, **config) == (expected, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me: jane.doe+x@mail.example.com!", "mail me: [EMAIL]!"),
        ("not an email: a@b, @handle", "not an email: a@b, @handle"),
        ("call +1 (555) 123-4567 now", "call [PHONE] now"),
        ("call 555-123-4567, or 555.765.4321", "call [PHONE], or [PHONE]"),
        ("two: 555-123-4567 555-765-4321", "two: [PHONE] [PHONE]"),
        ("mobile 13812345678 ok", "mobile [PHONE] ok"),
        ("tel. +44 20 7946 0958", "tel. [PHONE]"),
        ("on 2023-10-15 at 10:30, 1,000 people, room 1234", "on 2023-10-15 at 10:30, 1,000 people, room 1234"),
        ("serial ABC5551234567", "serial ABC5551234567"),
        ("card 4111 1111 1111 1111 exp", "card [CREDIT_CARD] exp"),
        ("card 4111-1111-1111-1111", "card [CREDIT_CARD]"),
        ("amex 378282246310005", "amex [CREDIT_CARD]"),
        ("id 11010519491231002X here", "id [ID_NUMBER] here"),
        ("id 110105194912310021 bad check", "id 110105194912310021 bad check"),
        ("host 192.168.0.1 and 10.0.0.256 and 1.2.3.4.5", "host [IP] and 10.0.0.256 and 1.2.3.4.5"),
        ("v6 2001:db8::8a2e:370:7334 and ::1 loop", "v6 [IP] and [IP] loop"),
        ("time 10:30:00 std::vector a::b", "time 10:30:00 std::vector a::b"),
        ("", ""),
    ],
)
def test_mask_pii(text, expected):
    assert run("mask_pii", text) == (expected, None)


def test_mask_pii_kinds_tokens_and_counts():
    operator = registry.get("mask_pii").build({"kinds": ["email"], "tokens": {"email": "<e>"}})
    kept, _ = operator.process_batch([{"text": "a@b.co 555-123-4567"}, {"text": "c@d.org"}])
    assert [r["text"] for r in kept] == ["<e> 555-123-4567", "<e>"]
    assert operator.metrics == {"email": 2}


def test_luhn_and_resident_id_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert cn_id_valid("11010519491231002X") and not cn_id_valid("110105194912310021")


@pytest.mark.parametrize(
    ("name", "config", "text", "reason"),
    [
        ("text_length", {"min_length": 5}, "1234", "too_short"),
        ("text_length", {"min_length": 5}, "12345", None),
        ("text_length", {"min_length": 0, "max_length": 3}, "1234", "too_long"),
        ("text_length", {}, "", "too_short"),
        ("word_count", {"min_words": 3}, "two words", "too_few_words"),
        ("word_count", {"min_words": 3}, "now three words", None),
        ("word_count", {"min_words": 0, "max_words": 2}, "one two three", "too_many_words"),
        ("word_count", {"min_words": 1}, "   ", "too_few_words"),
        ("special_char_ratio", {"max_ratio": 0.25}, "hello world, fine.", None),
        ("special_char_ratio", {"max_ratio": 0.25}, "#$%& ab", "too_many_special_chars"),
        ("special_char_ratio", {"max_ratio": 0.25}, "©©© naïve", "too_many_special_chars"),
        ("special_char_ratio", {"max_ratio": 0.25}, "你好\uff0c世界。很好", None),
        ("special_char_ratio", {"max_ratio": 0.1}, "snake_case_name_x", "too_many_special_chars"),
        ("special_char_ratio", {}, "", None),
        ("alnum_ratio", {"min_ratio": 0.5}, "abc def", None),
        ("alnum_ratio", {"min_ratio": 0.5}, "a - - - - b", "too_few_alphanumeric"),
        ("alnum_ratio", {"min_ratio": 0.5}, "日本語のテキスト \uff01", None),
        ("alnum_ratio", {}, "", "too_few_alphanumeric"),
        ("repetition", {}, "buy now\nbuy now\nbuy now\nreal line", "repeated_lines"),
        ("repetition", {"max_duplicate_line_fraction": None}, "a b c a b c a b c a b c", "repeated_ngrams"),
        ("repetition", {}, "the quick brown fox jumps over the lazy dog", None),
        ("repetition", {}, "", None),
        ("keywords", {"words": ["casino"]}, "Best CASINO deals", "blocklisted"),
        ("keywords", {"words": ["casino"]}, "casinos are plural", None),
        ("keywords", {"words": ["casino"], "whole_words": False}, "casinos", "blocklisted"),
        ("keywords", {"words": ["spam"], "max_matches": 1}, "spam once", None),
        ("keywords", {"words": ["spam"], "max_matches": 1}, "spam spam", "blocklisted"),
        ("keywords", {"words": ["a.b"], "case_sensitive": True}, "A.B axb", None),
        ("keywords", {"words": ["python", "django"], "mode": "require"}, "I like Django", None),
        ("keywords", {"words": ["python"], "mode": "require"}, "I like cats", "no_keyword"),
    ],
)
def test_text_filters(name, config, text, reason):
    output, dropped = run(name, text, **config)
    assert dropped == reason
    if reason is None:
        assert output == text  # filters never change the record


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("This is an ordinary English sentence about the weather today.", None),
        ("Dies ist ein ganz normaler deutscher Satz über das Wetter heute.", "wrong_language"),
        ("   ", "no_language"),
    ],
)
def test_language_filter(text, reason):
    assert run("language", text, languages=["en"])[1] == reason


def test_language_filter_annotates_kept_records():
    operator = registry.get("language").build({"languages": ["en", "fr"], "annotate_field": "lang"})
    kept, dropped = operator.process_batch(
        [{"text": "Ceci est une phrase tout à fait normale en français."}, {"text": "Das ist ein deutscher Satz."}]
    )
    assert [r["lang"] for r in kept] == ["fr"]
    assert [reason for _, reason in dropped] == ["wrong_language"]


@pytest.mark.parametrize("name", [op.name for op in registry.all_operators() if op.uses_text])
@pytest.mark.parametrize(
    ("record", "reason"),
    [({"id": 1}, MISSING_TEXT), ({"text": 42}, TEXT_NOT_STRING), ({"text": None}, MISSING_TEXT),
     ({"text": ["a"]}, TEXT_NOT_STRING)],
)  # fmt: skip
def test_missing_or_non_string_text_is_dropped_with_a_reason(name, record, reason):
    config = {"keywords": {"words": ["x"]}, "language": {"languages": ["en"]}}.get(name, {})
    kept, dropped = registry.get(name).build(config).process_batch([record])
    assert kept == [] and dropped == [(record, reason)]


def test_text_field_is_configurable():
    operator = registry.get("normalize_whitespace").build({}, text_field="body")
    assert operator.process_batch([{"body": " a  b "}]) == ([{"body": "a b"}], [])
    operator = registry.get("normalize_whitespace").build({"text_field": "title"}, text_field="body")
    assert operator.process_batch([{"title": " t ", "body": " b "}]) == ([{"title": "t", "body": " b "}], [])


def test_select_and_rename_fields():
    select = registry.get("select_fields").build({"fields": ["id", "text", "absent"]})
    assert select.process_batch([{"id": 1, "text": "t", "url": "u"}]) == ([{"id": 1, "text": "t"}], [])
    rename = registry.get("rename_fields").build({"mapping": {"a": "b", "b": "a", "c": "d"}})
    assert rename.process_batch([{"a": 1, "b": 2, "x": 3}]) == ([{"b": 1, "a": 2, "x": 3}], [])


def test_exact_dedup_keeps_the_first_of_each_text_across_batches():
    dedup = registry.get("exact_dedup").build({"buffer_size": 1024})
    texts = [f"text {i % 1500}" for i in range(4000)]
    kept = []
    for start in range(0, len(texts), 700):  # buffer merges happen mid-run
        batch_kept, dropped = dedup.process_batch([{"text": t} for t in texts[start : start + 700]])
        kept += batch_kept
        assert {reason for _, reason in dropped} <= {"duplicate"}
    assert [r["text"] for r in kept] == [f"text {i}" for i in range(1500)]
    assert len(dedup.seen) == 1500 and dedup.seen.nbytes >= 1024 * 8


def test_exact_dedup_options():
    dedup = registry.get("exact_dedup").build({"ignore_case": True, "ignore_whitespace": True})
    kept, _ = dedup.process_batch([{"text": "Hello  World"}, {"text": "hello world"}, {"text": "hello"}])
    assert [r["text"] for r in kept] == ["Hello  World", "hello"]
    assert dedup.key({"text": "HELLO world "}) == dedup.key({"text": "hello world"})
    assert dedup.key({}) == MISSING_TEXT


def test_exact_dedup_state_is_capped_by_config():
    dedup = registry.get("exact_dedup").build({"buffer_size": 1024, "max_state_mb": 1})
    with pytest.raises(MemoryError, match="max_state_mb"):
        for start in range(0, 200_000, 1000):
            dedup.process_batch([{"text": str(i)} for i in range(start, start + 1000)])


def test_near_dedup_drops_near_duplicates_only():
    base = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm afternoon sun " * 3
    near = base.replace("warm", "hot", 1)
    other = "completely different words about databases indexes queries and transactions in production systems"
    dedup = registry.get("near_dedup").build({"threshold": 0.7, "shingle_size": 3})
    kept, dropped = dedup.process_batch([{"text": base}, {"text": near}, {"text": other}, {"text": ""}])
    assert [r["text"] for r in kept] == [base, other, ""]
    assert [reason for _, reason in dropped] == ["near_duplicate"]


def test_near_dedup_index_is_bounded():
    dedup = registry.get("near_dedup").build({"max_indexed": 2, "shingle": "char"})
    kept, _ = dedup.process_batch([{"text": f"record number {i} " + "xyz" * i} for i in range(5)])
    assert len(kept) == 5 and dedup.indexed == 2 and dedup.metrics == {"not_indexed": 3}
