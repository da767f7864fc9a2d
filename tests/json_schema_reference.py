#!/usr/bin/env python3
"""json_schema_reference.py OUT - the jsonschema package as the reference for core/json_schema.c.

Writes OUT, one line each: "S HEX" starts a schema (HEX: its JSON text in hex,
as the C side compiles it) and the cases after it, up to the next "S", are its
own. "1 HEX": a text the automaton must take whole: json.loads takes it,
jsonschema (Draft 2020-12) says the value is valid, and it is written the one
way json_schema.h names (declared properties in their order, enum and const
values and property names as compact JSON, integers without fraction or
exponent, bounded numbers without exponent and with at most 15 digits, sized
strings without \\uD... escapes, patterned strings without \\u escapes, formats without escapes and
with an upper-case T and Z, blank runs of at most 16 bytes and one newline). "0 HEX": a text it must refuse whole: json.loads
refuses it (NaN and Infinity too, which RFC 8259 has not) or jsonschema says
the value is invalid.

For each of the hand-written schemas below (every keyword json_schema.h names:
types alone and in lists, enum, const, properties with required ones, maps,
arrays with bounds, string lengths, integer and number bounds, formats, patterns, anyOf, oneOf,
allOf, $ref to "#", $defs and definitions, a nested "$id" resource,
annotations, and OpenAI tool-call shapes), a schema-guided generator writes valid texts, compact and
with blanks between the tokens; each must pass json.loads and jsonschema (a
generator bug stops the script rather than write a wrong "1"). The "0" cases
are mutants of them: bytes deleted, inserted, replaced or cut off, and values
changed (a property dropped, an unknown one added, a value of another type,
outside the enum or at and past a bound, items added or taken away, properties
swapped). A mutant jsonschema finds valid is left out, as it may not be in the
one written form. Formats are checked (jsonschema's format checker, whose
date-time and time need rfc3339-validator). Seeded, so every run writes the
same file. tests/test_json_schema.c (test_json_schema python) reads it. Needs
jsonschema==4.26.0 and rfc3339-validator==0.1.4.
"""
import calendar
import copy
import json
import math
import operator
from fractions import Fraction
import random
import re
import re._parser as sre_parse  # the parse tree of a pattern, to write strings it matches
import sys

from regex_reference import generate as pattern_string

import jsonschema

VALID = 150  # "1" cases a schema
MUTANTS = 270  # "0" cases a schema
MAX_TEXT = 2000  # bytes in a case (the C test's line buffer)
DEEP = 6  # schema nesting past which the generator takes the shortest way out
RECURSION = 3  # $ref "#" followed past which it does so too (a tree 4 levels deep at most)
TOO_DEEP = 14  # past which it gives up and starts the text again
FREE_DEPTH = 6  # nesting of a free value

BLANKS = " \t\n\r"
# A free string's characters: plain, non-ASCII UTF-8, and every escape, surrogate pairs in both cases.
PIECES = ["a", "Z", "0", " ", "'", "{", ":", ",", "é", "€", "😀", "/", '\\"', "\\\\", "\\/", "\\b", "\\f",
          "\\n", "\\r", "\\t", "\\u00e9", "\\u0000", "\\u001F", "\\u20AC", "\\uD83D\\uDE00", "\\ud83d\\ude00"]
# Bytes a byte mutant inserts or puts in place of another.
ALPHABET = list('{}[]:,"\\ \t\n0123456789-+.eEtrufalsn') + ["\x01", "a", "x", "é", "😀", "/", "\r"]
CONSTRAINTS = {"type", "enum", "const", "properties", "required", "additionalProperties", "items", "minItems",
               "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "format", "pattern", "anyOf", "oneOf", "allOf", "$ref"}
# A sized string's pieces: one character each, no \uD... escape (json_schema.h writes those as UTF-8).
SIZED_PIECES = [p for p in PIECES if not p.lower().startswith("\\ud")]
SAFE = 2 ** 53 - 1  # a bounded integer's largest magnitude
ALL_TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]

TOOL_CALLS = {
    "type": "object",
    "properties": {
        "tool_calls": {
            "type": "array", "minItems": 1,
            "items": {"anyOf": [
                {"type": "object",
                 "properties": {
                     "name": {"const": "get_weather"},
                     "arguments": {"type": "object",
                                   "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                                   "required": ["city"]}},
                 "required": ["name", "arguments"]},
                {"type": "object",
                 "properties": {
                     "name": {"const": "add"},
                     "arguments": {"type": "object",
                                   "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                                   "required": ["a", "b"], "additionalProperties": False}},
                 "required": ["name", "arguments"]}]}}},
    "required": ["tool_calls"],
}

SCHEMAS = [
    # Each type alone, and in lists.
    {"type": "string"},
    {"type": "integer"},
    {"type": "number"},
    {"type": "boolean"},
    {"type": "null"},
    {"type": "object"},  # what json_object requests read with
    {"type": ["string", "null"]},
    {"type": ["integer", "boolean"]},
    # enum and const: values sharing prefixes ("gr"/"green", 1/12/125, 1/"1"), nested values.
    {"enum": ["red", "green", "blue", "gr", "a \"quoted\" é", "line\nbreak"]},
    {"enum": [1, 12, 125, -3, 0, True, False, None, "1", "", {"k": [1, 2], "é": "v"}, [1, "x", []], {}, []]},
    {"type": "integer", "enum": [1, 2, 30, "x", True]},  # the type leaves out "x" and true
    {"const": "get_weather"},
    {"const": {"a": [1, {"b": None}], "c": "d"}},
    # Objects: an optional property between required ones and at the end; all optional; none at all.
    {"type": "object",
     "properties": {"id": {"type": "integer"}, "nick": {"type": "string"}, "name": {"type": "string"},
                    "score": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
     "required": ["id", "name"], "additionalProperties": False},
    {"type": "object",
     "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}, "c": {"enum": ["x", "y"]},
                    "d é\"": {"type": "object"}}},
    {"type": "object", "additionalProperties": False},
    # Maps: any keys, values of a schema.
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "number"}},
                                                "required": ["x"], "additionalProperties": False}},
    # Arrays.
    {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
    {"type": "array", "maxItems": 0},
    {"type": "array", "items": {"type": "string"}, "minItems": 2},
    {"type": "array", "maxItems": 3,
     "items": {"type": "array", "maxItems": 3,
               "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": ["integer", "null"]}},
                         "required": ["k", "v"], "additionalProperties": False}}},
    # anyOf, oneOf (alternatives of other types, so that jsonschema's oneOf agrees), allOf of one $ref.
    {"anyOf": [{"type": "integer"}, {"type": "string"}, {"enum": [True]}, {"const": None}]},
    {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                "additionalProperties": False},
               {"type": "object", "properties": {"b": {"type": "string"}, "c": {"type": "boolean"}},
                "required": ["b"], "additionalProperties": False}]},
    {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}, {"type": "null"}]},
    {"$defs": {"name": {"type": "string", "enum": ["ann", "bob"]}},
     "type": "object", "properties": {"who": {"allOf": [{"$ref": "#/$defs/name"}], "description": "as pydantic"}},
     "required": ["who"], "additionalProperties": False},
    # A pydantic model: $defs, Optional[...] as anyOf with null, titles, defaults, annotations.
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "$comment": "pydantic's model_json_schema()",
     "$defs": {
         "Address": {"title": "Address", "type": "object",
                     "properties": {"street": {"title": "Street", "type": "string"},
                                    "zip": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
                                            "title": "Zip"}},
                     "required": ["street"]},
         "Color": {"title": "Color", "type": "string", "enum": ["red", "green", "blue"]}},
     "title": "Person", "description": "A person.", "type": "object",
     "properties": {
         "name": {"title": "Name", "type": "string", "examples": ["Ann"]},
         "age": {"title": "Age", "type": "integer", "default": 0},
         "address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None},
         "favorite": {"$ref": "#/$defs/Color", "description": "a ref with an annotation beside it"},
         "tags": {"title": "Tags", "type": "array", "items": {"type": "string"}, "default": []}},
     "required": ["name", "favorite"], "examples": [{"name": "Ann", "favorite": "red"}]},
    # Recursion through "#": a tree.
    {"type": "object",
     "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#"}}},
     "required": ["value"], "additionalProperties": False},
    # Draft 7's "definitions".
    {"definitions": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                               "required": ["x", "y"], "additionalProperties": False}},
     "type": "object", "properties": {"from": {"$ref": "#/definitions/point"}, "to": {"$ref": "#/definitions/point"}},
     "required": ["from", "to"]},
    # Nested resources: inside an "$id", "#..." is that resource ("item" is an integer there, a string outside;
    # "#" is the linked list node, not the document).
    {"$defs": {"item": {"type": "string"}},
     "type": "object",
     "properties": {
         "outer": {"$ref": "#/$defs/item"},
         "inner": {"$id": "urn:test:inner", "$defs": {"item": {"type": "integer"}},
                   "type": "array", "items": {"$ref": "#/$defs/item"}},
         "node": {"$id": "urn:test:node", "type": "object",
                  "properties": {"n": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
                  "required": ["n", "next"]}},
     "required": ["outer", "inner"]},
    # String lengths (in characters) and integer bounds, alone, in lists and in a pydantic-like model.
    {"type": "string", "minLength": 2, "maxLength": 5},
    {"type": "string", "minLength": 3},
    {"type": "string", "maxLength": 0},
    {"type": ["string", "null"], "maxLength": 1},
    {"type": "integer", "minimum": -5, "maximum": 120},
    {"type": "integer", "exclusiveMinimum": 0},
    {"type": "integer", "minimum": 100, "exclusiveMaximum": 1000},
    {"type": "integer", "maximum": -10},
    {"type": "integer", "minimum": 0.5, "exclusiveMaximum": 7.5},
    {"type": ["integer", "null"], "minimum": 7, "maximum": 7},
    {"type": "integer", "minimum": SAFE - 20},
    {"type": "array", "maxItems": 4, "items": {"type": "integer", "minimum": -1, "maximum": 1}},
    {"type": "object",
     "properties": {"name": {"title": "Name", "type": "string", "minLength": 1, "maxLength": 20},
                    "age": {"title": "Age", "type": "integer", "minimum": 0, "maximum": 150},
                    "code": {"anyOf": [{"type": "string", "minLength": 4, "maxLength": 4}, {"type": "null"}]}},
     "required": ["name", "age"], "additionalProperties": False},
    # Bounds on numbers that may have a fraction (held to 15 digits without an exponent): doubles a little
    # above (0.1) and below (0.3) their decimals, a 16-digit bound, bounds finer and coarser than 15 digits,
    # a range of one value, no type, in arrays, and a pydantic model (float = Field(ge=0, le=1), confloat(gt=0)).
    {"type": "number", "minimum": 0, "maximum": 1},
    {"type": "number", "exclusiveMinimum": 0},
    {"type": "number", "minimum": 0.1, "exclusiveMaximum": 0.3},
    {"type": "number", "minimum": -2.5, "maximum": -1.25},
    {"type": "number", "maximum": 99.99999999999999},
    {"type": "number", "exclusiveMinimum": 1e-20, "maximum": 1e300},
    {"type": "number", "minimum": 1e-7, "exclusiveMaximum": 1e-6},
    {"type": ["number", "null"], "minimum": 123456789.123456, "exclusiveMaximum": 123456789.123457},
    {"type": "number", "minimum": 999999999999990, "maximum": 1e16},
    {"minimum": -0.5, "exclusiveMaximum": 0.5},
    {"type": "array", "maxItems": 4, "items": {"type": "number", "minimum": -1, "maximum": 1}},
    {"title": "Item", "type": "object",
     "properties": {"name": {"title": "Name", "type": "string"},
                    "score": {"title": "Score", "type": "number", "minimum": 0, "maximum": 1},
                    "price": {"title": "Price", "type": "number", "exclusiveMinimum": 0},
                    "discount": {"anyOf": [{"type": "number", "minimum": 0, "exclusiveMaximum": 100},
                                           {"type": "null"}], "default": None, "title": "Discount"}},
     "required": ["name", "score", "price"]},
    # Formats (held: the validator below checks them), alone, beside null and in a model.
    # Patterns: anchored or matched anywhere (JSON Schema's rule), beside lengths, in
    # objects, arrays and anyOf; characters that need escapes and ones of several bytes.
    # (Python's \\d and "." match more than ECMA-262's, so the "0" cases keep to what
    # both refuse: a mutant Python takes is left out.)
    {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
    {"type": "string", "pattern": "cat|dog"},
    {"type": "string", "pattern": "^(\\+|00)?[0-9 ]{6,12}$", "maxLength": 10},
    {"type": "string", "pattern": "(ab)+", "minLength": 3, "maxLength": 7},
    {"type": "object", "properties": {"mail": {"type": "string", "pattern": "^[a-z0-9.]+@[a-z]+\\.(com|org)$"},
                                      "tag": {"type": "string", "pattern": "^#?[a-z_]{1,8}$", "minLength": 3}},
     "required": ["mail"]},
    {"type": "array", "items": {"type": "string", "pattern": "^(é|ü|[a-c])+[^a-z]?$"}, "maxItems": 3},
    {"anyOf": [{"type": "string", "pattern": "^x"}, {"type": "string", "pattern": "y$"}, {"type": "integer"}]},
    {"type": "string", "pattern": "^a\"b\\\\c/\\n(😀|€)*$"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "time"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uuid"},
    {"type": ["string", "null"], "format": "date-time"},
    {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"},
                                      "born": {"type": "string", "format": "date"},
                                      "seen": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
                                      "alarm": {"type": "string", "format": "time"}},
     "required": ["id", "born"], "additionalProperties": False},
    # Free values.
    True,
    {},
    {"title": "only annotations", "description": "constrains nothing"},
    # OpenAI tool calls, and a choice between them and a plain answer.
    TOOL_CALLS,
    {"anyOf": [TOOL_CALLS, {"type": "object", "properties": {"response": {"type": "string"}},
                            "required": ["response"]}]},
]


def refuse_constant(name):
    raise ValueError(name)


def valid(validator, data):
    """Whether bytes are a JSON text (UTF-8, no NaN or Infinity) whose value the schema accepts."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return validator.is_valid(value)


def compact(value):
    """How the C side writes enum and const values and property names (cJSON's unformatted print)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def resolve(root, ref):
    if ref == "#":
        return root
    for prefix, key in (("#/$defs/", "$defs"), ("#/definitions/", "definitions")):
        if ref.startswith(prefix):
            return root[key][ref[len(prefix):]]
    raise ValueError(ref)


def types_of(s):
    """The types a schema's value may have, as json_schema.c reads them (without "type", the keywords say)."""
    t = s.get("type")
    if t is not None:
        return [t] if isinstance(t, str) else list(t)
    types = []
    if s.keys() & {"properties", "required", "additionalProperties"}:
        types.append("object")
    if s.keys() & {"items", "minItems", "maxItems"}:
        types.append("array")
    return types or ALL_TYPES


def type_name(v):
    if isinstance(v, bool):
        return "boolean"
    if v is None:
        return "null"
    if isinstance(v, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(v)]


class TooDeep(Exception):
    pass


# What "." and a negated set may stand for in a generated string: characters both
# ECMA-262 and Python take there, none of which JSON writes with a \\u escape.
ANY_CHAR = list("aZ0 _-é€😀")


class Generator:
    """Writes canonical texts for a schema; spaced: blank runs between some tokens."""

    def __init__(self, rng, spaced):
        self.rng, self.spaced = rng, spaced

    def ws(self):
        # One call per gap between tokens, so that no run passes 16 bytes.
        if not self.spaced or self.rng.random() < 0.6:
            return ""
        n = self.rng.choice([1, 1, 2, 3, 16, self.rng.randint(1, 16)])
        run = "".join(self.rng.choice(BLANKS) for _ in range(n))
        first = run.find("\n")  # one newline a run at most, as the automaton allows
        return run[:first + 1] + run[first + 1:].replace("\n", " ") if first >= 0 else run

    def container(self, open_, members, close):
        if not members:
            return open_ + self.ws() + close
        text = open_ + self.ws() + members[0]
        for m in members[1:]:
            text += self.ws() + "," + self.ws() + m
        return text + self.ws() + close

    def member(self, key, value):
        return key + self.ws() + ":" + self.ws() + value

    def string(self):
        return '"' + "".join(self.rng.choice(PIECES) for _ in range(self.rng.randrange(9))) + '"'

    def sized_string(self, s):
        """minLength..maxLength characters (up to 8 past the least)."""
        low = s.get("minLength", 0)
        high = min(s.get("maxLength", low + 8), low + 8)
        return '"' + "".join(self.rng.choice(SIZED_PIECES) for _ in range(self.rng.randint(low, high))) + '"'

    def patterned(self, pattern):
        """A string the pattern matches (regex_reference's walk over its parse tree, tried again
        where a negated set's guess missed), with text around it where it is not anchored; as
        JSON, with no \\u escape."""
        rng = self.rng
        tree = sre_parse.parse(pattern)
        for _ in range(100):
            around = "".join(rng.choice(ANY_CHAR) for _ in range(rng.randrange(3)))
            text = pattern_string(tree, rng, ANY_CHAR)
            if not pattern.startswith("^"):
                text = around + text
            if not pattern.endswith("$"):
                text += around[::-1]
            if re.search(pattern, text):
                return json.dumps(text, ensure_ascii=False).replace("/", rng.choice(["/", "\\/"]))
        raise TooDeep()

    def formatted(self, fmt):
        """A string of the format, in the one way json_schema.h writes it; dates near month ends."""
        rng = self.rng
        if fmt == "uuid":
            hexes = rng.choice(["0123456789abcdef", "0123456789ABCDEF"])
            return '"' + "-".join("".join(rng.choice(hexes) for _ in range(n)) for n in (8, 4, 4, 4, 12)) + '"'
        year = rng.choice([1, 1900, 2000, 2023, 2024, 9999, rng.randint(1, 9999)])
        month = rng.randint(1, 12)
        day = rng.choice([1, 28, calendar.monthrange(year, month)[1], rng.randint(1, 28)])
        date = "%04d-%02d-%02d" % (year, month, day)
        time = "%02d:%02d:%02d" % (rng.choice([0, 23, rng.randint(0, 23)]), rng.randint(0, 59), rng.choice([0, 59]))
        if rng.random() < 0.4:
            time += "." + self.digits(1, 6)
        time += rng.choice(["Z", "%s%02d:%02d" % (rng.choice("+-"), rng.randint(0, 23), rng.randint(0, 59))])
        return '"' + {"date": date, "time": time, "date-time": date + "T" + time}[fmt] + '"'

    def bounded_integer(self, s):
        """An integer within the bounds, often at or near an edge."""
        low, high = integer_bounds(s)
        rng = self.rng
        value = rng.choice([low, high, rng.randint(low, high), rng.randint(low, min(high, low + 20)),
                            rng.randint(max(low, high - 20), high)])
        return "-0" if value == 0 and rng.random() < 0.2 else str(value)

    def bounded_number(self, s):
        """A number within the bounds, of at most 15 digits without an exponent: often at or next to a bound."""
        rng = self.rng
        fits = [t for t in near_bounds(s) if counted_digits(t) <= 15 and within_bounds(s, json.loads(t))]
        assert fits, s
        if rng.random() < 0.6:
            return rng.choice(fits)
        low = max([s[k] for k in ("minimum", "exclusiveMinimum") if k in s] + [-1e6])
        high = min([s[k] for k in ("maximum", "exclusiveMaximum") if k in s] + [1e6])
        for _ in range(20):  # somewhere between them
            text = "%.*f" % (rng.randint(0, 10), rng.uniform(max(low, -1e14), min(high, 1e14)))
            if counted_digits(text) <= 15 and within_bounds(s, json.loads(text)):
                return text
        return rng.choice(fits)

    def digits(self, low, high):
        return "".join(self.rng.choice("0123456789") for _ in range(self.rng.randint(low, high)))

    def integer(self):
        """Digits only (no fraction, no exponent), short and long, -0 too."""
        rng = self.rng
        digits = rng.choice(["0", str(rng.randint(1, 9)), str(rng.randint(10, 99999)),
                             str(rng.randint(1, 9)) + self.digits(5, 25)])
        return rng.choice(["", "", "-"]) + digits

    def number(self):
        """Every RFC 8259 form: 7, -0, 0.25, 1.5e-3, 12E+2, 3e07."""
        text = self.integer()
        if self.rng.random() < 0.5:
            text += "." + self.digits(1, 5)
        if self.rng.random() < 0.4:
            text += self.rng.choice("eE") + self.rng.choice(["", "+", "-"]) + self.digits(1, 2)
        return text

    def free(self, depth):
        """Any JSON value."""
        rng = self.rng
        kind = rng.randrange(8 if depth < FREE_DEPTH else 5)
        if kind == 0:
            return rng.choice(["true", "false", "null"])
        if kind in (1, 2):
            return self.number()
        if kind in (3, 4):
            return self.string()
        if kind in (5, 6):
            return self.container("[", [self.free(depth + 1) for _ in range(rng.randrange(4))], "]")
        return self.container("{", [self.member(k, self.free(depth + 1)) for k in self.keys(rng.randrange(4))], "}")

    def keys(self, n):
        """n strings of distinct values (keys of an object without "properties")."""
        out, seen = [], set()
        while len(out) < n:
            k = self.string()
            if json.loads(k) not in seen:
                seen.add(json.loads(k))
                out.append(k)
        return out

    def value(self, s, root, depth, hops=0):
        """A value of schema s at nesting depth; hops: how often $ref "#" was followed on the way."""
        rng = self.rng
        if depth > TOO_DEEP:
            raise TooDeep
        if s is True or not (s.keys() & CONSTRAINTS):
            return self.free(depth)
        if "$id" in s:
            root = s  # "#..." inside is this resource
        if "$ref" in s:
            return self.value(resolve(root, s["$ref"]), root, depth, hops + (s["$ref"] == "#"))
        deep = depth >= DEEP or hops >= RECURSION
        for key in ("anyOf", "oneOf", "allOf"):
            if key in s:
                alts = s[key]
                if deep:  # an alternative that does not recurse, where there is one
                    alts = [a for a in alts if "$ref" not in json.dumps(a)] or alts
                return self.value(rng.choice(alts), root, depth, hops)
        types = types_of(s)
        if "enum" in s or "const" in s:
            values = s["enum"] if "enum" in s else [s["const"]]
            fits = [v for v in values if type_name(v) in types or (type_name(v) == "integer" and "number" in types)]
            return compact(rng.choice(fits))
        t = rng.choice(types)
        if t == "object":
            if "properties" in s:
                required = set(s.get("required", []))
                return self.container("{", [
                    self.member(compact(name), self.value(sub, root, depth + 1, hops))
                    for name, sub in s["properties"].items()
                    if name in required or (not deep and rng.random() < 0.5)], "}")
            extra = s.get("additionalProperties", True)
            n = 0 if extra is False or deep else rng.randrange(4)
            return self.container("{", [self.member(k, self.value(extra, root, depth + 1, hops))
                                        for k in self.keys(n)], "}")
        if t == "array":
            low = s.get("minItems", 0)
            high = min(s.get("maxItems", low + 4), low + 4)
            n = low if deep else rng.randint(low, high)
            return self.container("[", [self.value(s.get("items", True), root, depth + 1, hops) for _ in range(n)], "]")
        if t == "string":
            if "format" in s:
                return self.formatted(s["format"])
            if "pattern" in s:
                for _ in range(100):  # within the lengths beside it
                    text = self.patterned(s["pattern"])
                    if s.get("minLength", 0) <= len(json.loads(text)) <= s.get("maxLength", 1 << 30):
                        return text
                raise TooDeep()
            return self.sized_string(s) if s.keys() & {"minLength", "maxLength"} else self.string()
        if t == "integer":
            return self.bounded_integer(s) if s.keys() & BOUNDS else self.integer()
        if t == "number":
            return self.bounded_number(s) if s.keys() & BOUNDS else self.number()
        if t == "boolean":
            return rng.choice(["true", "false"])
        return "null"

    def text(self, schema):
        return self.ws() + self.value(schema, schema, 0) + self.ws()


BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


def integer_bounds(s):
    """The integers s's bounds allow, low..high (within the safe range, as json_schema.c reads them)."""
    low, high = -SAFE, SAFE
    if "minimum" in s:
        low = max(low, math.ceil(s["minimum"]))
    if "exclusiveMinimum" in s:
        low = max(low, math.floor(s["exclusiveMinimum"]) + 1)
    if "maximum" in s:
        high = min(high, math.floor(s["maximum"]))
    if "exclusiveMaximum" in s:
        high = min(high, math.ceil(s["exclusiveMaximum"]) - 1)
    return low, high


BOUND_TESTS = {"minimum": operator.ge, "exclusiveMinimum": operator.gt, "maximum": operator.le,
               "exclusiveMaximum": operator.lt}


def within_bounds(s, value):
    """Whether a number is within s's bounds, as jsonschema compares them (an int exactly, a float as a double)."""
    return all(test(value, s[key]) for key, test in BOUND_TESTS.items() if key in s)


def counted_digits(text):
    """A number's digits as json_schema.h counts them for a bounded number: a leading "0" before the '.' not."""
    digits = text.lstrip("-")
    return sum(c.isdigit() for c in (digits[2:] if digits.startswith("0.") else digits))


def decimal_text(negative, m, frac):
    """m * 10^-frac, written without an exponent."""
    whole, part = divmod(m, 10 ** frac)
    return ("-" if negative else "") + str(whole) + ("." + str(part).zfill(frac) if frac else "")


def near_bounds(s):
    """Texts of either sign at and one last-digit step beside each of s's bounds, 0 to 16 digits after the '.'."""
    texts = set()
    for key in sorted(BOUNDS & s.keys()):
        x = abs(Fraction(s[key]))  # the double's exact value
        for frac in range(17):
            m = math.floor(x * 10 ** frac)
            if m >= 10 ** 17:
                break
            texts.update(decimal_text(negative, n, frac) for n in range(max(m - 1, 0), m + 3)
                         for negative in (False, True))
    return sorted(texts)


def schema_values(s, out):
    """The schema's enum and const values and property names, and values at and past its bounds: near misses
    for mutants."""
    if isinstance(s, dict):
        if s.keys() & BOUNDS:
            low, high = integer_bounds(s)
            out.extend([low - 1, low, high, high + 1, -low])
            if "number" in types_of(s):  # at and past the edges, in 15 digits
                misses = [json.loads(t) for t in near_bounds(s) if counted_digits(t) <= 15]
                out.extend(misses[::max(1, len(misses) // 24)])
        if "pattern" in s:  # a match, and strings one character off it
            out.extend(["", "x", "AB-12", "ab-123", "cot", "@x.com", "a@b.net", "#toolongtag", "0000000000000"])
        if "format" in s:  # near misses: days past the month, hours past 23, a uuid a digit short
            out.extend(["2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01", "0000-01-01", "24:00:00Z",
                        "12:00:00", "12:60:00Z", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z",
                        "123e4567-e89b-12d3-a456-42661417400", "123e4567e89b12d3a456426614174000"])
        for key in ("minLength", "maxLength"):
            if key in s:
                out.extend(["x" * max(s[key] - 1, 0), "é" * s[key], "x" * (s[key] + 1)])
        for key, v in s.items():
            if key == "enum":
                out.extend(v)
            elif key == "const":
                out.append(v)
            elif key == "properties":
                out.extend(v.keys())
                schema_values(v, out)
            else:
                schema_values(v, out)
    elif isinstance(s, list):
        for v in s:
            schema_values(v, out)
    return out


POOL = [None, True, False, 0, -7, 2.5, 13, 1e30, "", "zzz", "é", [], {}, [1, "a"], {"a": 1}, {"zz": None}]


def mutate_bytes(rng, data):
    """A byte deleted, inserted, replaced, or the text cut off."""
    i = rng.randrange(len(data))
    op = rng.randrange(4)
    if op == 0:
        return data[:i] + data[i + 1:]
    if op == 3:
        return data[:i]
    piece = rng.choice(ALPHABET).encode()
    return data[:i] + piece + data[i + (op == 2):]


def mutate_value(rng, value, pool):
    """The value with one change: a property dropped, added or swapped, an item added or dropped, a value replaced."""
    box = [value]
    places = []  # (container, key) of every value

    def walk(c, k):
        places.append((c, k))
        v = c[k]
        for kk in (v.keys() if isinstance(v, dict) else range(len(v)) if isinstance(v, list) else ()):
            walk(v, kk)

    walk(box, 0)
    objects = [c[k] for c, k in places if isinstance(c[k], dict)]
    arrays = [c[k] for c, k in places if isinstance(c[k], list)]
    op = rng.randrange(6)
    if op == 0 and any(objects):  # drop a property (a required one, often)
        obj = rng.choice([o for o in objects if o])
        del obj[rng.choice(list(obj))]
    elif op == 1 and objects:  # add one, unknown or known out of place
        rng.choice(objects)[rng.choice(["zz", "extra", "é"] + [p for p in pool if isinstance(p, str)])] = \
            copy.deepcopy(rng.choice(pool))
    elif op == 2 and any(len(o) > 1 for o in objects):  # swap two properties (valid as a rule, so left out)
        obj = rng.choice([o for o in objects if len(o) > 1])
        items = list(obj.items())
        i, j = rng.sample(range(len(items)), 2)
        items[i], items[j] = items[j], items[i]
        obj.clear()
        obj.update(items)
    elif op == 3 and arrays:  # one item more or less
        arr = rng.choice(arrays)
        if arr and rng.random() < 0.5:
            del arr[rng.randrange(len(arr))]
        else:
            arr.insert(rng.randint(0, len(arr)), copy.deepcopy(rng.choice(arr) if arr else rng.choice(pool)))
    else:  # a value replaced: another type, or not in the enum
        c, k = rng.choice(places)
        c[k] = copy.deepcopy(rng.choice(pool))
    return box[0]


def dump(rng, value):
    """A value as json.dumps writes it: compact, with blanks or indented, ASCII or not."""
    if rng.random() < 0.3:
        return json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([1, 2]))
    return json.dumps(value, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")]))


def cases(rng, schema, validator):
    """The schema's valid texts ("1") and mutants of them it refuses ("0"), as bytes."""
    good, bad = [], []
    seen = set()
    for _ in range(VALID * 10):
        if len(good) == VALID:
            break
        try:
            text = Generator(rng, rng.random() < 0.5).text(schema)
        except TooDeep:
            continue
        data = text.encode()
        assert not re.search("[ \t\n\r]{17}|\n[ \t\r]*\n", text)  # (no string holds raw blanks of its own)
        if len(data) >= MAX_TEXT or data in seen:
            continue
        if not valid(validator, data):
            raise AssertionError("generated an invalid text for %s: %r" % (compact(schema), text))
        seen.add(data)
        good.append(data)
    pool = POOL + schema_values(schema, [])
    for _ in range(MUTANTS * 20):
        if len(bad) == MUTANTS:
            break
        data = rng.choice(good)
        if rng.random() < 0.5:
            data = mutate_bytes(rng, data)
        else:
            data = dump(rng, mutate_value(rng, json.loads(data.decode()), pool)).encode()
        if len(data) >= MAX_TEXT or data in seen:
            continue
        seen.add(data)
        if not valid(validator, data):  # a valid mutant is left out: it may not be in the written form
            bad.append(data)
    return good, bad


def main(out):
    rng = random.Random(1234)
    with open(out, "w") as f:
        for schema in SCHEMAS:
            text = compact(schema)
            assert len(text.encode()) < 4000
            jsonschema.Draft202012Validator.check_schema(schema)
            checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
            assert {"date", "time", "date-time", "uuid"} <= checker.checkers.keys()  # rfc3339-validator installed
            validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
            good, bad = cases(rng, schema, validator)
            f.write("S %s\n" % text.encode().hex())
            for kind, texts in (("1", good), ("0", bad)):
                for data in texts:
                    f.write("%s %s\n" % (kind, data.hex()))


if __name__ == "__main__":
    main(sys.argv[1])
