#!/usr/bin/env python3
"""regex_reference.py OUT - Python's re as the reference for core/json_regex.c.

Writes OUT: for each pattern a line "P HEX" (the ECMA-262 pattern's UTF-8 bytes
in hex), then one line per string: "1 HEX" where re.search finds the pattern
in it (JSON Schema's rule: a match anywhere, "^" and "$" anchor it), "0 HEX"
where it does not. tests/test_json_regex.c (test_json_regex python) reads it.

The patterns are ones where Python and ECMA-262 agree once each is given to
Python in Python's terms (python_pattern): "." stops at \\n \\r U+2028 U+2029
in ECMA and at \\n alone in Python; "$" is the very end in ECMA and also
before a final \\n in Python (\\Z); \\s is ECMA's fixed list, not Python's
str.isspace; named groups are (?<n>...) in ECMA and (?P<n>...) in Python;
\\u{H...} is \\UHHHHHHHH in Python; and re.ASCII makes \\d and \\w ASCII, as in ECMA.

The strings (seeded, so every run writes the same file): random strings over
the pattern's own characters and a few others (non-ASCII ones, the blanks
ECMA counts and Python does not, line ends); strings written from the
pattern's parse tree (re._parser), so that many match, with characters
before and after them; and those strings with one character dropped,
doubled or replaced, so that many nearly match.
"""
import random
import re
import sys

try:
    from re import _constants as C
    from re import _parser as parser
except ImportError:  # Python < 3.11
    import sre_constants as C
    import sre_parse as parser

PATTERNS = [
    "", "abc", "^abc$", "^a|b$", "^(a|b)$", "a|", "^$", "a$|^b", "^ab|cd$|^ef$|gh",
    "^[a-z]+$", "^[A-Za-z_][A-Za-z0-9_]*$", r"^\d{3}-\d{4}$", r"^\d+(\.\d+)?$",
    r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$", r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
    r"^\w+$", r"\W", r"\s", r"^\S+$", r"^\s*$", r"\D\d", r"^\d\D\w\W$", r"^[^\d\s]+$", r"^[\d\s]+$",
    ".", "^.$", "^.*$", "^.+é", "a.c", "^a.{2,3}b$", "^(ab|cd)*$", "(ab)+c", "^(a|ab)(c|bcd)(d*)$",
    "^a{2}$", "^a{2,}$", "^a{2,4}$", "^(ab){1,3}$", "^x{0,2}y?z*$", "colou?r",
    r"^(?:\+|00)\d{1,3}[ -]?\d{2,4}$", "^[€é😀]+$", "😀", "^[^a-z]*$", r"[^\n]",
    r"^[\u00e0-\u00ff]{2}", r"^[\u0100-\uffff]$", r"^[\u0080-\u{10ffff}]+$", r"^\x41\u0042$", r"\t|\n",
    r"^[\-+]?\d+$", r"^[a\-z]$", "^[-az]$", "^[az-]$", r"^[\w.-]+$",
    r"^(?<year>\d{4})-(?<month>\d{2})$", "^a+?b*?c??$", "^(a{1,2}?){2}$", r"^https?://[^/\s]+(/.*)?$",
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}$", r"^(\d{1,3}\.){3}\d{1,3}$", "(a|b)*abb$", "^((a|b)(c|d))+$",
    "^(|x)y$", "[.][.]", r"\.\*\+\?\(\)\[\]\{\}\|\/\^\$", r"^\\$", "x*", "^x*$", "(x|y|z){3}",
    "^(?:(?:a|b)c)*$", r"^[^\u00e9]$", r"é\s€", "^(.)(.)?$", r"^\S\s\S$", r"[\r\u2028]",
]

# ECMA-262's \s (Python's \s is str.isspace, another list).
SPACES = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
EXTRA = ["a", "b", "x", "0", "9", "_", "-", ".", " ", "\n", "\r", "\t", "\f", "é", "€", "😀", "\u00a0",
         "\u2028", "\u3000", "\ufeff", "\u0085", "Z", "/", "\\", "ȁ", "\U0010fffd"]
# The control characters JSON writes only as \u escapes, which no string json_regex.h reads holds.
UNWRITABLE = re.compile("[\x00-\x07\x0b\x0e-\x1f]")


def python_pattern(p):
    """The ECMA-262 pattern p as a Python pattern that matches the same strings."""
    out, i, in_set = [], 0, False
    while i < len(p):
        ch = p[i]
        if ch == "\\":
            e = p[i + 1]
            if e == "u" and p[i + 2] == "{":  # \u{H...}: Python's \UHHHHHHHH
                end = p.index("}", i)
                out.append("\\U%08x" % int(p[i + 3:end], 16))
                i = end + 1
                continue
            if e in "sS":
                assert not (in_set and e == "S"), "\\S inside a set has no Python spelling: " + p
                out.append(SPACES if in_set else "[%s%s]" % ("^" if e == "S" else "", SPACES))
            else:
                out.append(ch + e)
            i += 2
            continue
        if in_set:
            in_set = ch != "]"
        elif ch == "[":
            in_set = True
            assert p[i + 1:i + 2] != "]" and p[i + 1:i + 3] != "^]", "[] and [^] differ in Python: " + p
        elif ch == ".":
            ch = r"[^\n\r\u2028\u2029]"
        elif ch == "$":
            ch = r"\Z"
        elif p.startswith("(?<", i) and p[i + 3] not in "=!":
            ch, i = "(?P<", i + 2
        out.append(ch)
        i += 1
    return "".join(out)


def tree_chars(tree, chars):
    """The literal characters and range ends of a parse tree, into chars."""
    for op, av in tree:
        if op in (C.LITERAL, C.NOT_LITERAL):
            chars.add(chr(av))
        elif op == C.IN:
            for iop, iav in av:
                if iop == C.LITERAL:
                    chars.add(chr(iav))
                elif iop == C.RANGE:
                    chars.update((chr(iav[0]), chr(iav[1])))
        elif op == C.BRANCH:
            for sub in av[1]:
                tree_chars(sub, chars)
        elif op == C.SUBPATTERN:
            tree_chars(av[-1], chars)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            tree_chars(av[2], chars)


def pick_in(items, rng, alphabet):
    """A character of a set's items (or, negated, most likely outside them)."""
    if any(op == C.NEGATE for op, _ in items):
        return rng.choice(alphabet)
    op, av = rng.choice(items)
    if op == C.LITERAL:
        return chr(av)
    if op == C.RANGE:
        while True:
            c = rng.randint(av[0], min(av[1], av[0] + 300) if rng.random() < 0.7 else av[1])
            if not 0xD800 <= c <= 0xDFFF:
                return chr(c)
    if op == C.CATEGORY:
        return category_char(av, rng, alphabet)
    return rng.choice(alphabet)


def category_char(cat, rng, alphabet):
    return {C.CATEGORY_DIGIT: lambda: rng.choice("0123456789"),
            C.CATEGORY_WORD: lambda: rng.choice("azAZ09_"),
            C.CATEGORY_SPACE: lambda: rng.choice(" \t\n")}.get(cat, lambda: rng.choice(alphabet))()


def generate(tree, rng, alphabet):
    """A string the parse tree spells (most of the time: negations guess)."""
    out = []
    for op, av in tree:
        if op == C.LITERAL:
            out.append(chr(av))
        elif op in (C.NOT_LITERAL, C.ANY):
            out.append(rng.choice(alphabet))
        elif op == C.IN:
            out.append(pick_in(av, rng, alphabet))
        elif op == C.CATEGORY:
            out.append(category_char(av, rng, alphabet))
        elif op == C.BRANCH:
            out.append(generate(rng.choice(av[1]), rng, alphabet))
        elif op == C.SUBPATTERN:
            out.append(generate(av[-1], rng, alphabet))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi = av[0], av[1]
            n = rng.randint(lo, min(hi, lo + 3))
            out.extend(generate(av[2], rng, alphabet) for _ in range(n))
        # AT (^, \Z): nothing to write
    return "".join(out)


def mutate(s, rng, alphabet):
    if not s:
        return rng.choice(alphabet)
    i = rng.randrange(len(s))
    kind = rng.randrange(3)
    if kind == 0:
        return s[:i] + s[i + 1:]
    if kind == 1:
        return s[:i] + s[i] + s[i:]
    return s[:i] + rng.choice(alphabet) + s[i + 1:]


def strings_for(pattern, rng):
    tree = parser.parse(pattern, re.ASCII)
    chars = set()
    tree_chars(tree, chars)
    alphabet = sorted(chars | set(EXTRA))
    out = {""}
    for _ in range(150):
        out.add("".join(rng.choice(alphabet) for _ in range(rng.randrange(10))))
    made = []
    for _ in range(150):
        s = generate(tree, rng, alphabet)
        if rng.random() < 0.3:
            s = rng.choice(alphabet) + s
        if rng.random() < 0.3:
            s = s + rng.choice(alphabet)
        made.append(s)
    out.update(made)
    out.update(mutate(rng.choice(made), rng, alphabet) for _ in range(100))
    return sorted(x for x in out if not UNWRITABLE.search(x))


def main(path):
    rng = random.Random(20240531)
    with open(path, "w") as f:
        for p in PATTERNS:
            py = re.compile(python_pattern(p), re.ASCII)
            f.write("P %s\n" % p.encode().hex())
            for s in strings_for(py.pattern, rng):
                f.write("%d %s\n" % (py.search(s) is not None, s.encode().hex()))


if __name__ == "__main__":
    main(sys.argv[1])
