"""PII masking: e-mail addresses, phone numbers, IPv4/IPv6 addresses, payment-card numbers
(Luhn-checked) and Chinese resident ID numbers (GB 11643 mod-11 check digit, plausible birth
date).

Every pattern starts with a character class, so the regex engine skips ahead to candidate
characters instead of trying a match at each position, and each kind runs only if a cheap
test (`"@" in text`, a digit or a colon) says it might be there. Checks that a regex cannot
express (checksums, octet ranges, digit counts, word boundaries on the left) run in the
replacement function, on the few candidates only.
"""

from __future__ import annotations

import ipaddress
import re

from nodes.operators.base import TextMapper, object_schema
from nodes.operators.registry import register

KINDS = ("email", "phone", "ip", "credit_card", "id_number")
DEFAULT_TOKENS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "ip": "[IP]",
    "credit_card": "[CREDIT_CARD]",
    "id_number": "[ID_NUMBER]",
}

EMAIL = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
CN_ID = re.compile(
    r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
)
CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CN_ID_CHECK = "10X98765432"
# Contiguous 13-19 digits, or groups of 4 (16/19 digits) and 4-6-5 (15, Amex) with space or dash.
CARD = re.compile(
    r"[0-9](?:[0-9]{12,18}|[0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -]?[0-9]{3})?|[0-9]{3}[ -][0-9]{6}[ -][0-9]{5})(?![0-9])"
)
IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9])")
# Candidates only: ipaddress.IPv6Address decides.
IPV6 = re.compile(r"[0-9A-Fa-f:]{2,39}(?:\.[0-9]{1,3}){0,3}")
# A country code or area code in parentheses, then 2-5 groups of 2-4 digits.
PHONE = re.compile(r"[+(0-9][0-9]{0,3}\)?(?:[ .-]?\(?[0-9]{2,4}\)?){2,5}(?![0-9])")
PHONE_MIN_DIGITS = 9
PHONE_MAX_DIGITS = 15
DIGIT = re.compile(r"[0-9]")
DIGITS = "0123456789"
# Every character EMAIL can match: a match lies inside a run of them that holds an "@".
EMAIL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-@")
EMAIL_RUN = re.compile(r"[A-Za-z0-9._%+@-]*")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def cn_id_valid(number: str) -> bool:
    total = sum(int(char) * weight for char, weight in zip(number, CN_ID_WEIGHTS, strict=False))
    return CN_ID_CHECK[total % 11] == number[17].upper()


def _word_char_before(text: str, start: int) -> bool:
    return start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+._-")


@register
class MaskPII(TextMapper):
    name = "mask_pii"
    label = "Mask PII"
    description = (
        "Replaces e-mail addresses, phone numbers (9-15 digits), IPv4/IPv6 addresses, payment-card "
        "numbers (Luhn check) and Chinese resident ID numbers (mod-11 check digit) with tokens."
    )
    config_schema = object_schema(
        {
            "kinds": {
                "type": "array",
                "items": {"enum": list(KINDS)},
                "uniqueItems": True,
                "default": list(KINDS),
                "description": "What to mask.",
            },
            "tokens": {
                "type": "object",
                "additionalProperties": False,
                "properties": {kind: {"type": "string"} for kind in KINDS},
                "default": {},
                "description": "Replacement per kind; default [EMAIL], [PHONE], [IP], [CREDIT_CARD], [ID_NUMBER].",
            },
        }
    )

    def __init__(self, config, text_field="text"):
        super().__init__(config, text_field)
        self.tokens = {**DEFAULT_TOKENS, **config["tokens"]}
        kinds = set(config["kinds"])
        self.email = "email" in kinds
        self.digit_kinds = [
            (pattern, replace)
            for kind, pattern, replace in (
                # Checksummed numbers first, so a phone pattern never claims them.
                ("id_number", CN_ID, self._id_number),
                ("credit_card", CARD, self._card),
                ("ip", IPV4, self._ipv4),
                ("phone", PHONE, self._phone),
            )
            if kind in kinds
        ]
        self.ipv6 = "ip" in kinds
        #: Masked values per kind, reported by the chain.
        self.metrics = dict.fromkeys(sorted(kinds), 0)

    def map_text(self, text: str) -> str:
        if self.email and "@" in text:
            text = self._mask_emails(text)
        # Ten substring searches (memchr) beat one regex scan for a digit.
        if self.digit_kinds and any(map(text.__contains__, DIGITS)):
            for pattern, replace in self.digit_kinds:
                text = pattern.sub(replace, text)
        if self.ipv6 and text.count(":") >= 2:
            text = IPV6.sub(self._ipv6, text)
        return text

    def _mask_emails(self, text: str) -> str:
        """EMAIL over the runs of address characters around each "@" only: its first element
        matches any letter or digit, so over the whole text it would be tried at each of them."""
        token = self.tokens["email"]
        pieces = []
        done = 0  # text[:done] is in pieces
        at = text.find("@")
        while at != -1:
            start = at
            while start > done and text[start - 1] in EMAIL_CHARS:
                start -= 1
            end = EMAIL_RUN.match(text, at).end()
            masked, count = EMAIL.subn(token, text[start:end])
            if count:
                self.metrics["email"] += count
                pieces.append(text[done:start])
                pieces.append(masked)
                done = end
            at = text.find("@", end)
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    def _masked(self, kind: str) -> str:
        self.metrics[kind] += 1
        return self.tokens[kind]

    def _id_number(self, match: re.Match) -> str:
        value = match.group()
        if _word_char_before(match.string, match.start()) or not cn_id_valid(value):
            return value
        return self._masked("id_number")

    def _card(self, match: re.Match) -> str:
        value = match.group()
        if _word_char_before(match.string, match.start()) or not luhn_valid(value.replace(" ", "").replace("-", "")):
            return value
        return self._masked("credit_card")

    def _ipv4(self, match: re.Match) -> str:
        value = match.group()
        if _word_char_before(match.string, match.start()) or any(int(octet) > 255 for octet in value.split(".")):
            return value
        return self._masked("ip")

    def _ipv6(self, match: re.Match) -> str:
        value = match.group()
        text, start, end = match.string, match.start(), match.end()
        if (
            value.count(":") < 2
            or not DIGIT.search(value)
            or (start > 0 and (text[start - 1].isalnum() or text[start - 1] == ":"))
            or (end < len(text) and text[end].isalnum())
        ):
            return value
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return value
        return self._masked("ip")

    def _phone(self, match: re.Match) -> str:
        value = match.group()
        if _word_char_before(match.string, match.start()):
            return value
        digits = len(DIGIT.findall(value))
        if digits <= PHONE_MAX_DIGITS:
            return self._masked("phone") if digits >= PHONE_MIN_DIGITS else value
        # Several numbers separated by spaces: mask each run of words holding a phone's worth.
        out: list[str] = []
        group: list[str] = []
        count = 0
        for word in value.split(" "):
            n = len(DIGIT.findall(word))
            if group and count + n > PHONE_MAX_DIGITS:
                out.append(self._masked("phone") if PHONE_MIN_DIGITS <= count <= PHONE_MAX_DIGITS else " ".join(group))
                group, count = [], 0
            group.append(word)
            count += n
        out.append(self._masked("phone") if PHONE_MIN_DIGITS <= count <= PHONE_MAX_DIGITS else " ".join(group))
        return " ".join(out)
