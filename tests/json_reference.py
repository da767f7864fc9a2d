#!/usr/bin/env python3
"""json_reference.py OUT - Python's json module as the reference for core/json_prefix.c.

Writes OUT, one case a line: "1 HEX" where json.loads takes the bytes as a whole
JSON text, "0 HEX" where it does not (HEX: the bytes in hex). The cases (seeded,
so every run writes the same file): 120,000 random strings over JSON's own
characters and a few others, of 0 to 24 bytes; and 3,000 texts json.dumps wrote
for random values (nested arrays and objects, strings with escapes, control
characters and non-ASCII characters, numbers in every form), compact and
indented. NaN and Infinity, which json.loads takes by default and RFC 8259 does
not, count as refused. Runs of whitespace longer than BN_JSON_MAX_SPACE (16),
or with two newlines, which the automaton refuses on purpose, are not generated. tests/test_json_prefix.c
(test_json_prefix python) reads it.
"""
import json
import random
import re
import sys

ALPHABET = list('{}[]:,"\\ \t\n0123456789-+.eEtrufalsn') + ["\x01", "\x1f", "a", "x", "u", "é", "😀", "/"]


def refuse_constant(name):
    raise ValueError(name)


def accepts(text):
    try:
        json.loads(text, parse_constant=refuse_constant)
        return True
    except (ValueError, RecursionError):
        return False


def value(rng, depth):
    kind = rng.randrange(7 if depth < 5 else 4)
    if kind == 0:
        return rng.choice([True, False, None])
    if kind == 1:
        return rng.choice([0, -0.0, 7, -12, 3.25, 1e-7, -2.5e300, 10**20, rng.random() * 1000])
    if kind in (2, 3):
        return "".join(rng.choice(['a', ' ', '"', '\\', '\n', '\x00', '\x1f', 'é', '€', '😀', '/', 'Z'])
                       for _ in range(rng.randrange(6)))
    if kind in (4, 5):
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {"k%d é\"" % i: value(rng, depth + 1) for i in range(rng.randrange(4))}


def main(out):
    rng = random.Random(1234)
    cases = []
    while len(cases) < 120000:
        s = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(25)))
        if any(c * 17 in s for c in " \t\n") or re.search("\n[ \t\r]*\n", s):
            continue
        cases.append(s)
    for i in range(3000):
        v = value(rng, 0)
        cases.append(json.dumps(v, ensure_ascii=i % 2 == 0, indent=None if i % 3 else 1))
    with open(out, "w") as f:
        for s in cases:
            f.write("%d %s\n" % (accepts(s), s.encode().hex()))


if __name__ == "__main__":
    main(sys.argv[1])
