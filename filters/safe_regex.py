"""Regexes an admin writes, made safe to run on hostile mail.

Three defences, all in this module:

1. ``compile_rule_regex`` compiles at config load; a syntax error is a config error.
2. ``catastrophic_shape`` rejects, at load, the nested-quantifier shapes that backtrack
   exponentially: ``(a+)+``, ``(.*)*``, ``(\\w+\\s?)*$``, ``(a|aa)+`` ... (a repeated group that
   can split the same text in more than one way). Shapes like ``(?:[a-z]+\\.)+`` whose pieces
   cannot overlap are accepted.
3. ``search`` bounds every match: the caller caps the text length, and with the ``regex``
   package installed each search also has a time limit (``TimeoutError`` -> ``MatchTimeout``).
   Without it, the stdlib ``re`` is used and only the length cap and load-time check apply.
"""
from __future__ import annotations

import re

try:  # the regex package gives us a per-match timeout
    import regex as _engine

    HAS_TIMEOUT = True
except ImportError:  # pragma: no cover - depends on the installation
    _engine = re
    HAS_TIMEOUT = False

try:
    import re._parser as _sre_parse  # Python 3.11+
    from re import _constants as _C
except ImportError:  # pragma: no cover
    import sre_constants as _C
    import sre_parse as _sre_parse

ENGINE = "regex" if HAS_TIMEOUT else "re"
_BIG = 10  # a counted repeat {m,n} with n >= this is treated like an unbounded one


class MatchTimeout(Exception):
    """A search ran past its time limit; the condition counts as not matched."""


def compile_rule_regex(pattern: str, *, case_sensitive: bool = False):
    """Compile; raises ValueError with a readable message (syntax or dangerous shape)."""
    flags = 0 if case_sensitive else _engine.IGNORECASE
    if HAS_TIMEOUT:
        flags |= _engine.V0
    try:
        compiled = _engine.compile(pattern, flags)
    except (re.error, getattr(_engine, "error", re.error), ValueError, TypeError,
            OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
    problem = catastrophic_shape(pattern, case_sensitive=case_sensitive)
    if problem:
        raise ValueError(f"regex {pattern!r} rejected: {problem}; it can take exponential time "
                         f"on hostile mail. Make the repeated parts unable to overlap (e.g. "
                         f"'(\\w+\\s)*' instead of '(\\w+\\s?)*'), or use an atomic group "
                         f"'(?>...)' or possessive quantifier '++'")
    return compiled


def search(compiled, text: str, timeout: float | None):
    """``compiled.search(text)`` within ``timeout`` seconds (when the regex package is here)."""
    if HAS_TIMEOUT and timeout:
        try:
            return compiled.search(text, timeout=timeout)
        except TimeoutError:
            raise MatchTimeout(f"gave up after {timeout:g}s") from None
    return compiled.search(text)


def group_names(compiled) -> tuple[int, set[str]]:
    """(number of numbered groups, set of group names) of a compiled pattern."""
    return compiled.groups, set(compiled.groupindex)


# ---- load-time shape check -----------------------------------------------------------------
# Character classes are compared by testing a sample of characters: a conservative
# approximation (two classes "overlap" if some sample character is in both).
_SAMPLE = [chr(c) for c in range(0, 256)] + list("ĀéßŁЖжΩ中文あ\u00a0\u2028\u2003٣")


def catastrophic_shape(pattern: str, *, case_sensitive: bool = False) -> str | None:
    """A description of the first exponential-backtracking shape in ``pattern``, or None."""
    try:
        tree = _sre_parse.parse(pattern, 0 if case_sensitive else re.IGNORECASE)
    except Exception:  # noqa: BLE001 - syntax only the regex package knows: coarse text check
        return _textual_check(pattern)
    try:
        _Walker(not case_sensitive).seq(list(tree), frozenset(), inside_loop=False)
    except _Found as found:
        return str(found)
    except RecursionError:
        return "too deeply nested to analyse"
    return None


def _textual_check(pattern: str) -> str | None:
    if re.search(r"\((?:\?:)?[^()]*[+*}][^()]*\)[+*]|\([^()]*\|[^()]*\)[+*]", pattern):
        return "a quantified group that itself contains a quantifier"
    return None


class _Found(Exception):
    pass


class _Walker:
    def __init__(self, ignorecase: bool):
        self.ic = ignorecase

    # -- character predicates ----------------------------------------------------------------
    def _pred(self, op, av):
        ic = self.ic
        if op is _C.ANY:
            return lambda ch: True
        if op is _C.LITERAL:
            c = chr(av)
            return (lambda ch: ch.lower() == c.lower()) if ic else (lambda ch: ch == c)
        if op is _C.NOT_LITERAL:
            c = chr(av)
            return (lambda ch: ch.lower() != c.lower()) if ic else (lambda ch: ch != c)
        if op is _C.IN:
            items = list(av)
            negate = bool(items) and items[0][0] is _C.NEGATE
            preds = [self._class_item(o, a) for o, a in items if o is not _C.NEGATE]

            def inside(ch):
                hit = any(p(ch) for p in preds)
                return not hit if negate else hit
            return inside
        return lambda ch: True  # unknown: assume it may match anything

    def _class_item(self, op, av):
        if op is _C.LITERAL or op is _C.NOT_LITERAL:
            return self._pred(op, av)
        if op is _C.RANGE:
            lo, hi = av
            if self.ic:
                return lambda ch: any(lo <= ord(x) <= hi for x in (ch, ch.lower(), ch.upper())
                                      if len(x) == 1)
            return lambda ch: lo <= ord(ch) <= hi
        if op is _C.CATEGORY:
            name = str(av)
            base = {"CATEGORY_DIGIT": str.isdecimal, "CATEGORY_SPACE": str.isspace,
                    "CATEGORY_WORD": lambda ch: ch.isalnum() or ch == "_",
                    "CATEGORY_LINEBREAK": lambda ch: ch == "\n"}
            for key, fn in base.items():
                if name == key:
                    return fn
                if name == "CATEGORY_NOT_" + key[len("CATEGORY_"):]:
                    return lambda ch, fn=fn: not fn(ch)
        return lambda ch: True

    # -- first sets and nullability -----------------------------------------------------------
    def first(self, seq) -> tuple[frozenset, bool]:
        """(set of char predicates that can start ``seq``, whether ``seq`` can match empty)."""
        out: set = set()
        for op, av in seq:
            f, nullable = self.first_item(op, av)
            out |= f
            if not nullable:
                return frozenset(out), False
        return frozenset(out), True

    def first_item(self, op, av):
        if op in (_C.LITERAL, _C.NOT_LITERAL, _C.ANY, _C.IN):
            return frozenset([self._pred(op, av)]), False
        if op is _C.SUBPATTERN:
            return self.first(av[-1])
        if op is _C.BRANCH:
            out, nullable = set(), False
            for alt in av[1]:
                f, n = self.first(alt)
                out |= f
                nullable = nullable or n
            return frozenset(out), nullable
        if op in (_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", None)):
            lo, _hi, item = av
            f, n = self.first(item)
            return f, n or lo == 0
        if op is getattr(_C, "ATOMIC_GROUP", None):
            return self.first(av)
        if op is _C.GROUPREF_EXISTS:
            _g, yes, no = av
            f1, n1 = self.first(yes)
            f2, n2 = self.first(no) if no else (frozenset(), True)
            return f1 | f2, n1 or n2
        if op is _C.GROUPREF:
            return frozenset([lambda ch: True]), True
        return frozenset(), True  # anchors, lookarounds: zero width

    def overlap(self, a: frozenset, b: frozenset) -> bool:
        if not a or not b:
            return False
        return any(any(p(ch) for p in a) and any(q(ch) for q in b) for ch in _SAMPLE)

    # -- the walk ----------------------------------------------------------------------------
    def seq(self, seq, follow: frozenset, inside_loop: bool) -> None:
        """Check ``seq`` given the chars that may follow it; ``inside_loop``: within the body
        of an unbounded repeat (where a variable-length piece must not overlap its follow)."""
        items = list(seq)
        for i, (op, av) in enumerate(items):
            rest_first, rest_nullable = self.first(items[i + 1:])
            item_follow = rest_first | (follow if rest_nullable else frozenset())
            self.item(op, av, item_follow, inside_loop)

    def item(self, op, av, follow, inside_loop):
        if op is _C.SUBPATTERN:
            self.seq(av[-1], follow, inside_loop)
        elif op is _C.BRANCH:
            alts = av[1]
            if inside_loop:
                firsts = [self.first(alt)[0] for alt in alts]
                for i in range(len(firsts)):
                    for j in range(i + 1, len(firsts)):
                        if self.overlap(firsts[i], firsts[j]):
                            raise _Found("alternatives inside a repeated group can start with "
                                         "the same character (like '(a|aa)+')")
                firsts_all = frozenset().union(*firsts)
                if any(self.first(alt)[1] for alt in alts) and self.overlap(firsts_all, follow):
                    raise _Found("alternatives of different lengths inside a repeated group "
                                 "(like '(a|aa)+')")
            for alt in alts:
                self.seq(alt, follow, inside_loop)
        elif op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
            lo, hi, body = av
            unbounded = hi >= _BIG
            body_first, body_nullable = self.first(body)
            if inside_loop and lo != hi:
                if self.overlap(body_first, follow):
                    raise _Found("nested quantifiers: a repeated piece inside a repeated group "
                                 "can also match what follows it (like '(a+)+' or "
                                 "'(\\w+\\s?)*')")
            if unbounded:
                if body_nullable:
                    raise _Found("a repeated group that can match the empty string (like "
                                 "'(.*)*' or '(a*)*')")
                # one iteration may be followed by the next: the body's own first chars
                self.seq(body, body_first, inside_loop=True)
            else:
                self.seq(body, body_first | follow, inside_loop)
        elif op is _C.GROUPREF_EXISTS:
            _g, yes, no = av
            self.seq(yes, follow, inside_loop)
            if no:
                self.seq(no, follow, inside_loop)
        # possessive repeats, atomic groups, lookarounds, literals: nothing to backtrack into
