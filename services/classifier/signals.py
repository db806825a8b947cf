"""Facts about a ticket's text besides its category: language, sentiment, urgency, PII and
suspected prompt injection. Pure, offline and fast (thousands of tickets a second).

Every detector is a small, explainable heuristic, because the policy acts on these facts
and an operator must be able to see why one fired:

* language: py3langid (bundled model) restricted to the languages a support desk meets,
  `unknown` below 8 letters or 0.5 confidence;
* sentiment: an English lexicon with negation, intensifiers, capitals and `!` (VADER-like);
* urgency: cue phrases, most severe wins, "not urgent" read as low;
* PII: e-mail, phone, card number (Luhn + issuer prefix), IBAN (mod-97); `redact_pii`
  replaces exactly what is detected, before text leaves for an LLM;
* injection: phrases that address the model instead of the support desk, role markers,
  hidden text and encoded blobs; the subject line is checked on its own too;
* unusual input: reason codes for what the model was not validated on or only a broken
  upstream or an attacker sends (controls, invisible characters, mixed scripts or
  languages, code, blobs, oversize text, smuggled decision fields, odd ids, times, keys).

All patterns use bounded repetition, so a hostile 20,000-character body costs linear time.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Final, Literal

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from shared.contracts import MAX_TICKET_ID_CHARS, SCHEMA_VERSION, Customer, TicketReceived

Sentiment = Literal["negative", "neutral", "positive"]
Urgency = Literal["low", "normal", "high", "critical"]
PiiKind = Literal["email", "phone", "card", "iban"]

PII_KINDS: Final[tuple[PiiKind, ...]] = ("email", "phone", "card", "iban")
UNKNOWN_LANGUAGE: Final = "unknown"


@dataclass(frozen=True, slots=True)
class TextSignals:
    """Everything `analyse` found in one ticket."""

    language: str
    sentiment: Sentiment
    sentiment_score: float
    urgency: Urgency
    pii_kinds: tuple[PiiKind, ...]
    injection_reasons: tuple[str, ...]
    unusual: tuple[str, ...] = ()

    @property
    def pii_detected(self) -> bool:
        """Return whether any PII was found."""
        return bool(self.pii_kinds)

    @property
    def injection_suspected(self) -> bool:
        """Return whether any injection pattern fired."""
        return bool(self.injection_reasons)


def analyse(subject: str, body: str) -> TextSignals:
    """Return every signal for a ticket; the subject is also checked for injection alone."""
    text = f"{subject}\n{body}" if subject else body
    label, score = score_sentiment(text)
    reading = _default_detector().read(text)
    return TextSignals(
        language=reading.language,
        sentiment=label,
        sentiment_score=score,
        urgency=assess_urgency(text),
        pii_kinds=pii_kinds(text),
        injection_reasons=injection_reasons(body, subject=subject),
        unusual=_unusual_text(subject, body, mixed_languages=reading.mixed),
    )


def _words(text: str) -> tuple[str, ...]:
    # Word lists read best as running text.
    return tuple(text.split())


# ---------------------------------------------------------------------------- language

# The languages a support desk is likely to receive. Restricting the candidates keeps
# short Spanish from being read as Galician and "ok" from being read as Serbian.
DEFAULT_LANGUAGES: Final = _words(
    "en de fr es it pt nl sv da no fi is pl cs sk hu ro bg el ru uk tr ar he fa hi bn ur "
    "zh ja ko vi th id ms tl hr sr sl lt lv et ca eu gl sq mk be ka hy az kk"
)


class LanguageDetector:
    """py3langid restricted to a set of languages, abstaining on short or unclear text."""

    def __init__(
        self,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        min_confidence: float = 0.5,
        min_letters: int = 8,
        max_chars: int = 600,
        window_chars: int = 150,
        max_windows: int = 8,
        window_letters: int = 80,
        window_confidence: float = 0.9,
    ) -> None:
        self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self._identifier.set_languages(list(languages))
        self.min_confidence = min_confidence
        self.min_letters = min_letters
        self.max_chars = max_chars
        self.window_chars = window_chars
        self.max_windows = max_windows
        self.window_letters = window_letters
        self.window_confidence = window_confidence

    def detect(self, text: str) -> str:
        """Return the ISO 639-1 code of `text` (its opening), or `unknown`."""
        language, confidence = self._classify(text[: self.max_chars], self.min_letters)
        return language if confidence >= self.min_confidence else UNKNOWN_LANGUAGE

    def read(self, text: str) -> LanguageReading:
        """Return the language of the opening of `text` and whether another one follows."""
        # The opening of a ticket decides its language (py3langid walks its automaton byte
        # by byte in Python, so reading everything costs); windows spread over the rest, at
        # most `max_windows` of them, tell whether a second language hides further on.
        opening = text[: self.max_chars]
        language, confidence = self._classify(opening, self.min_letters)
        found = {language} if confidence >= self.window_confidence else set()
        for window in self._windows(text):
            other, sure = self._classify(window, self.window_letters)
            if sure >= self.window_confidence:
                found.add(other)
        if confidence < self.min_confidence:
            language = UNKNOWN_LANGUAGE
        return LanguageReading(language, mixed=len(found) > 1)

    def _classify(self, text: str, min_letters: int) -> tuple[str, float]:
        if sum(map(str.isalpha, text)) < min_letters:
            return UNKNOWN_LANGUAGE, 0.0
        language, confidence = self._identifier.classify(text)
        return str(language), float(confidence)

    def _windows(self, text: str) -> list[str]:
        size = self.window_chars
        if len(text) <= self.max_chars:
            # The opening is all of it: its two halves, if each is long enough to tell.
            half = len(text) // 2
            return [text[:half], text[half:]] if half >= size else []
        # Windows of `size` spread from the end of the opening to the end of the text.
        start, end = self.max_chars, len(text)
        count = max(1, min(self.max_windows, -(-(end - start) // size)))
        step = (end - start - size) / (count - 1) if count > 1 else 0.0
        first = max(0, start if count > 1 else end - size)
        return [
            text[first + round(i * step) : first + round(i * step) + size] for i in range(count)
        ]


@dataclass(frozen=True, slots=True)
class LanguageReading:
    """The language of a text's opening and whether a second language follows."""

    language: str
    mixed: bool


@cache
def _default_detector() -> LanguageDetector:
    return LanguageDetector()


def detect_language(text: str) -> str:
    """Return the ISO 639-1 code of `text`, or `unknown` if too short or unclear."""
    return _default_detector().detect(text)


def warm_up() -> None:
    """Load the language model now (~0.3 s) instead of on the first ticket."""
    _default_detector()


# --------------------------------------------------------------------------- sentiment


def _weights(weight: float, words: str) -> dict[str, float]:
    return dict.fromkeys(words.split(), weight)


# Emotion words weigh most; everyday problem words ("error", "late") weigh little, so a
# plain bug report stays neutral and an angry one does not.
_LEXICON: Final[dict[str, float]] = {
    **_weights(
        -3.0,
        "furious outraged outrageous disgusting disgraceful pathetic worst horrible horrendous "
        "awful terrible useless ridiculous unacceptable scam scammed scammers shameful "
        "incompetent livid appalling atrocious hate hated rubbish garbage crap sucks liar "
        "liars thieves robbed robbery fuming insane disgusted",
    ),
    **_weights(
        -2.0,
        "angry annoyed annoying frustrated frustrating disappointed disappointing upset unhappy "
        "poor bad rude nightmare mess waste wasted nonsense shocking shocked unprofessional "
        "unreliable ignored ignoring misleading lousy sick tired joke hopeless dreadful "
        "sloppy absurd lies lied cheated stupid idiots",
    ),
    **_weights(
        -1.0,
        "problem problems issue issues broken crash crashes crashed fail fails failed failing "
        "error errors wrong worried worry confused concerned unfortunately sadly stuck late "
        "delayed missing lost damaged bug buggy inconvenience difficult impossible complaint "
        "slow annoyance confusing unclear disappointment",
    ),
    **_weights(
        3.0,
        "amazing excellent fantastic wonderful brilliant outstanding superb perfect love loved "
        "awesome delighted grateful thrilled phenomenal exceptional",
    ),
    **_weights(
        2.0,
        "great good happy glad pleased appreciate appreciated helpful nice satisfied impressed "
        "kind lovely smooth recommend solved resolved enjoy enjoyed",
    ),
    # Not "fine" or "works": "the website works fine" is how a login problem is described.
    **_weights(1.0, "thanks thank thx hope hopefully"),
}
_NEGATORS: Final = frozenset(
    _words(
        "not no nor nothing dont doesnt didnt isnt wasnt arent werent cant cannot wont "
        "hardly without"
    )
)
_INTENSIFIERS: Final[dict[str, float]] = {
    **_weights(1.5, "very extremely really absolutely totally so completely utterly truly"),
    **_weights(1.3, "quite pretty too super"),
}
# Set phrases whose words would mislead the lexicon ("best regards" is not praise).
_PHRASES: Final[tuple[tuple[re.Pattern[str], float], ...]] = tuple(
    (re.compile(pattern, re.IGNORECASE), weight)
    for pattern, weight in (
        (r"\bthanks? (you )?for nothing\b", -3.0),
        (r"\bfed up\b|\bsick (and tired )?of\b|\bwaste of (my )?(time|money)\b", -2.5),
        (r"\brip[- ]?off\b|\bnever again\b|\bwhat a joke\b", -2.5),
        (r"\bthank you so much\b|\bthanks so much\b|\bmany thanks\b|\bmuch appreciated\b", 2.0),
        (r"\b(best|kind|warm) (regards|wishes)\b|\bgood (morning|afternoon|evening|day)\b", 0.0),
        (r"\b(no|not a) problem\b", 0.5),
    )
)
_TOKEN: Final = re.compile(r"[A-Za-z']+")
_NEGATION_SCOPE: Final = 3


def score_sentiment(text: str) -> tuple[Sentiment, float]:
    """Return the tone of an (English) text: label and score in -1..1."""
    total = 0.0
    for pattern, weight in _PHRASES:
        text, hits = pattern.subn(" ", text)
        total += weight * hits
    total += _lexicon_total(_TOKEN.findall(text))
    if total:
        # Exclamation marks amplify whatever tone is there, up to +40 %.
        total *= 1.0 + 0.1 * min(text.count("!"), 4)
    score = total / math.sqrt(total * total + 15.0)  # VADER's squashing into -1..1
    label: Sentiment = "negative" if score <= -0.3 else "positive" if score >= 0.3 else "neutral"
    return label, round(score, 4)


def _lexicon_total(tokens: list[str]) -> float:
    total = 0.0
    since_negator = _NEGATION_SCOPE + 1
    boost = 1.0
    for raw in tokens:
        word = raw.lower().replace("'", "")
        since_negator += 1
        if word in _NEGATORS:
            since_negator = 0
            continue
        if word in _INTENSIFIERS:
            boost *= _INTENSIFIERS[word]
            continue
        weight = _LEXICON.get(word)
        if weight is None:
            boost = 1.0
            continue
        if raw.isupper() and len(raw) > 2:
            weight *= 1.3  # SHOUTING
        if since_negator <= _NEGATION_SCOPE:
            weight *= -0.74  # "not happy" is negative, but milder than "unhappy" (VADER)
        total += weight * boost
        boost = 1.0
    return total


# ----------------------------------------------------------------------------- urgency

_FOLD: Final = re.compile(r"[^a-z0-9]+")


def _cues(text: str) -> tuple[str, ...]:
    """Return `a_b c` as (" a b ", " c "): phrases ready for a whole-word substring test."""
    return tuple(f" {cue.replace('_', ' ')} " for cue in text.split())


# Cue phrases, matched as whole words on lower-cased text with punctuation folded to
# spaces: a substring test per phrase is many times faster than a regex scan, and the
# lists read like what they are.
_NOT_URGENT: Final = _cues(
    "not_urgent non_urgent no_rush no_hurry not_a_priority low_priority whenever_you_can "
    "whenever_you_get when_you_get_a_chance when_you_have_a_moment when_you_have_time "
    "when_you_have_a_minute at_your_convenience at_your_leisure just_curious just_wondering"
)
_CRITICAL: Final = _cues(
    "outage outages is_down are_down went_down been_down was_down were_down goes_down "
    "going_down site_down app_down service_down platform_down server_down servers_down "
    "system_down website_down api_down production_down prod_down everything_down "
    "completely_down totally_down down_for_everyone down_for_everybody down_for_all "
    "all_customers all_users all_clients all_stores all_locations all_employees "
    "all_our_customers all_our_users all_our_clients all_our_stores all_our_locations "
    "all_of_our_customers all_of_our_users all_my_customers every_customer every_user "
    "no_one_can noone_can nobody_can none_of_us_can nobody_here_can no_one_here_can "
    "none_of_our_users none_of_our_customers nobody_is_able "
    "fraud fraudulent unauthorized unauthorised hacked data_breach security_breach "
    "emergency data_loss losing_money losing_sales losing_revenue losing_customers "
    "losing_orders"
)
_HIGH: Final = _cues(
    "urgent urgently asap as_soon_as_possible immediately right_now right_away critical "
    "deadline blocked blocking blocker stolen compromised cant_log_in cant_login "
    "cant_sign_in cant_access cant_work cant_get_in cannot_log_in cannot_login "
    "cannot_sign_in cannot_access unable_to_log_in unable_to_login unable_to_sign_in "
    "unable_to_access locked_out by_today by_tonight by_tomorrow by_end_of_day "
    "by_end_of_the_day by_eod before_tomorrow before_tonight need_it_today need_it_now "
    "need_this_today need_this_now need_access_today need_access_now need_help_now "
    "need_help_urgently still_not still_no still_waiting second_time third_time "
    "fourth_time fifth_time 2nd_time 3rd_time 4th_time 5th_time legal_action lawyer "
    "lawyers attorney court sue"
)
_HIGH_PREFIXES: Final = (" escalat",)  # escalate, escalated, escalation, ...
_LOW: Final = _cues(
    "suggestion feature_request feature_idea would_be_nice would_be_great would_be_cool "
    "would_be_useful itd_be_nice wish any_plans any_plan roadmap"
)


def _folded(text: str) -> str:
    """Return ` words like these `: lower case, apostrophes dropped, the rest as spaces."""
    return " " + _FOLD.sub(" ", text.lower().replace("'", "").replace("’", "")) + " "


def _has_any(folded: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase in folded for phrase in phrases)


def assess_urgency(text: str) -> Urgency:
    """Return low/normal/high/critical from cue phrases; the most severe cue wins."""
    folded = _folded(text)
    # "not urgent" must not count as "urgent": cut those phrases out first.
    calm = False
    for phrase in _NOT_URGENT:
        if phrase in folded:
            calm = True
            folded = folded.replace(phrase, " | ")
    if _has_any(folded, _CRITICAL):
        return "critical"
    if _has_any(folded, _HIGH) or "!!" in text or any(p in folded for p in _HIGH_PREFIXES):
        return "high"
    if calm or _has_any(folded, _LOW):
        return "low"
    return "normal"


# --------------------------------------------------------------------------------- PII


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One piece of PII: its kind and where it is in the text."""

    kind: PiiKind
    start: int
    end: int


_EMAIL: Final = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
    r"\.[A-Za-z]{2,24}\b"
)
_PHONES: Final = (
    # International: a leading + and 8-15 digits in groups.
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?!\w)"),
    # North American: (415) 555-0123, 415-555-0123, 415.555.0123.
    re.compile(r"(?<![\w(])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)"),
    # Any local number right after a word that announces one.
    re.compile(
        r"(?i:\b(?:phone|tel|telephone|mobile|cell|whatsapp|call me|text me|reach me)\b)"
        r"[^\d+\n]{0,20}(\+?\d[\d ().-]{6,18}\d)(?!\w)"
    ),
)
_CARD: Final = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN: Final = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b")
# Lengths of the most common IBANs: lets "DE89 ... 00 THANKS" be cut at the right place.
_IBAN_LENGTHS: Final = {
    "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IT": 27,
    "LT": 20, "LU": 20, "LV": 21, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
    "SE": 24, "SI": 19, "SK": 24,
}  # fmt: skip
_PLACEHOLDERS: Final[dict[PiiKind, str]] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "iban": "[IBAN]",
}


def luhn_valid(digits: str) -> bool:
    """Return whether a digit string passes the Luhn checksum (card numbers)."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Return whether a string (spaces allowed) is an IBAN with a valid mod-97 check."""
    compact = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    expected = _IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def find_pii(text: str) -> list[PiiMatch]:
    """Return every PII match, in text order, without overlaps."""
    found: list[PiiMatch] = []
    # IBANs and cards first, then masked: their digits would otherwise look like phones.
    masked = text
    for finder in (_ibans, _cards, _emails, _phones):
        matches = list(finder(masked))
        found.extend(matches)
        for m in matches:
            masked = masked[: m.start] + " " * (m.end - m.start) + masked[m.end :]
    return sorted(found, key=lambda m: m.start)


def pii_kinds(text: str) -> tuple[PiiKind, ...]:
    """Return the kinds of PII in `text`, in the fixed order email, phone, card, iban."""
    kinds = {m.kind for m in find_pii(text)}
    return tuple(k for k in PII_KINDS if k in kinds)


def redact_pii(text: str) -> str:
    """Return `text` with every detected e-mail, phone, card and IBAN replaced by a tag."""
    parts: list[str] = []
    last = 0
    for m in find_pii(text):
        parts += [text[last : m.start], _PLACEHOLDERS[m.kind]]
        last = m.end
    parts.append(text[last:])
    return "".join(parts)


def _emails(text: str) -> Iterator[PiiMatch]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            yield PiiMatch("email", m.start(), m.end())


def _phones(text: str) -> Iterator[PiiMatch]:
    taken: list[tuple[int, int]] = []
    for pattern in _PHONES:
        for m in pattern.finditer(text):
            group = 1 if pattern.groups else 0
            start, end = m.start(group), m.end(group)
            digits = sum(ch.isdigit() for ch in m.group(group))
            if 8 <= digits <= 15 and not any(s < end and start < e for s, e in taken):
                taken.append((start, end))
                yield PiiMatch("phone", start, end)


def _cards(text: str) -> Iterator[PiiMatch]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        # Issuers start with 2-6; all-same digits pass Luhn but are placeholders.
        if digits[0] in "23456" and len(set(digits)) > 1 and luhn_valid(digits):
            yield PiiMatch("card", m.start(), m.end())


def _ibans(text: str) -> Iterator[PiiMatch]:
    for m in _IBAN.finditer(text):
        span = _valid_iban_prefix(m.group())
        if span:
            yield PiiMatch("iban", m.start(), m.start() + span)


def _valid_iban_prefix(candidate: str) -> int:
    """Return the length of the longest prefix of `candidate` that is a valid IBAN, or 0."""
    # The pattern may swallow a following word ("... 00 THANKS"): try shorter prefixes.
    ends = [i + 1 for i, ch in enumerate(candidate) if ch != " "]
    for length in range(min(len(ends), 34), 14, -1):
        if iban_valid(candidate[: ends[length - 1]]):
            return ends[length - 1]
    return 0


# --------------------------------------------------------------------------- injection

_I = re.IGNORECASE
# (reason, triggers, pattern): the pattern only runs if the lower-cased text contains one of
# the triggers, each a substring every match of the pattern must contain. Most tickets
# contain none, and a substring test costs a fraction of a regex scan.
_INJECTION_PATTERNS: Final[tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...]] = (
    (
        "ignore_instructions",
        ("ignor", "disregard", "forget", "override", "bypass"),
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass)\b[\s,]+(?:[\w'-]+[\s,]+){0,4}?"
            r"(?:instructions?|rules|prompts?|guidelines|guardrails|directives|programming"
            r"|constraints|system message)\b"
            r"|\bdisregard (?:all|any|every)\w* (?:previous|prior|above|earlier)\b"
            # German, French, Spanish: the same request in the languages we receive most.
            r"|\bignorier\w*\b.{0,40}?\b(?:anweisungen|regeln|vorgaben)\b"
            r"|\bignore[rz]?\b.{0,40}?\b(?:consignes|r[eè]gles)\b"
            r"|\bignora\w*\b.{0,40}?\b(?:instrucciones|reglas)\b",
            _I,
        ),
    ),
    (
        "role_override",
        ("you are now", "from now on", "pretend", "act as", "new role", "new persona", "new instr"),
        re.compile(
            r"\byou are now\b|\bfrom now on,? you\b|\bpretend (?:to be|you are|you're)\b"
            r"|\bact as (?:an?|the|my) (?:ai|assistant|system|admin\w*|developer|model|agent)\b"
            r"|\bnew (?:role|persona|instructions?)\s*:",
            _I,
        ),
    ),
    (
        "role_marker",
        (
            "system",
            "assistant",
            "developer",
            "<|",
            "[inst",
            "[/inst",
            "<<sys",
            "<</sys",
            "instruction",
            "###",
        ),
        re.compile(
            r"\bSYSTEM\s*:|\bSYSTEM (?:MESSAGE|PROMPT|OVERRIDE|NOTE)\b"
            r"|(?im:^[\s>*#\[\"']*(?:assistant|developer)\s*:)"
            r"|(?i:\bsystem\s*(?:message|prompt|override|note|instruction)s?\s*[:\]])"
            # "System: macOS 14" is a bug report; "system: you are..." is not.
            r"|(?im:^[\s>*#\[\"']*system\s*:\s*(?:you|ignore|disregard|new|override|mark|classify"
            r"|set|the (?:ai|assistant|model)|this ticket))"
            r"|<\|(?:im_start|im_end|system|endoftext|user|assistant)\|>"
            r"|(?i:\[/?(?:inst|system)\]|<</?sys>>|</?(?:system|instructions?)>)"
            r"|(?i:###\s*(?:system|instruction)s?\b)"
            # A chat transcript's role field: {"role": "system", ...} or "role: system".
            r"|(?i:[\"']?\brole[\"']?\s*[:=]\s*[\"']?(?:system|assistant|developer)\b)"
            # A line that claims to come from the system: "Message from the triage system:".
            r"|(?im:^[\s>*#\[\"']*(?:message|note|notice|instructions?) from (?:the )?"
            r"(?:[\w-]+ ){0,2}?(?:system|admin\w*|developer|policy team)\s*:)"
        ),
    ),
    (
        "decision_manipulation",
        (
            "mark",
            "set",
            "change",
            "switch",
            "force",
            "mode",
            "confidence",
            "classification",
            "decision",
            "autonom",
            "approve",
            "classify",
        ),
        re.compile(
            r"\bmark (?:this|it|the ticket|this ticket|me)(?: as)? (?:autonomous\w*|auto[- ]?"
            r"approved?|approved|vip|p1|critical|top priority|high priority|safe|trusted)\b"
            # "change the category of a post" is a product question; "your mode" is not.
            r"|\b(?:set|change|switch|force) (?:this ticket'?s?|the ticket'?s?|your|its) "
            r"(?:mode|category|priority|confidence|queue|routing|classification|decision)\b"
            r"|\b(?:mode|confidence|classification|decision)\s*[:=]\s*(?:autonomous|auto|[01]?\.\d)"
            r"|\bautonomous(?:ly)? (?:mode|handling|action|approval|processing|resolution)\b"
            r"|\bauto[- ]?approve\b|\bclassify (?:this|it|me) as\b"
            r"|\bforce (?:the|this|its|your) (?:mode|category|priority|confidence|queue|routing"
            r"|classification|decision)\b"
            r"|\bapprov\w* (?:it |this |me )?autonomously\b",
            _I,
        ),
    ),
    (
        "review_bypass",
        ("human", "manual", "review", "policy override", "kill"),
        re.compile(
            # Asking for the human step to be skipped is asking the AI to decide alone.
            r"\b(?:without|skip(?:ping)?|bypass(?:ing)?|no need for|with no)\s+"
            r"(?:a |an |the |any )?(?:human|manual) (?:review|step|approval|check|checks"
            r"|involvement|intervention|oversight|in the loop)\b"
            r"|\b(?:process|handle|resolve|approve|close)\w*\b[^.\n]{0,30}?\bwithout (?:a |any )?"
            r"(?:human|person|review)\b"
            r"|\bno human (?:needed|required|review|involvement)\b"
            r"|\bpolicy override\b|\bkill[- ]?switch\s*(?:off|on|disabled|enabled|[:=])",
            _I,
        ),
    ),
    (
        "jailbreak",
        ("jailbr", "dan mode", "anything now"),
        re.compile(r"\bjailbr[eo]a?k\w*|\bDAN mode\b|\bdo anything now\b", _I),
    ),
    (
        "prompt_exfiltration",
        ("prompt", "instructions"),
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|leak|tell me)\b.{0,20}?\b(?:your|the) "
            r"(?:system |hidden |initial )?(?:prompt|instructions)\b|\bsystem prompt\b",
            _I,
        ),
    ),
    (
        "addresses_the_ai",
        ("ai", "a.i.", "assistant", "language model", "llm", "gpt", "classifier", "triage"),
        re.compile(
            r"\b(?:dear|attention|note to(?: the)?|to the)\s+(?:ai|a\.i\.|assistant|language "
            r"model|llm|gpt|chatgpt|classifier|triage (?:bot|system|ai|model))\b"
            r"|\b(?:hey|hello|hi)\s+(?:ai|llm|gpt|chatgpt|classifier)\b"
            r"|\b(?:ai|llm|classifier|language model)\s*[:,]\s*(?:ignore|please|you|mark|set|"
            r"classify)\b",
            _I,
        ),
    ),
    (
        "hidden_text",
        (
            "\u200b",
            "\u200c",
            "\u200d",
            "\u200e",
            "\u200f",
            "\u202a",
            "\u202b",
            "\u202c",
            "\u202d",
            "\u202e",
            "\u2060",
            "\u2061",
            "\u2062",
            "\u2063",
            "\u2064",
            "\ufeff",
            "<!--",
            "display",
            "font-size",
            "visibility",
        ),
        re.compile(
            r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]|<!--[\s\S]{0,2000}?-->"
            r"|display\s*:\s*none|font-size\s*:\s*0|visibility\s*:\s*hidden",
            _I,
        ),
    ),
)
# Structured-looking directives are odd in a subject line, where nobody reads them but a model.
_SUBJECT_DIRECTIVE: Final = re.compile(
    r"\b(?:priority|category|mode|confidence|queue|routing|instructions?)\s*[:=]", _I
)
_BLOB: Final = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=])")


def injection_reasons(body: str, *, subject: str = "") -> tuple[str, ...]:
    """Return why the ticket looks like a prompt injection (empty if it does not)."""
    reasons = list(_reasons(body))
    reasons += [f"{reason}_in_subject" for reason in _reasons(subject)]
    if _SUBJECT_DIRECTIVE.search(subject):
        reasons.append("directive_in_subject")
    return tuple(dict.fromkeys(reasons))


def _reasons(text: str) -> Iterator[str]:
    if not text:
        return
    if not text.isascii():
        # A ZWJ inside an emoji sequence (a family, a rainbow flag) hides nothing.
        text = _EMOJI_SEQUENCES.sub("", text)
    found = list(_pattern_reasons(text))
    yield from found
    if any(_looks_encoded(m.group()) for m in _BLOB.finditer(text)):
        yield "encoded_payload"
    if not text.isascii():
        # "Ignоre" with a Cyrillic o, fullwidth letters, combining marks: the patterns
        # read the text as a person sees it.
        hidden = [r for r in _pattern_reasons(_skeleton(text)) if r not in found]
        if hidden:
            yield from hidden
            yield "confusable_characters"


def _pattern_reasons(text: str) -> Iterator[str]:
    lowered = text.lower()
    for reason, triggers, pattern in _INJECTION_PATTERNS:
        if any(t in lowered for t in triggers) and pattern.search(text):
            yield reason


# Letters of other scripts that look like Latin ones, and characters that are not seen.
_CONFUSABLES: Final = str.maketrans(
    "аеорсухіјѕԁһӏԛԝАВЕКМНОРСТХУІЈЅοαιυνκρτχΟΑΒΕΗΙΚΜΝΡΤΧΥΖ",
    "aeopcyxijsdhlqwABEKMHOPCTXYIJSoaiuvkptxOABEHIKMNPTXYZ",
)
_UNSEEN: Final = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad")
)


def _skeleton(text: str) -> str:
    # Compatibility forms folded (fullwidth), marks and invisibles dropped, Cyrillic and
    # Greek look-alikes replaced by the Latin letters they imitate.
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.translate(_UNSEEN).translate(_CONFUSABLES)


def _looks_encoded(blob: str) -> bool:
    """Return whether a long token is base64 that decodes to readable text."""
    if not (any(c.isupper() for c in blob) and any(c.islower() for c in blob)):
        return False
    try:
        decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in decoded)
    # Hidden instructions decode to text; random keys and hashes decode to noise.
    return printable >= 0.9 * len(decoded)


# ----------------------------------------------------------------------- unusual input
#
# Input the model was not validated on, or that only a broken upstream or an attacker
# sends. Each finding is a reason code; the policy's `unusual-input` rule sends a ticket
# with any of them to a human, and the decision names the codes. Every check is one
# linear pass (a regex without nested repetition, a split, a Counter), and the costly ones
# run only when a cheap test says they can matter (non-ASCII text, several scripts, long
# text).

# In the order they are reported.
UNUSUAL_CODES: Final = _words(
    "control_characters invisible_characters unpaired_surrogates combining_marks "
    "mixed_scripts mixed_script_words mixed_languages code_like long_token repetitive_text "
    "too_long odd_identifier odd_metadata decision_fields many_metadata_keys extreme_numbers "
    "implausible_time unknown_schema_version causation_from_upstream invalid_trace_id "
    "nested_unknown_fields many_unknown_fields duplicate_keys odd_key odd_headers"
)
# The shipped examples and samples are at most ~200 characters long; real tickets run
# longer, so only text twenty times beyond that is out of what the model has seen.
VALIDATED_MAX_CHARS: Final = 4_000
USUAL_SUBJECT_CHARS: Final = 250
LONG_TOKEN_CHARS: Final = 300
LONG_URL_CHARS: Final = 2_000

# C0 and C1 controls except tab and line breaks; a CR not followed by LF rewrites the line
# a person sees in a terminal or log viewer, so it hides text too.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LONE_CR: Final = re.compile(r"\r(?!\n)")
# Characters that change what a person sees without being seen: soft hyphen, bidi marks,
# overrides and isolates, zero-width characters, fillers, tags ("ASCII smuggling").
_INVISIBLE: Final = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)
# ...except where emoji need them: a ZWJ between two non-letters (family, rainbow flag)
# and a subdivision flag spelled in tag characters.
_EMOJI_SEQUENCES: Final = re.compile(
    "(?<=[^\\w\\s])\u200d(?=[^\\w\\s])|\U0001f3f4[\U000e0020-\U000e007e]{1,8}\U000e007f"
)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# Combining marks of the Latin, Greek and Cyrillic blocks left after NFC: real text of
# those alphabets composes them away; stacked "zalgo" marks and overlays do not compose.
_COMBINING: Final = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)
_MAX_COMBINING: Final = 2

_SCRIPT_ALIASES: Final = dict.fromkeys(
    ("HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "CJK", "IDEOGRAPHIC"), "CJK"
)
_SCRIPTS: Final = frozenset(
    _words(
        "LATIN CYRILLIC GREEK ARMENIAN GEORGIAN HEBREW ARABIC SYRIAC THAANA DEVANAGARI BENGALI "
        "GURMUKHI GUJARATI ORIYA TAMIL TELUGU KANNADA MALAYALAM SINHALA THAI LAO TIBETAN "
        "MYANMAR KHMER MONGOLIAN ETHIOPIC CHEROKEE CJK MATHEMATICAL"
    )
)
# One ideograph or syllable block carries about what three Latin letters do.
_SCRIPT_WEIGHTS: Final = {"CJK": 3}
# Alphabets with look-alike letters: one word mixing them is a disguise, not a language.
_CONFUSABLE_SCRIPTS: Final = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN"})
_MIN_MIXED_SHARE: Final = 0.05
_MIN_MIXED_LETTERS: Final = 3
_LETTER_WORD: Final = re.compile(r"[^\W\d_]{2,}")
_ASCII_LETTERS: Final = bytes(range(65, 91)) + bytes(range(97, 123))

# (triggers, pattern) like the injection patterns: a pattern runs only if the lower-cased
# text contains one of its triggers, and each starts with a literal where it can, which
# the regex engine finds fast; one alternation of all of them cost ~1 µs per character.
_CODE_PATTERNS: Final[tuple[tuple[tuple[str, ...], re.Pattern[str]], ...]] = tuple(
    (triggers, re.compile(pattern, _I))
    for triggers, pattern in (
        # SQL: statements after a closed quote, tautologies, DDL, UNION, SELECT lists.
        (
            ("'",),
            r"'(?:\s*;\s*(?:drop|delete|insert|update|select|copy|truncate|alter|create|grant"
            r"|exec)\b|\s*--(?:\s|$)|\s*(?:or|and)\s*'[^'\n]{0,20}'\s*=\s*')",
        ),
        (("--",), r";\s*--"),
        (("=",), r"\b(?:or|and|where)\s+1\s*=\s*1\b"),
        (
            ("drop", "truncate", "alter"),
            r"\b(?:drop|truncate|alter)\s+(?:table|database|schema|index|view|user|role)\b",
        ),
        (("union",), r"\bunion\s+(?:all\s+)?select\b"),
        (("select",), r"\bselect\s+(?:\*|count\s*\(|[\w.]+\s*,\s*[\w.]+)[^;\n]{0,200}?\bfrom\b"),
        (("insert",), r"\binsert\s+into\s+[\w.]+\s*(?:\(|values\b)"),
        (("delete",), r"\bdelete\s+from\s+[\w.]+\s+where\b"),
        (("update",), r"\bupdate\s+[\w.]+\s+set\s+[\w.]+\s*="),
        (("copy",), r"\bcopy\s+[\w.]+\s+(?:to|from)\s+(?:program|stdin)\b"),
        (
            ("pg_sleep", "xp_cmdshell", "information_schema", "waitfor", "->>"),
            r"pg_sleep|xp_cmdshell|information_schema|\bwaitfor\s+delay\b|->>",
        ),
        # Markup that runs code.
        (("<",), r"<\s*/?\s*(?:script|iframe|object|embed|applet|svg|base|meta)\b"),
        (("javascript:",), r"\bjavascript:(?=\S)"),
        (
            ("onerror", "onload", "onclick", "onmouseover", "onfocus"),
            r"\bon(?:error|load|click|mouseover|focus)\s*=",
        ),
        # Template expressions and lookups (Jinja, ERB, JNDI/EL).
        (("{{",), r"\{\{[^{}\n]{0,200}\}\}"),
        (("{%",), r"\{%[^%\n]{0,200}%\}"),
        (("<%",), r"<%[^%]{0,200}%>"),
        (("${",), r"\$\{[^{}\n]{0,200}\}"),
        # Shell.
        (("-r", "-f"), r"\brm\s+-[rf]{1,2}\b"),
        (("$(",), r"\$\([a-z][^()\n]{0,200}\)"),
        (("|",), r"\|\s*(?:sh|bash)\b"),
        # Format placeholders, escape sequences written out, path traversal.
        (("%",), r"%[sdx]\b"),
        (("{",), r"\{\d\}"),
        (("\\",), r"\\(?:u[0-9a-f]{4}|x[0-9a-f]{2})|(?:\.\.\\){2,}"),
        (("../", "/etc/passwd"), r"(?:\.\./){2,}|/etc/passwd"),
    )
)
_REPETITIVE_MIN_WORDS: Final = 40
_REPETITIVE_MAX_DISTINCT: Final = 0.2

# Identifiers are opaque, but never contain quotes, spaces, wildcards or controls.
_IDENTIFIER: Final = re.compile(r"[\w.:#/@+=-]+")
_PATH_UP: Final = re.compile(r"(?:^|[/\\])\.\.(?:[/\\]|$)")
# Keys that name what the classifier, the policy or the router decide; upstream has no
# business sending them, in metadata or anywhere else. Compared with case and
# punctuation removed ("Rules-Fired" is "rulesfired").
_DECISION_KEYS: Final = frozenset(
    _words(
        "mode confidence category classification classifiedas label policy policyversion "
        "rulesfired rules rule decision decided autonomous automode autoapprove approved "
        "approval killswitch threshold thresholds override humanreview skipreview "
        "injectionsuspected outofscope"
    )
)
# Fields the inbound contract does not have but a ticket could be steered with; in
# metadata some are ordinary CRM data (a priority, a tier), so only here.
_STEERING_FIELDS: Final = _DECISION_KEYS | frozenset(
    _words("priority queue routing route sla tier vip admin role verified trusted")
)
_MANY_METADATA_KEYS: Final = 40
_MANY_UNKNOWN_FIELDS: Final = 10
# Beyond 2**53 a JSON number is not even exact in JavaScript; no upstream means such a value.
_MAX_PLAUSIBLE_INT: Final = 2**53
_MAX_PLAUSIBLE_FLOAT: Final = 1e15
_MIN_PLAUSIBLE_FLOAT: Final = 1e-12
# No clock is read: a bound relative to "now" would make a ticket's verdict depend on when
# it is replayed. Only times outside any ticket's life, or a ticket created well after it
# was published, are implausible.
_EARLIEST_PLAUSIBLE: Final = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST_PLAUSIBLE: Final = datetime(2100, 1, 1, tzinfo=UTC)
_CLOCK_SKEW: Final = timedelta(days=1)


def unusual_text(subject: str, body: str) -> tuple[str, ...]:
    """Return the reason codes for unusual subject and body text (empty if ordinary)."""
    text = f"{subject}\n{body}" if subject else body
    return _unusual_text(subject, body, mixed_languages=_default_detector().read(text).mixed)


def _unusual_text(subject: str, body: str, *, mixed_languages: bool) -> tuple[str, ...]:
    text = f"{subject}\n{body}" if subject else body
    found = set(_unusual_characters(text))
    if _code_like(text):
        found.add("code_like")
    if _long_token(text):
        found.add("long_token")
    if _repetitive(subject) or _repetitive(body):
        found.add("repetitive_text")
    if len(text) > VALIDATED_MAX_CHARS or len(subject) > USUAL_SUBJECT_CHARS:
        found.add("too_long")
    if mixed_languages:
        found.add("mixed_languages")
    return _ordered(found)


def unusual_ticket(ticket: TicketReceived) -> tuple[str, ...]:
    """Return the reason codes for unusual fields of a valid ticket besides its text."""
    found: set[str] = set()
    if any(_odd_identifier(i) for i in (ticket.ticket_id, ticket.customer.id) if i is not None):
        found.add("odd_identifier")
    customer = ticket.customer
    # One pass over every short field at once: these checks cost per call, not per character.
    short = (ticket.source, ticket.channel, customer.tier, customer.language or "")
    found.update(_unusual_metadata(ticket.metadata, also="\n".join(short)))
    if _implausible_times(ticket.occurred_at, ticket.created_at):
        found.add("implausible_time")
    if ticket.schema_version > SCHEMA_VERSION:
        found.add("unknown_schema_version")
    if ticket.causation_id is not None:  # an upstream event has no cause in triageflow
        found.add("causation_from_upstream")
    if ticket.trace_id.strip("0-") == "":  # W3C: an all-zero trace id is invalid
        found.add("invalid_trace_id")
    return _ordered(found)


def unusual_envelope(
    key: bytes | None, headers: Mapping[str, str], value: bytes | None
) -> tuple[str, ...]:
    """Return the reason codes for what the inbound contract ignores: key, headers, fields."""
    found: set[str] = set()
    if key is not None and not _usual_key(key):
        found.add("odd_key")
    # Header values arrive decoded with U+FFFD for bytes that are not UTF-8.
    if any("\ufffd" in v or _CONTROL.search(v) for v in headers.values()):
        found.add("odd_headers")
    if value:
        found.update(_unusual_fields(value))
    return _ordered(found)


def merge_unusual(*groups: Sequence[str]) -> tuple[str, ...]:
    """Return the reason codes of every group, once each, in the order of UNUSUAL_CODES."""
    return _ordered({code for group in groups for code in group})


def _ordered(found: set[str]) -> tuple[str, ...]:
    return tuple(code for code in UNUSUAL_CODES if code in found)


def _unusual_characters(text: str) -> Iterator[str]:
    if _CONTROL.search(text) or ("\r" in text and _LONE_CR.search(text)):
        yield "control_characters"
    if text.isascii():
        return  # no other check can fire on ASCII: it is one script without marks
    if _INVISIBLE.search(_EMOJI_SEQUENCES.sub("", text)):
        yield "invisible_characters"
    if _SURROGATE.search(text):
        yield "unpaired_surrogates"
    if len(_COMBINING.findall(unicodedata.normalize("NFC", text))) > _MAX_COMBINING:
        yield "combining_marks"
    letters = _letters_by_script(text)
    if _mixed(letters):
        yield "mixed_scripts"
    if len(letters.keys() & _CONFUSABLE_SCRIPTS) > 1 and _mixed_script_word(text):
        yield "mixed_script_words"


def _letters_by_script(text: str) -> Counter[str]:
    """Return how many letters of each script `text` has (CJK weighted), emoji excluded."""
    letters: Counter[str] = Counter()
    for char, count in Counter(text).items():
        if char.isalpha() and (script := _script(char)) is not None:
            letters[script] += count * _SCRIPT_WEIGHTS.get(script, 1)
    return letters


def _mixed(letters: Counter[str]) -> bool:
    if len(letters) < 2:
        return False
    second = letters.most_common(2)[1][1]
    return second >= _MIN_MIXED_LETTERS and second >= _MIN_MIXED_SHARE * letters.total()


def _mixed_script_word(text: str) -> bool:
    for word in _LETTER_WORD.findall(text):
        if not word.isascii():
            scripts = {_script(char) for char in word}
            if len(scripts & _CONFUSABLE_SCRIPTS) > 1:
                return True
    return False


@lru_cache(maxsize=8192)
def _script(char: str) -> str | None:
    """Return the script of a letter by its Unicode name, or None if it names no script."""
    words = unicodedata.name(char, "").split()
    if words[:1] in (["FULLWIDTH"], ["HALFWIDTH"]):
        words = words[1:]
    if not words:
        return None
    script = _SCRIPT_ALIASES.get(words[0], words[0])
    return script if script in _SCRIPTS else None


def _code_like(text: str) -> bool:
    lowered = text.lower()
    return any(
        any(t in lowered for t in triggers) and pattern.search(text)
        for triggers, pattern in _CODE_PATTERNS
    )


def _long_token(text: str) -> bool:
    for token in text.split():
        if len(token) >= LONG_TOKEN_CHARS:
            # Tracking links run long; a URL is unusual only far beyond that.
            is_url = token.startswith(("http://", "https://"))
            if not is_url or len(token) >= LONG_URL_CHARS:
                return True
    return False


def _repetitive(text: str) -> bool:
    words = text.lower().split()
    return len(words) >= _REPETITIVE_MIN_WORDS and len(set(words)) < _REPETITIVE_MAX_DISTINCT * len(
        words
    )


def _odd_identifier(value: str) -> bool:
    return not _IDENTIFIER.fullmatch(value) or bool(_PATH_UP.search(value))


def _usual_key(key: bytes) -> bool:
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(text) <= MAX_TICKET_ID_CHARS and not _CONTROL.search(text)


def _folded_key(key: str) -> str:
    return "".join(char for char in key.lower() if char.isalnum())


def _unusual_metadata(metadata: Mapping[str, object], *, also: str = "") -> Iterator[str]:
    """Yield the codes for metadata, and for the characters of `also` (other short fields)."""
    if len(metadata) >= _MANY_METADATA_KEYS:
        yield "many_metadata_keys"
    texts = [*metadata, *(v for v in metadata.values() if isinstance(v, str))]
    joined = "\n".join(texts)
    yield from _unusual_characters(f"{joined}\n{also}")
    if joined and _code_like(joined):
        yield "code_like"
    if any(not key.strip() for key in metadata):
        yield "odd_metadata"
    if any(_folded_key(key) in _DECISION_KEYS for key in metadata):
        yield "decision_fields"
    if any(_extreme(value) for value in metadata.values()):
        yield "extreme_numbers"


def _implausible_times(occurred_at: datetime, created_at: datetime | None) -> bool:
    times = (occurred_at,) if created_at is None else (occurred_at, created_at)
    if any(not _EARLIEST_PLAUSIBLE <= t < _LATEST_PLAUSIBLE for t in times):
        return True
    return created_at is not None and created_at > occurred_at + _CLOCK_SKEW


def _extreme(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return abs(value) > _MAX_PLAUSIBLE_INT
    size = abs(value)
    return size > _MAX_PLAUSIBLE_FLOAT or 0.0 < size < _MIN_PLAUSIBLE_FLOAT


class _DuplicateKeysError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKeysError
    return result


def _unusual_fields(value: bytes) -> Iterator[str]:
    """Yield what the forgiving inbound contract dropped: unknown, nested, duplicate fields."""
    try:
        data = json.loads(value, object_pairs_hook=_no_duplicates)
    except _DuplicateKeysError:
        # The contract read one of two values for a key; which one a reader sees differs.
        yield "duplicate_keys"
        return
    except (ValueError, RecursionError):
        return  # the contract accepted it, so this cannot happen; nothing to add
    if not isinstance(data, dict):
        return
    customer = data.get("customer")
    unknown = [
        *((k, v) for k, v in data.items() if k not in _TICKET_FIELDS),
        *(
            (k, v)
            for k, v in (customer.items() if isinstance(customer, dict) else ())
            if k not in _CUSTOMER_FIELDS
        ),
    ]
    if any(_folded_key(k) in _STEERING_FIELDS for k, _ in unknown):
        yield "decision_fields"
    if any(isinstance(v, dict | list) for _, v in unknown):
        yield "nested_unknown_fields"
    if len(unknown) > _MANY_UNKNOWN_FIELDS:
        yield "many_unknown_fields"


_TICKET_FIELDS: Final = frozenset(TicketReceived.model_fields)
_CUSTOMER_FIELDS: Final = frozenset(Customer.model_fields)
