"""Text rules: the Rust SDK's rule vocabulary, with the same syntax, the same
normalisation and the same answers, so a manifest's rules mean one thing
whichever language the policy is written in.

::

    delete my data                   the words in this order, whole words only
    delet*                           a word starting with `delet` (3+ letters before `*`)
    {delete|erase|remove} my data    one of these words at this position
    delet* NEAR/6 data               both, at most 6 words between them, in either order
    going to BEFORE/3 regulator      the left, then the right at most 3 words after it
    sue EXCEPT not going to sue      the left, where no match of the right overlaps it
    A AND B,  A OR B,  NOT A         combine; NOT binds tightest, then NEAR and BEFORE
                                     (left to right), EXCEPT, AND, and OR loosest
    ( ... )                          group

Operators are upper case; lower-case ``and``, ``or``, ``not`` are words.
Matching is deterministic, with no backtracking: a rule costs the same on
hostile input as on friendly input.
"""

from __future__ import annotations

import bisect
import json
import unicodedata
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

MAX_NEAR = 50
"""The longest NEAR distance accepted: beyond this "near" means nothing."""
MIN_PREFIX = 3
"""The shortest prefix before ``*``: ``a*`` would match half of every text."""
MAX_DEPTH = 32
"""The deepest nesting accepted, so a hostile rule cannot exhaust the stack."""

_APOSTROPHES = frozenset("'\u2019\u2018\u02bc\u2032`")
_INVISIBLE = frozenset(
    [0x00AD, 0x034F, 0x061C, 0x180E, 0xFEFF]
    + list(range(0x200B, 0x2010)) + list(range(0x202A, 0x202F))
    + list(range(0x2060, 0x2065)) + list(range(0x2066, 0x2070))
)


def words(text: str) -> List[str]:
    """The normalised words of ``text``: compatibility forms folded (NFKD),
    accents dropped, lower-cased, apostrophes inside a word and invisible
    characters removed without breaking it; anything else separates words."""
    out: List[str] = []
    current: List[str] = []
    source = text if text.isascii() else unicodedata.normalize("NFKD", text)
    for c in source:
        if c.isascii():
            if c.isalnum():
                current.append(c.lower())
                continue
        else:
            category = unicodedata.category(c)
            if category[0] == "M":
                continue
            if category[0] in "LN":
                current.append(c.lower())
                continue
            if ord(c) in _INVISIBLE:
                continue
        if c in _APOSTROPHES and current:
            continue
        if current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return out


class RuleError(ValueError):
    """A rule that does not parse, and why."""

    def __init__(self, rule: str, reason: str):
        super().__init__(f"rule {json.dumps(rule, ensure_ascii=False)}: {reason}")
        self.rule = rule
        self.reason = reason


# Terms: ("word", w) | ("prefix", p) | ("any", [terms])
# Exprs: ("phrase", [terms]) | ("near", a, b, within, ordered) | ("except", a, b)
#        | ("and", [exprs]) | ("or", [exprs]) | ("not", e)


def _term_accepts(term, word: str) -> bool:
    kind = term[0]
    if kind == "word":
        return word == term[1]
    if kind == "prefix":
        return word.startswith(term[1])
    return any(_term_accepts(t, word) for t in term[1])


def _plain(chunk: str) -> bool:
    return bool(chunk) and chunk.isascii() and chunk.isalnum()


def _single_term(chunk: str):
    prefix = chunk.endswith("*")
    stem = chunk[:-1] if prefix else chunk
    if _plain(stem):
        word = stem.lower()
    else:
        found = words(stem)
        if not found:
            raise _Fail(f"`{chunk}` has no letters or digits")
        if len(found) > 1:
            raise _Fail(f"`{chunk}` is several words; a prefix or an alternative is one word")
        word = found[0]
    if not prefix:
        return ("word", word)
    if len(word) < MIN_PREFIX:
        raise _Fail(f"`{chunk}`: a prefix needs at least {MIN_PREFIX} letters before `*`")
    return ("prefix", word)


class _Fail(Exception):
    pass


def _describe(token) -> str:
    if token[0] == "term":
        return "a word"
    if token[0] in ("near", "before"):
        return f"`{token[0].upper()}/{token[1]}`"
    return {"open": "`(`", "close": "`)`"}.get(token[0], f"`{token[0].upper()}`")


def _lex(source: str):
    tokens = []
    at = 0
    n = len(source)
    while True:
        while at < n and source[at].isspace():
            at += 1
        if at == n:
            return tokens
        c = source[at]
        if c in "()":
            tokens.append(("open",) if c == "(" else ("close",))
            at += 1
        elif c == "{":
            end = source.find("}", at)
            if end < 0:
                raise _Fail("`{` is never closed by `}`")
            alternatives = [_single_term(alt.strip()) for alt in source[at + 1:end].split("|")]
            if len(alternatives) < 2:
                raise _Fail(f"`{source[at:end + 1]}` offers one word: write it without braces, "
                            "or separate alternatives with `|`")
            tokens.append(("term", ("any", alternatives)))
            at = end + 1
        elif c in "}|":
            raise _Fail(f"`{c}` outside `{{...}}`")
        else:
            end = at
            while end < n and not source[end].isspace() and source[end] not in "(){}|":
                end += 1
            chunk = source[at:end]
            at = end
            if chunk in ("AND", "OR", "NOT", "EXCEPT"):
                tokens.append((chunk.lower(),))
            elif chunk.startswith("NEAR/") or chunk.startswith("BEFORE/"):
                name, distance = chunk.split("/", 1)
                if not distance.isascii() or not distance.isdigit() or len(distance) > 9:
                    raise _Fail(f"`{chunk}`: {name} takes a distance in words, like {name}/5")
                within = int(distance)
                if within > MAX_NEAR:
                    raise _Fail(f"`{chunk}`: at most {name}/{MAX_NEAR}")
                tokens.append((name.lower(), within))
            elif chunk in ("NEAR", "BEFORE"):
                raise _Fail(f"{chunk} takes a distance in words, like {chunk}/5")
            elif chunk.endswith("*"):
                tokens.append(("term", _single_term(chunk)))
            elif _plain(chunk):
                tokens.append(("term", ("word", chunk.lower())))
            else:
                tokens.extend(("term", ("word", w)) for w in words(chunk))


def _has_spans(expr) -> bool:
    kind = expr[0]
    if kind in ("phrase", "near", "except"):
        return True
    if kind == "or":
        return all(_has_spans(e) for e in expr[1])
    return False


def _requires_something(expr) -> bool:
    kind = expr[0]
    if kind in ("phrase", "near", "except"):
        return True
    if kind == "and":
        return any(_requires_something(e) for e in expr[1])
    if kind == "or":
        return all(_requires_something(e) for e in expr[1])
    return False


class _Parser:
    def __init__(self, tokens):
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    def peek(self):
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def eat(self, kind: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == kind:
            self.at += 1
            return True
        return False

    def parse_or(self):
        parts = [self.parse_and()]
        while self.eat("or"):
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def parse_and(self):
        parts = [self.unary()]
        while self.eat("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def unary(self):
        if self.eat("not"):
            # Each NOT is a nesting level too, so a hostile chain of them
            # cannot exhaust the stack.
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Fail(f"nested deeper than {MAX_DEPTH} groups")
            inner = self.unary()
            self.depth -= 1
            return ("not", inner)
        return self.parse_except()

    def parse_except(self):
        left = self.near()
        while self.eat("except"):
            right = self.near()
            self.check_spans("`EXCEPT`", left, right)
            left = ("except", left, right)
        return left

    def near(self):
        left = self.primary()
        while True:
            token = self.peek()
            if token is None or token[0] not in ("near", "before"):
                return left
            self.at += 1
            right = self.primary()
            self.check_spans(_describe(token), left, right)
            left = ("near", left, right, token[1], token[0] == "before")

    @staticmethod
    def check_spans(operator, left, right):
        if not (_has_spans(left) and _has_spans(right)):
            raise _Fail(f"{operator} joins phrases (or groups of phrases joined by OR), not AND or NOT")

    def primary(self):
        if self.eat("open"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Fail(f"nested deeper than {MAX_DEPTH} groups")
            inner = self.parse_or()
            if not self.eat("close"):
                raise _Fail("`(` is never closed by `)`")
            self.depth -= 1
            return inner
        terms = []
        while (token := self.peek()) is not None and token[0] == "term":
            terms.append(token[1])
            self.at += 1
        if not terms:
            token = self.peek()
            raise _Fail("expected a word or `(` at the end" if token is None
                        else f"expected a word or `(`, found {_describe(token)}")
        return ("phrase", terms)


Span = Tuple[int, int]


def _shortest_per_start(spans: List[Span]) -> List[Span]:
    spans.sort()
    out: List[Span] = []
    for span in spans:
        if not out or out[-1][0] != span[0]:
            out.append(span)
    return out


def _spans(expr, text_words: Sequence[str]) -> List[Span]:
    kind = expr[0]
    if kind == "phrase":
        terms = expr[1]
        n = len(terms)
        return [
            (start, start + n)
            for start in range(len(text_words) - n + 1)
            if all(_term_accepts(t, text_words[start + i]) for i, t in enumerate(terms))
        ]
    if kind == "except":
        kept = _spans(expr[1], text_words)
        if not kept:
            return kept
        unless = _spans(expr[2], text_words)
        return [x for x in kept if not any(x[0] < y[1] and y[0] < x[1] for y in unless)]
    if kind == "near":
        a = _spans(expr[1], text_words)
        if not a:
            return a
        b = _spans(expr[2], text_words)
        within, ordered = expr[3], expr[4]
        longest = max((y[1] - y[0] for y in b), default=0)
        starts = [y[0] for y in b]
        out: List[Span] = []
        for x in a:
            first = bisect.bisect_left(starts, max(0, x[0] - within - longest))
            for y in b[first:]:
                if y[0] > x[1] + within:
                    break
                if ordered and y[0] < x[0]:
                    continue
                one, two = (x, y) if x[0] <= y[0] else (y, x)
                # Overlapping spans are one place, not two near ones.
                if two[0] >= one[1] and two[0] - one[1] <= within:
                    out.append((one[0], max(one[1], two[1])))
        return _shortest_per_start(out)
    if kind == "or":
        return _shortest_per_start([s for e in expr[1] for s in _spans(e, text_words)])
    return []


def _holds(expr, text_words: Sequence[str]) -> bool:
    kind = expr[0]
    if kind == "and":
        return all(_holds(e, text_words) for e in expr[1])
    if kind == "or":
        return any(_holds(e, text_words) for e in expr[1])
    if kind == "not":
        return not _holds(expr[1], text_words)
    return bool(_spans(expr, text_words))


class Rule:
    """A parsed rule, ready to match texts."""

    def __init__(self, source: str, expr):
        self.source = source
        self._expr = expr

    @staticmethod
    def parse(source: str) -> "Rule":
        """Parses ``source``; raises :class:`RuleError` saying what is wrong."""
        try:
            parser = _Parser(_lex(source))
            expr = parser.parse_or()
            token = parser.peek()
            if token is not None:
                raise _Fail(f"unexpected {_describe(token)}")
            if not _requires_something(expr):
                raise _Fail("a rule must require something: a rule of only NOT matches almost "
                            "every text; write `X AND NOT Y`")
        except _Fail as fail:
            raise RuleError(source, str(fail)) from None
        return Rule(source, expr)

    def matches(self, text: Union[str, Sequence[str]]) -> bool:
        """Whether the rule matches a text (or its :func:`words`)."""
        return _holds(self._expr, words(text) if isinstance(text, str) else text)


class PhraseError(ValueError):
    """A rule of a class that does not parse: which class, which rule, and why."""

    def __init__(self, cls: str, index: int, error: RuleError):
        super().__init__(f"class `{cls}`, rule {index}: {error}")
        self.cls = cls
        self.index = index
        self.error = error


class PhraseSet:
    """Named classes of rules, matched together; a class fires when any of its rules matches."""

    def __init__(self, classes: Union[Dict[str, Iterable[str]], Iterable[Tuple[str, Iterable[str]]]]):
        items = classes.items() if isinstance(classes, dict) else classes
        self._classes: List[Tuple[str, List[Rule]]] = []
        for cls, rules in items:
            parsed = []
            for index, rule in enumerate(rules):
                if not rule.strip():
                    continue
                try:
                    parsed.append(Rule.parse(rule))
                except RuleError as error:
                    raise PhraseError(cls, index, error) from None
            self._classes.append((cls, parsed))

    def matching_classes(self, text: str) -> List[str]:
        """The classes with a rule matching ``text``, in the order given, each once."""
        text_words = words(text)
        return [cls for cls, rules in self._classes if any(r.matches(text_words) for r in rules)]

    def matching_rule(self, cls: str, text: str) -> Optional[Rule]:
        """The first rule of ``cls`` that matches: why a class fired."""
        text_words = words(text)
        for name, rules in self._classes:
            if name == cls:
                return next((r for r in rules if r.matches(text_words)), None)
        return None

    def is_empty(self) -> bool:
        return all(not rules for _, rules in self._classes)
