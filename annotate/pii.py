"""Scrub personal data from customer-support text before it is stored.

`scrub(text)` replaces each PII span with a typed placeholder (`[EMAIL]`, `[PHONE]`, `[CARD]`,
`[IBAN]`, `[ID]`, `[IP]`, `[URL]`, `[DATE]`, `[TIME]`, `[ADDRESS]`, `[NAME]`) and leaves every
other character exactly as it was. `[CARD]` covers card numbers and, after their cue, a card's
expiry date and security code; `[ID]` covers US social security and UK National Insurance numbers
and the numbers after an identity-document, tax, bank-account or customer-number cue.
`scrub_with_counts(text, names=...)` also returns a Counter per type and takes the conversation's
known customer fields (names, e-mails, phones, account ids; an id becomes `[ID]`);
`find(text, names=...)` returns the spans themselves, sorted and non-overlapping, so benches and
tests can score them.

Everything runs offline and in-process: phone numbers through `phonenumbers` (libphonenumber),
cards through a Luhn check and IBANs through their mod-97 check (`python-stdnum`), dates, times,
addresses and secret-bearing URLs through regular expressions, and person names through a
given-name/surname gazetteer built from Faker's locale providers combined with capitalisation and
context cues. spaCy, Presidio and GLiNER were considered and rejected: their NER needs model
weights downloaded from a hub, which the deployment machines cannot reach, and Presidio's own
recognisers are regexes plus spaCy NER, so without the model it adds nothing over this module.

The module never logs the text it sees.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as us_ssn


class Span(NamedTuple):
    type: str
    start: int
    end: int


# Higher wins when two candidate spans overlap.
PRIORITY = {
    "EMAIL": 100,
    "URL": 95,
    "KNOWN": 90,
    "IBAN": 80,
    "CARD": 75,
    "ID": 70,
    "IP": 65,
    "DATE": 60,
    "TIME": 55,
    "PHONE": 50,
    "ADDRESS": 40,
    "NAME": 30,
}

VALID = phonenumbers.Leniency.VALID
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "AU", "BR")

EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w-])"
)
CARD_RE = re.compile(r"(?<![\w.,/-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-]|[.,]\d)")
IBAN_START_RE = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?=[ ]?[A-Z0-9])", re.IGNORECASE)


def _spans_email(text: str) -> Iterable[Span]:
    for m in EMAIL_RE.finditer(text):
        yield Span("EMAIL", m.start(), m.end())


def _spans_card(text: str) -> Iterable[Span]:
    for m in CARD_RE.finditer(text):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        if not 13 <= len(digits) <= 19:
            continue
        # Cards are written in one piece or in fours (Amex 4-6-5); mixed separators, odd groups
        # and a country+check prefix ("DE89 3704 ...", a broken IBAN) are something else.
        if "-" in raw and " " in raw:
            continue
        groups = [len(g) for g in re.split(r"[ -]", raw)]
        if len(groups) > 1 and not (
            groups[:2] == [4, 6] or (all(g == 4 for g in groups[:-1]) and 3 <= groups[-1] <= 4)
        ):
            continue
        if re.search(r"[A-Z]{2}\d{2}[ -]$", text[max(0, m.start() - 5) : m.start()]):
            continue
        if luhn.is_valid(digits):
            yield Span("CARD", m.start(), m.end())


def _is_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _iban_valid(value: str) -> bool:
    # Country format, length and the mod-97 check digits; not the national BBAN checksums,
    # which reject IBANs that banks print (e.g. the well-known BE68 5390 0754 7034).
    return stdnum_iban.is_valid(value, check_country=False)


def _spans_iban(text: str) -> Iterable[Span]:
    for m in IBAN_START_RE.finditer(text):
        start = m.start()
        # Collect up to 34 alphanumerics, allowing single spaces between groups.
        pos, alnum, ends = start, 0, []
        while pos < len(text) and alnum < 34:
            ch = text[pos]
            if ch.isascii() and ch.isalnum():
                alnum += 1
                pos += 1
                if pos == len(text) or not (text[pos].isascii() and text[pos].isalnum()):
                    ends.append(pos)
            elif ch == " " and _is_alnum(text[pos + 1 : pos + 2]):
                pos += 1
            else:
                break
        for end in reversed(ends):
            if _iban_valid(text[start:end]):
                yield Span("IBAN", start, end)
                break


def _phone_like(text: str, start: int, end: int) -> bool:
    """Reject short codes, IP addresses and version strings that libphonenumber accepts."""
    raw = text[start:end]
    if sum(c.isdigit() for c in raw) < 7 or SSN_RE.fullmatch(raw):
        return False  # too short, or written like a US social security number (3-2-4)
    if re.fullmatch(r"[\d.]+", raw) and "." in raw:
        # Dots only: "06.12.34.56.78" and "555.123.4567" are phones; "1.2.3" and IPs are not.
        groups = raw.split(".")
        is_ip = len(groups) == 4 and all(len(g) <= 3 for g in groups)
        if len(groups) < 3 or any(len(g) < 2 for g in groups) or is_ip:
            return False
    return not (text[end : end + 2][:1] == "." and text[end + 1 : end + 2].isdigit())


# Stretches that could hold a phone number: seven or more digits with phone punctuation between.
PHONE_WINDOW_RE = re.compile(r"[+(]?\d(?:[\s().\/-]{0,3}\d){6,}\)?")


def _spans_phone(text: str) -> Iterable[Span]:
    # libphonenumber scans the whole text once per region; scanning only the digit stretches
    # (with a few characters of context for its letter checks) is the same result, much faster.
    for window in PHONE_WINDOW_RE.finditer(text):
        lo, hi = max(0, window.start() - 3), min(len(text), window.end() + 3)
        for span in _phone_matches(text[lo:hi]):
            if _phone_like(text, lo + span.start, lo + span.end):
                yield Span("PHONE", lo + span.start, lo + span.end)


def _phone_matches(text: str) -> Iterable[Span]:
    seen: set[tuple[int, int]] = set()
    for region in ("ZZ", *PHONE_REGIONS):
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=VALID):
            if (m.start, m.end) not in seen:
                seen.add((m.start, m.end))
                yield Span("PHONE", m.start, m.end)
    # Written in international form ("+44 7700 900456") a possible number is a phone number even
    # when its range is unallocated or reserved for fiction, which VALID refuses.
    for m in phonenumbers.PhoneNumberMatcher(text, "ZZ", leniency=phonenumbers.Leniency.POSSIBLE):
        digits = sum(c.isdigit() for c in m.raw_string)
        if (m.start, m.end) not in seen and m.raw_string.startswith(("+", "00")) and digits >= 9:
            yield Span("PHONE", m.start, m.end)


def _cue_before(cue: re.Pattern, text: str, start: int, window: int = 30) -> re.Match | None:
    """The cue (a pattern anchored with `$`) ending in the `window` characters before start."""
    return cue.search(text[max(0, start - window) : start])


# A local number without area code ("555-1234") is a phone only where the text says so.
PHONE_CUE = re.compile(
    r"(?:\bcall(?: me)?(?: back)?(?: at| on)?|\bphone(?: number)?(?: is)?|\btel|"
    r"\btelephone|\bmobile(?: number)?(?: is)?|\bcell(?: number)?(?: is)?|"
    r"\btext me(?: at| on)?|\bsms|\bwhatsapp|\breach me(?: at| on)?|\bring me(?: at| on)?|"
    r"\bfax|\blandline|\bmy (?:phone |mobile |cell |home |work )?number(?: is)?|"
    r"\bnummer(?: ist)?|\bnuméro|\btéléphone|\bteléfono|\btelefono|\bhandy)[\s:.,-]*$",
    re.IGNORECASE,
)
LOCAL_PHONE_RE = re.compile(r"(?<![\w.,/+-])\d{3}[-. ]\d{4}(?![\w-]|[.,]\d)")


def _spans_local_phone(text: str) -> Iterable[Span]:
    for m in LOCAL_PHONE_RE.finditer(text):
        if _cue_before(PHONE_CUE, text, m.start()):
            yield Span("PHONE", m.start(), m.end())


# A card's expiry date and security code are card data too, where the text says what they are.
CARD_EXTRA_CUE = re.compile(
    r"(?:\b(?P<code>cvv2?|cvc2?|cv2|csc|security code|card verification(?: code| value)?|"
    r"prüfnummer|cryptogramme)|"
    r"\b(?P<expiry>exp(?:iry|ires|iration)?(?: date)?|valid (?:thru|through|until)|gültig bis|"
    r"date d'expiration|caducidad))(?: is| was|:)?[\s:.#-]*$",
    re.IGNORECASE,
)
CARD_EXTRA_RE = re.compile(
    r"(?<![\w/.-])(?:(?P<expiry>(?:0?[1-9]|1[0-2]) ?/ ?(?:\d{2}|20\d{2}))|(?P<code>\d{3,4}))"
    r"(?![\w/]|[.,]\d)"
)


def _spans_card_extra(text: str) -> Iterable[Span]:
    for m in CARD_EXTRA_RE.finditer(text):
        cue = _cue_before(CARD_EXTRA_CUE, text, m.start())
        if cue and (cue.group("code") and m.group("code") or cue.group("expiry") and
                    m.group("expiry")):
            yield Span("CARD", m.start(), m.end())


# Identifiers of one person: US social security numbers (stdnum's checks, which refuse the
# reserved and advertised ones), UK National Insurance numbers, and numbers that follow a cue
# naming an identity document, tax or bank account, or a customer/member number.
SSN_RE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
NINO_RE = re.compile(
    r"(?<!\w)(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2}"
    r" ?[A-D](?!\w)"
)
ID_CUE = re.compile(
    r"(?:\bsocial security(?: number| no\.?)?|\bssn|\bpassport(?: number| no\.?)?|"
    r"\b(?:driver'?s?|driving) licen[cs]e(?: number| no\.?)?|"
    r"\bnational (?:id|insurance)(?: card)?(?: number| no\.?)?|\bni number|"
    r"\bid(?: card)? (?:number|no\.?)|\btax (?:id|number|code|reference)|\butr|"
    r"\bsteuer-?id|\bsteuernummer|\bpersonalausweis(?:nummer)?|\bdni|\bnif|"
    r"\bcodice fiscale|\bnuméro fiscal|\bsécurité sociale|"
    r"\b(?:bank )?account (?:number|no\.?|#)|\bacct(?:\.|ount)? ?(?:no\.?|number|#)?|"
    r"\bsort code|\brouting (?:number|no\.?)|\bkontonummer|"
    r"\b(?:member(?:ship)?|customer|loyalty card) (?:number|no\.?|id))"
    r"(?: is| was|:)?[\s:#.-]*$",
    re.IGNORECASE,
)
# After a cue: one token holding a digit in its first part ("X1234567", "12-34-56", "C-448812",
# "123 45 6789"), or a National Insurance number of any prefix ("QQ 12 34 56 C").
ID_VALUE_RE = re.compile(
    r"(?<![\w-])(?:[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]|"
    r"(?=[A-Z]*-?\d)[A-Z0-9]+(?:-[A-Z0-9]+)*(?: \d+)*)(?![\w-])",
    re.IGNORECASE,
)


def _spans_id(text: str) -> Iterable[Span]:
    for m in SSN_RE.finditer(text):
        if us_ssn.is_valid(m.group()):
            yield Span("ID", m.start(), m.end())
    for m in NINO_RE.finditer(text):
        yield Span("ID", m.start(), m.end())
    for m in ID_VALUE_RE.finditer(text):
        value = m.group()
        alnum = sum(c.isalnum() for c in value)
        digits = sum(c.isdigit() for c in value)
        if digits >= 4 and 5 <= alnum <= 24 and _cue_before(ID_CUE, text, m.start(), 40):
            yield Span("ID", m.start(), m.end())


# IP addresses identify a subscriber (personal data under the GDPR). A dotted quad after a
# version cue ("version 1.2.3.4", "v10.0.0.1") is a version, not an address.
IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
IPV6_RE = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
VERSION_CUE = re.compile(
    r"(?:\bv|\bversion|\bver\.?|\brelease|\bbuild|\bfirmware|\bupdate(?:d)? to)\s*$",
    re.IGNORECASE,
)


def _spans_ip(text: str) -> Iterable[Span]:
    for m in IPV4_RE.finditer(text):
        if _cue_before(VERSION_CUE, text, m.start(), 12):
            continue
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield Span("IP", m.start(), m.end())
    for m in IPV6_RE.finditer(text):
        value = m.group()
        # Eight groups or a "::" contraction; "10:42:17" is a time, which ip_address refuses.
        if value.count(":") < 7 and "::" not in value:
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        yield Span("IP", m.start(), m.end())


def _known_patterns(names: Iterable[str]) -> list[tuple[str, re.Pattern]]:
    """Compile the conversation's known customer fields into typed patterns."""
    out: list[tuple[str, re.Pattern]] = []
    for value in names:
        value = (value or "").strip()
        if len(value) < 2:
            continue
        kind = _classify_known(value)
        pieces = {value}
        if kind == "NAME":
            pieces |= {p for p in re.split(r"[\s,]+", value) if sum(c.isalpha() for c in p) >= 2}
            pieces = {p.strip(".") for p in pieces}
        for piece in sorted(pieces, key=len, reverse=True):
            if not piece:
                continue
            body = r"\s+".join(re.escape(w) for w in piece.split())
            out.append((kind, re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)))
    return out


def _classify_known(value: str) -> str:
    if EMAIL_RE.fullmatch(value):
        return "EMAIL"
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 13 and luhn.is_valid(digits) and not re.search(r"[A-Za-z+]", value):
        return "CARD"
    if _iban_valid(value):
        return "IBAN"
    if re.fullmatch(r"[+()\d\s./-]{7,}", value) and len(digits) >= 7:
        return "PHONE"
    if re.search(r"\d", value):
        return "ID"
    return "NAME"


def _spans_known(text: str, names: Iterable[str]) -> Iterable[Span]:
    for kind, pattern in _known_patterns(names):
        for m in pattern.finditer(text):
            yield Span(kind, m.start(), m.end())


# --- URLs -------------------------------------------------------------------------------------

URL_RE = re.compile(r"(?<![\w@])(?:https?://|www\.)[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
SECRET_PARAMS = re.compile(
    r"(?:^|[?&;#])(?:[\w-]*[_-])?(?:token|key|apikey|api_key|sig|signature|auth|code|session|"
    r"sessionid|sid|password|passwd|pwd|secret|reset|otp|jwt|access_token|id_token|hash)"
    r"(?:[_-][\w-]*)?=",
    re.IGNORECASE,
)


def _random_looking(segment: str) -> bool:
    """Say whether a path segment looks like a token: long, mixed letters and digits."""
    core = re.sub(r"[-_.~=%]", "", segment)
    if len(core) < 16:
        return False
    digits = sum(c.isdigit() for c in core)
    letters = sum(c.isalpha() for c in core)
    if digits == 0 or letters == 0:
        return len(core) >= 24 and digits > 0
    # Slugs like "how-to-reset-your-router-2024" are words joined by dashes, not tokens.
    words = [w for w in re.split(r"[-_.]", segment) if w]
    return not (len(words) >= 3 and all(len(w) < 12 for w in words))


def _spans_url(text: str) -> Iterable[Span]:
    for m in URL_RE.finditer(text):
        url = m.group().rstrip(".,;:!?")
        rest = re.sub(r"^(?:https?://)?[^/?#]*", "", url, flags=re.IGNORECASE)
        path, _, query = rest.partition("?")
        secret = bool(SECRET_PARAMS.search("?" + query)) if query else False
        secret = secret or bool(SECRET_PARAMS.search(path.partition("#")[2]))
        secret = secret or any(_random_looking(seg) for seg in re.split(r"[/#]", path))
        if secret:
            yield Span("URL", m.start(), m.start() + len(url))


# --- dates and times --------------------------------------------------------------------------

MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|"
    "januar|jänner|februar|märz|maerz|mai|juni|juli|oktober|dezember|"
    "janvier|février|fevrier|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre|"
    "décembre|decembre|"
    "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|"
    "diciembre|"
    "gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
    "januari|februari|maart|mei|augustus"
)
DAY = r"(?:[12]\d|3[01]|0?[1-9])"
ORD = r"(?:st|nd|rd|th|er|e|º|°)?"
YEAR = r"(?:19|20)\d{2}"
TIME_CORE = (
    r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:\s?[ap]\.?m\.?(?![a-z]))?"
    r"|(?:1[0-2]|0?[1-9])\s?[ap]\.?m\.?(?![a-z])"
    r"|(?:[01]?\d|2[0-3])h[0-5]\d"
)
DATE_RES = [
    # ISO 8601 dates, optionally with a time and zone: one DATE span for the whole timestamp.
    rf"{YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
    # 12/03/2024, 3.12.2024, 12-03-24, 2024/03/12
    rf"{DAY}([/.-])(?:0?[1-9]|1[0-2])\1(?:{YEAR}|\d{{2}})(?![.\d])"
    rf"|(?:0?[1-9]|1[0-2])/{DAY}/(?:{YEAR}|\d{{2}})|{YEAR}/(?:0?[1-9]|1[0-2])/{DAY}",
    # March 3, 2024 / March 3rd / Mar 3
    rf"(?:{MONTHS})\.?\s+{DAY}{ORD}(?:,?\s+{YEAR})?",
    # 3 March 2024 / 3rd of March / 15. März 2024 / 12 de marzo de 2024
    rf"{DAY}{ORD}\.?\s+(?:of\s+|de\s+)?(?:{MONTHS})\.?(?:,?\s+(?:de\s+)?{YEAR})?",
]
DATE_RE = re.compile(r"(?<![\w.,/:-])(?:" + "|".join(DATE_RES) + r")(?![\w/-]|[.,]\d)", re.I)
TIME_RE = re.compile(rf"(?<![\w.,:/-])(?:{TIME_CORE})(?![\w:]|[.,]\d)", re.IGNORECASE)


def _spans_date(text: str) -> Iterable[Span]:
    for m in DATE_RE.finditer(text):
        # "May" alone is a month and a name; with a day it is a date, never on its own.
        yield Span("DATE", m.start(), m.end())
    for m in TIME_RE.finditer(text):
        yield Span("TIME", m.start(), m.end())


# --- street addresses -------------------------------------------------------------------------

CAP = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÖØ-öø-ÿ'’.-]*"
EN_STREET = (
    r"Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    r"Square|Sq|Terrace|Way|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Row|Gardens|Mews|Walk|Hill"
)
DIRECTION = r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
# A tail like ", Washington, DC 20500", ", London SW1A 2AA", ", 10115 Berlin".
POSTCODE_TAIL = (
    r"(?:,?\s+(?:Apt|Apartment|Suite|Unit|Flat)\.?\s*#?\w+)?"
    rf"(?:,\s*(?:\d{{4,5}}(?:\s?[A-Z]{{2}})?\s+{CAP}(?:\s+{CAP})?"
    rf"|{CAP}(?:\s+{CAP})?(?:,?\s+[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?"
    r"|\s+[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}))(?![\w]))?"
)
ADDRESS_RES = [
    # 221B Baker Street, 1600 Pennsylvania Ave NW, 10 Downing Street, 350 Fifth Avenue
    rf"\d{{1,5}}[A-Za-z]?\s+(?:{CAP}\s+){{1,3}}(?:{EN_STREET})\b\.?{DIRECTION}",
    # Hauptstraße 5, Königsallee 27, Keizersgracht 123
    r"[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜ]?[a-zäöüß]+)*"
    r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|"
    r"straat|laan|gracht|plein|kade|singel|dijk)\s+\d{1,4}\s?[a-zA-Z]?(?![\w])",
    # 12 rue de la Paix, 8 avenue des Champs-Élysées
    r"\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|chemin|allée|allee|"
    rf"impasse|quai|route|cours)\s+(?:(?:de|du|des|la|le|l'|d')\s*)*{CAP}(?:\s+{CAP})*",
    # Calle Mayor 3, Avenida de la Constitución 12, Via Roma 10
    r"(?:Calle|C/|Avenida|Avda\.|Av\.|Plaza|Paseo|Camino|Carrer|Rua|Via|Viale|Piazza|Corso|"
    rf"Largo)\s+(?:(?:de|del|la|los|las|di|della|do|da|dos)\s+)*{CAP}(?:\s+{CAP})*,?\s+"
    r"(?:n\.?º\s*)?\d{1,4}[a-zA-Z]?(?![\w])",
]
ADDRESS_RE = re.compile("(?<![\\w-])(?:" + "|".join(ADDRESS_RES) + ")" + POSTCODE_TAIL)


def _spans_address(text: str) -> Iterable[Span]:
    for m in ADDRESS_RE.finditer(text):
        yield Span("ADDRESS", m.start(), m.end())


# --- person names -----------------------------------------------------------------------------

NAME_LOCALES = (
    "en_US", "en_GB", "en_IE", "en_IN", "en_NG", "en_PK", "de_DE", "de_AT", "fr_FR", "es_ES",
    "es_MX", "it_IT", "nl_NL", "pt_BR", "pt_PT", "pl_PL", "tr_TR", "sv_SE", "da_DK", "fi_FI",
    "ro_RO", "cs_CZ", "hu_HU", "ru_RU", "uk_UA", "zh_CN", "zh_TW", "vi_VN", "ja_JP", "ko_KR",
    "id_ID", "ga_IE", "fa_IR", "ar_AA",
)  # fmt: skip

# Capitalised words that are also given names or surnames: a name only with a cue or next to
# another name part ("Grace Kim", "Ask for Will Turner"), never on their own.
AMBIGUOUS = {
    "may", "will", "grace", "bill", "mark", "june", "rose", "summer", "hope", "sunday", "april",
    "august", "faith", "joy", "dawn", "ivy", "holly", "lily", "daisy", "amber", "ruby", "pearl",
    "jade", "crystal", "sky", "river", "rain", "storm", "autumn", "winter", "spring", "star",
    "sunny", "honey", "angel", "baby", "candy", "cherry", "destiny", "harmony", "heaven",
    "liberty", "melody", "patience", "precious", "charity", "unique", "royal", "king", "prince",
    "princess", "duke", "earl", "major", "general", "chase", "hunter", "carter", "mason", "cash",
    "price", "rich", "bob", "pat", "sue", "art", "gay", "guy", "ray", "don", "dean", "drew",
    "frank", "gene", "jack", "jay", "max", "miles", "neil", "norm", "reed", "rod", "sandy",
    "stone", "wade", "ward", "young", "long", "love", "best", "hill", "case", "page", "post",
    "park", "field", "bank", "bay", "green", "brown", "white", "black", "gray", "grey", "jordan",
    "georgia", "florence", "austin", "paris", "chelsea", "sydney", "victoria", "virginia",
    "carolina", "dakota", "devon", "kent", "lincoln", "madison", "phoenix", "savannah", "camden",
    "brooklyn", "orlando", "houston", "dallas", "denver", "eden", "haven", "india", "china",
    "asia", "africa", "america", "london", "berlin", "roma", "ireland", "santiago", "adelaide",
    "alexandria", "apple", "amazon", "mercedes", "tesla", "dell", "siri", "alexa", "cortana",
    "gold", "silver", "platinum", "archer", "link", "justice", "temple", "story", "sage", "miracle",
    "genesis", "trinity", "serenity", "bliss", "glory", "noble", "easter", "christmas", "porter",
    "cook", "baker", "smith", "taylor", "miller", "fisher", "turner", "parker", "cooper", "walker",
    "wood", "banks", "lake", "marsh", "moss", "north", "south", "west", "east", "short", "small",
    "little", "strong", "sharp", "wise", "power", "golden", "day", "man", "hall", "bell", "bishop",
    "judge", "knight", "pope", "lord", "sterling", "french", "english", "irish", "welsh", "swiss",
    "rome", "tanner", "bond", "cross", "rice", "branch", "pool", "fox", "wolf", "lamb", "crane",
    "finch", "swan", "salt", "pepper", "sugar", "ginger", "basil", "olive", "violet", "hazel",
    "iris", "poppy", "heather", "jasmine", "willow", "clay", "forest", "glen", "dale", "brook",
    "ash", "birch", "oak", "cliff", "rock", "sol", "luna", "nova", "aurora", "rio", "said", "van",
    "von", "de", "la", "le", "da", "di", "del", "du", "al", "el", "bin", "son", "ma", "li",
    "an", "do", "no", "so", "to", "mai", "ha", "ho", "lo", "mi", "min", "sun", "hong", "kong",
    "ping", "grant", "bright", "gentle", "moody", "swift", "free", "hardy", "lucky",
    "trade", "marshall", "sergeant", "chancellor", "vicar", "deacon", "abbot",
    "colt", "bentley", "harley", "royce", "jaguar", "cadillac", "lexus", "chevy", "camry",
}  # fmt: skip

# Capitalised words that are never names here, whatever a gazetteer says.
NOT_NAMES = {
    "i", "i'm", "i've", "i'll", "i'd", "a", "the", "this", "that", "these", "those", "it",
    "it's", "we", "we're", "you", "your", "yours", "he", "she", "they", "my", "our", "his", "her",
    "their", "hi", "hello", "hey", "dear", "thanks", "thank", "cheers", "best", "regards", "kind",
    "sincerely", "please", "sorry", "yes", "no", "ok", "okay", "sir", "madam", "team", "support",
    "sales", "billing", "service", "services", "customer", "customers", "manager", "admin",
    "account", "order", "orders", "invoice", "ticket", "refund", "payment", "card", "bank",
    "premium", "pro", "plus", "basic", "standard", "business", "enterprise", "free", "monday",
    "tuesday", "wednesday", "thursday", "friday", "saturday", "january", "february", "march",
    "october", "november", "december", "september", "july", "mr", "mrs", "ms", "miss", "dr",
    "herr", "frau", "mme", "mlle", "sr", "sra", "srta", "monsieur", "madame", "señor", "señora",
    "signor", "signora", "shri", "smt", "prof", "professor", "doctor", "chapter", "room", "flight",
    "version", "model", "firmware", "error", "code", "product", "android", "ios", "windows",
    "mac", "linux", "chrome", "firefox", "safari", "google", "microsoft", "paypal", "visa",
    "mastercard", "amex", "bluetooth", "wi-fi", "wifi", "usb", "hdmi", "iphone", "ipad",
    "samsung", "galaxy", "pixel", "tp-link", "netflix", "spotify", "facebook", "instagram",
    "whatsapp", "telegram", "skype", "zoom", "teams", "outlook", "gmail", "yahoo", "icloud",
    "is", "was", "are", "be", "and", "or", "but", "if", "when", "then", "so", "can", "could",
    "would", "should", "shall", "must", "do", "does", "did", "have", "has", "had", "not", "on",
    "in", "at", "of", "for", "from", "with", "by", "about", "after", "before", "as", "all",
    "any", "some", "every", "one", "two", "here", "there", "where", "what", "who", "why", "how",
    "also", "still", "just", "only", "again", "now", "today", "tomorrow", "yesterday", "new",
    "old", "good", "great", "happy", "fine", "well", "hallo", "bonjour", "bonsoir", "hola",
    "ciao", "salut", "grazie", "gracias", "merci", "danke", "vielen", "dank", "sehr",
    "geehrte", "geehrter", "liebe", "lieber", "mit", "freundlichen", "grüßen", "gruß", "viele",
    "grüße", "cordialement", "atenciosamente", "saludos", "pozdrawiam", "saygılarımla",
    "groet", "vriendelijke", "met", "customer's", "reception", "delivery", "shipping", "status",
    "help", "faq", "login", "password", "reset", "delete", "settings", "update", "app", "web",
    "website", "email", "e-mail", "phone", "mobile", "sms", "pin", "iban", "bic", "swift",
    "pay", "wallet", "gift", "voucher", "promo", "sale", "stock", "warehouse", "store", "shop",
    "city", "street", "road", "avenue", "lane", "state", "county", "country", "europe", "usa",
    "uk", "eu", "us", "ceo", "cto", "hr", "qa", "vip", "gb", "tb", "mb", "kb",
}  # fmt: skip

NATIONALITIES = {
    "american", "british", "english", "scottish", "welsh", "irish", "german", "french",
    "spanish", "italian", "dutch", "danish", "swedish", "norwegian", "finnish", "polish",
    "portuguese", "brazilian", "mexican", "canadian", "australian", "indian", "chinese",
    "japanese", "korean", "vietnamese", "thai", "turkish", "greek", "russian", "ukrainian",
    "arabic", "hindi", "latin", "european", "asian", "african", "swiss", "austrian", "belgian",
    "czech", "hungarian", "romanian", "world", "company", "number", "research", "learning",
    "click", "meta", "server", "lean", "rush", "vi", "contact", "install", "installation",
    "rica", "costa", "salvador", "lanka", "zealand",
}  # fmt: skip

PARTICLES = {
    "de", "da", "di", "del", "della", "van", "von", "der", "den", "ter", "ten", "la", "le", "du",
    "des", "dos", "das", "bin", "binti", "ibn", "al", "el", "y", "zu", "af",
}  # fmt: skip

TITLE = (
    r"(?:Mr|Mrs|Ms|Mx|Dr|Prof|M|Sr|Sra|Srta|Sig|Sig\.ra|Fr)\.|Mr|Mrs|Ms|Dr|Miss|Herr|Frau|Mme|"
    r"Mlle|Shri|Smt|Sri|Monsieur|Madame|Señor|Señora|Signor|Signora|Doña|Sir|Dame|Lady|Lord"
)
# After these a capitalised word is taken as a name even when no gazetteer knows it.
STRONG_CUE = re.compile(
    rf"(?:\b(?:{TITLE})|\bmy name is|\bmy name's|\bname:|\bnamed|\bcalled|\bdear|"
    r"\bmein name ist|\bich bin|\bich heiße|\bje m'appelle|\bje suis|\bme llamo|\bmi nombre es|"
    r"\bmi chiamo|\bsono|\bmijn naam is|\bik ben|\bmeu nome é|\bchamo-me|"
    r"\bsehr geehrte[r]?|\bliebe[r]?|\bchère|\bcher|\bestimad[oa]|\bgentile|\bcaro|\bcara|"
    r"\bhi|\bhello|\bhey|\bhallo|\bbonjour|\bhola|\bciao|\bola|\bolá|\bgood morning|"
    r"\bthanks|\bthank you|\bthx|\bmany thanks|"
    r"(?:\bcheers|\bbest|\bregards|\bsincerely|\byours(?: truly)?|\ball the best)\s*[,\n]|"
    r"\bgrazie|\bgracias|\bmerci|\bdanke|"
    r"\bgrüße|\bgruß|\bcordialement|\batenciosamente|\bsaludos|\bpozdrawiam|\bsaygılarımla|"
    r"\bgroet|\bgroeten|\bsigned|\bask for|\bspoke (?:to|with)|\bspeak (?:to|with)|"
    r"\bcolleague|\bhusband|\bwife|\bdaughter|\bson|\bmother|\bfather|\bsister|\bbrother|"
    r"\bpartner|\bfriend|\bneighbou?r|\bcustomer|\bagent|\btechnician|\bdriver|\bcourier|"
    r"\bmanager|\bholder|\bbehalf of(?: my \w+)?)"
    r"[\s,:.!-]*$",
    re.IGNORECASE,
)
# Weak cues make a gazetteer word a name even when it is also a common word.
WEAK_CUE = re.compile(
    r"(?:\bi'?m|\bi am|\bthis is|\bit's|\bit is|\bfrom|\bfor|\bto|\bcontact|\bby|\bwith|\bcc|"
    r"\band|\bor)"
    r"[\s,]*$",
    re.IGNORECASE,
)
AFTER_CUE = re.compile(r"^[ ,]*(?:here\b|speaking\b|is my\b|and I\b)", re.IGNORECASE)

NAME_TOKEN = re.compile(r"(?<![\w'’-])[^\W\d_]+(?:['’-][^\W\d_]+)*(?![\w'’-])")


def _is_name_token(word: str) -> bool:
    """Say whether a word is capitalised like a name part: "Anna", "O'Brien", "McKay", "Đặng"."""
    if len(word) < 2 or not word[0].isupper() or not (word[1].islower() or word[1] in "'’"):
        return False
    # Inner capitals only after a prefix or joint: McKay, MacLeod, O'Brien, DeShawn, Jean-Luc.
    inner = re.sub(r"^(?:Mc|Mac|O['’]|D['’]|De|Di|Da|La|Le|Van)(?=[A-Z])", "", word)
    return all(not c.isupper() or inner[i - 1] in "'’-" for i, c in enumerate(inner) if i)


def _fold(word: str) -> str:
    """Lower-case and strip diacritics so "Nguyễn" and "Nguyen" meet."""
    word = word.lower().replace("đ", "d").replace("ł", "l").replace("ß", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


@functools.cache
def _gazetteer() -> tuple[frozenset[str], frozenset[str]]:
    """Return (given names, surnames), folded, from Faker's person providers."""
    first: set[str] = set()
    last: set[str] = set()
    for locale in NAME_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except (ImportError, AttributeError):
            continue
        for attr, bucket in (
            ("first_names", first), ("first_romanized_names", first),
            ("first_names_male", first), ("first_names_female", first),
            ("last_names", last), ("last_romanized_names", last),
        ):  # fmt: skip
            for name in getattr(provider, attr, ()) or ():
                for part in re.split(r"[\s-]+", str(name)):
                    if part.isalpha() and part[0].isupper() and len(part) >= 2:
                        bucket.add(_fold(part))
    return frozenset(first), frozenset(last)


@functools.cache
def _common_words() -> frozenset[str]:
    """Return lower-case English words from the Python reference text shipped with CPython.

    A gazetteer name that is also an everyday word ("Among", "Line", "Max") needs a cue.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a stripped-down Python without pydoc_data
        return frozenset()
    text = " ".join(topics.values())
    return frozenset(re.findall(r"(?<![\w.])([a-z]{2,})(?![\w(])", text))


@functools.cache
def _places() -> frozenset[str]:
    """Return folded country names and nationality words, which are never person names."""
    words = set(NATIONALITIES)
    try:
        countries = importlib.import_module("faker.providers.address.en_US").Provider.countries
    except (ImportError, AttributeError):
        countries = ()
    words.update(_fold(c) for c in countries if " " not in c)
    return frozenset(words)


@functools.cache
def _word_lists() -> tuple[frozenset[str], frozenset[str]]:
    """Return the folded (never-names, ambiguous) word sets."""
    stop = {_fold(w) for w in NOT_NAMES} | _places()
    return frozenset(stop), frozenset({_fold(w) for w in AMBIGUOUS} | _common_words())


def _token_kind(token: str) -> str:
    """Classify a capitalised token: first, last, ambiguous, stop or unknown."""
    folded = _fold(token)
    stop, ambiguous = _word_lists()
    if folded in stop:
        return "stop"
    if folded in ambiguous:
        return "ambiguous"
    first, last = _gazetteer()
    parts = [p for p in re.split(r"['’-]", folded) if len(p) >= 2]
    if folded in first or any(p in first for p in parts if p not in AMBIGUOUS):
        return "first"
    if folded in last or any(p in last for p in parts if p not in AMBIGUOUS):
        return "last"
    return "unknown"


def _joins_name(gap: str) -> bool:
    """Say whether the text between two capitalised tokens keeps them in one name."""
    if "\n" in gap:
        return False
    if gap.isspace():
        return len(gap) <= 2
    words = gap.split()
    return (
        gap[0] == " " and gap[-1] == " " and len(words) <= 2
        and all(w.lower() in PARTICLES for w in words)
    )  # fmt: skip


def _name_runs(text: str) -> Iterable[tuple[int, int, list[str]]]:
    """Yield runs of capitalised tokens (with particles like "de", "van") and their kinds."""
    tokens = [
        (m.start(), m.end(), m.group())
        for m in NAME_TOKEN.finditer(text)
        if _is_name_token(m.group())
    ]
    i = 0
    while i < len(tokens):
        start, end, word = tokens[i]
        kinds = [_token_kind(word)]
        bounds = [(start, end)]
        j = i + 1
        while j < len(tokens):
            if not _joins_name(text[bounds[-1][1] : tokens[j][0]]):
                break
            bounds.append((tokens[j][0], tokens[j][1]))
            kinds.append(_token_kind(tokens[j][2]))
            j += 1
        # Split the run at stop words; each piece is judged on its own.
        piece: list[int] = []
        for k in range(len(bounds) + 1):
            if k < len(bounds) and kinds[k] != "stop":
                piece.append(k)
                continue
            if piece:
                yield bounds[piece[0]][0], bounds[piece[-1]][1], [kinds[p] for p in piece]
            piece = []
        i = j


def _spans_name(text: str) -> Iterable[Span]:
    for start, end, kinds in _name_runs(text):
        if len(kinds) > 4:
            continue
        before = text[max(0, start - 40) : start]
        strong = bool(STRONG_CUE.search(before)) or bool(AFTER_CUE.match(text[end : end + 20]))
        weak = bool(WEAK_CUE.search(before))
        n_first, n_last = kinds.count("first"), kinds.count("last")
        n_amb, n_unknown = kinds.count("ambiguous"), kinds.count("unknown")
        if strong:
            ok = n_first + n_last + n_unknown > 0 or len(kinds) >= 2
        elif weak:
            ok = n_first + n_last > 0
        elif len(kinds) == 1:
            ok = n_first == 1
        else:
            # No cue: every part known, except one unknown given name or surname.
            ok = (n_first >= 1 or (n_amb >= 1 and n_last >= 1) or n_last >= 2) and (
                n_unknown == 0
                or (n_unknown == 1 and kinds[-1] == "unknown" and kinds[0] == "first")
                or kinds == ["unknown", "last"]
            )
        if ok:
            yield Span("NAME", start, end)


# Self-introductions, greetings and sign-offs typed in lower case ("my name is john smith").
LOWER_CUE = re.compile(
    r"(?:\bmy name is|\bmy name's|\bname:|\bthis is|\bi'?m|\bi am|\bit'?s|\bhi|\bhello|"
    r"\bhey|\bdear|\bthanks|\bthank you|\bthx|\bcheers|\bregards|\bme llamo|"
    r"\bmi nombre es|\bje m'appelle|\bje suis|\bich heiße|\bich heisse|\bich bin|"
    r"\bmi chiamo|\bsono|\bmijn naam is|\bik ben|\bmeu nome é)[\s,:.!-]*$",
    re.IGNORECASE,
)


def _spans_lower_name(text: str) -> Iterable[Span]:
    """Lower-case names after a cue: a known given name that is no everyday word, plus the
    given names or surnames typed right after it."""
    first, last = _gazetteer()
    stop, ambiguous = _word_lists()
    tokens = list(NAME_TOKEN.finditer(text))
    for i, m in enumerate(tokens):
        word = m.group()
        folded = _fold(word)
        if (len(word) < 2 or not word[0].islower() or folded in stop or folded in ambiguous
                or folded not in first):
            continue
        if not _cue_before(LOWER_CUE, text, m.start()):
            continue
        end = m.end()
        for following in tokens[i + 1 : i + 3]:
            part = _fold(following.group())
            if (text[end : following.start()] != " " or not following.group()[0].islower()
                    or part in stop or not (part in first or part in last)):
                break
            end = following.end()
        yield Span("NAME", m.start(), end)


DETECTORS = [
    _spans_email, _spans_url, _spans_card, _spans_card_extra, _spans_iban, _spans_id, _spans_ip,
    _spans_phone, _spans_local_phone, _spans_date, _spans_address, _spans_name, _spans_lower_name,
]  # fmt: skip


def _resolve(candidates: list[tuple[int, Span]]) -> list[Span]:
    """Keep the best non-overlapping spans: higher priority first, then longer."""
    candidates.sort(key=lambda ps: (-ps[0], -(ps[1].end - ps[1].start), ps[1].start))
    taken: list[Span] = []
    for _, span in candidates:
        if span.end <= span.start:
            continue
        if any(span.start < t.end and t.start < span.end for t in taken):
            continue
        taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def find(text: str, names: Iterable[str] = ()) -> list[Span]:
    """Return the PII spans in text, sorted and non-overlapping."""
    if not text:
        return []
    candidates: list[tuple[int, Span]] = []
    for span in _spans_known(text, names):
        candidates.append((PRIORITY["KNOWN"], span))
    for detector in DETECTORS:
        for span in detector(text):
            candidates.append((PRIORITY[span.type], span))
    return _resolve(candidates)


def scrub_with_counts(text: str, names: Iterable[str] = ()) -> tuple[str, Counter]:
    """Replace PII with typed placeholders and count the replacements per type."""
    spans = find(text, names)
    counts: Counter = Counter()
    parts: list[str] = []
    pos = 0
    for span in spans:
        parts.append(text[pos : span.start])
        parts.append(f"[{span.type}]")
        counts[span.type] += 1
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts), counts


def scrub(text: str) -> str:
    """Replace PII in text with typed placeholders."""
    return scrub_with_counts(text)[0]


def covers(predicted: Span, labelled: dict | Span, share: float = 0.8) -> bool:
    """Say whether a predicted span of the same type covers at least `share` of a labelled one."""
    kind, start, end = (
        (labelled["type"], labelled["start"], labelled["end"])
        if isinstance(labelled, dict)
        else labelled
    )
    if predicted.type != kind:
        return False
    return min(predicted.end, end) - max(predicted.start, start) >= share * (end - start)


def score(rows: Iterable[dict], finder=find) -> dict[str, dict[str, float]]:
    """Score a finder on labelled rows per type: recall, precision, F1 and counts.

    A labelled span is found when a predicted span of the same type covers >= 80 % of it; a
    predicted span is correct when it covers >= 80 % of some labelled span of its type.
    """
    found: Counter = Counter()
    labelled: Counter = Counter()
    correct: Counter = Counter()
    predicted: Counter = Counter()
    for row in rows:
        spans = finder(row["text"])
        for gold in row["spans"]:
            labelled[gold["type"]] += 1
            found[gold["type"]] += any(covers(p, gold) for p in spans)
        for p in spans:
            predicted[p.type] += 1
            correct[p.type] += any(covers(p, gold) for gold in row["spans"])
    report = {}
    for kind in sorted(set(labelled) | set(predicted)):
        recall = found[kind] / labelled[kind] if labelled[kind] else float("nan")
        precision = correct[kind] / predicted[kind] if predicted[kind] else float("nan")
        if labelled[kind] and not predicted[kind]:
            precision, f1 = float("nan"), 0.0
        else:
            f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        report[kind] = {
            "recall": recall, "precision": precision, "f1": f1,
            "labelled": labelled[kind], "predicted": predicted[kind],
        }  # fmt: skip
    return report


def format_report(report: dict[str, dict[str, float]]) -> str:
    """Render a score report as a fixed-width table."""
    lines = [
        f"{'type':<8} {'labelled':>8} {'predicted':>9} {'recall':>7} {'precision':>9} {'F1':>6}"
    ]
    for kind, r in report.items():
        lines.append(
            f"{kind:<8} {r['labelled']:>8} {r['predicted']:>9} {r['recall']:>7.3f} "
            f"{r['precision']:>9.3f} {r['f1']:>6.3f}"
        )
    return "\n".join(lines)
