#!/usr/bin/env python3
"""compare-golden.py A.json B.json - compare two golden files (make-golden.sh format).

Checks prompt_ids and generated_ids are identical and reports the largest
|difference| of the top-10 logits (matched by token id; ids present in only one
top-10 are counted as a mismatch) and of the margins. If both cases name
logits_f32 / logits_gen1_f32 files (next to their JSON), compares those too.
Exit status 1 if ids differ or the top-10 difference exceeds --tol (1e-3).
"""
import argparse, json, os, struct, sys


def load_f32(path):
    with open(path, "rb") as f:
        b = f.read()
    return struct.unpack("<%df" % (len(b) // 4), b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args()
    A, B = (json.load(open(p, encoding="utf-8")) for p in (args.a, args.b))
    ok = True
    if len(A["cases"]) != len(B["cases"]):
        print("different number of cases"); return 1
    worst_top, worst_margin, worst_full = 0.0, 0.0, None
    for i, (ca, cb) in enumerate(zip(A["cases"], B["cases"])):
        same_p = ca["prompt_ids"] == cb["prompt_ids"]
        same_g = ca["generated_ids"] == cb["generated_ids"]
        ok &= same_p and same_g
        top, mar, id_mismatch = 0.0, 0.0, 0
        for pa, pb in zip(ca["positions"], cb["positions"]):
            da, db = dict(pa["top10"]), dict(pb["top10"])
            for t in set(da) | set(db):
                if t in da and t in db:
                    top = max(top, abs(da[t] - db[t]))
                else:
                    id_mismatch += 1
            mar = max(mar, abs(pa["margin"] - pb["margin"]))
        full = ""
        for key in ("logits_f32", "logits_gen1_f32"):
            if key in ca and key in cb:
                va = load_f32(os.path.join(os.path.dirname(args.a), ca[key]))
                vb = load_f32(os.path.join(os.path.dirname(args.b), cb[key]))
                d = [abs(x - y) for x, y in zip(va, vb)]
                mx, mean = max(d), sum(d) / len(d)
                full += " %s max %.3g mean %.3g;" % (key, mx, mean)
                worst_full = mx if worst_full is None else max(worst_full, mx)
        ok &= top <= args.tol
        worst_top, worst_margin = max(worst_top, top), max(worst_margin, mar)
        print("case %d %r: prompt_ids %s, generated_ids %s, top10 max|d| %.3g "
              "(ids only in one top10: %d), margin max|d| %.3g;%s" % (
                  i, ca["prompt"], "same" if same_p else "DIFFER", "same" if same_g else "DIFFER",
                  top, id_mismatch, mar, full))
    print("overall: top10 max|d| %.3g, margin max|d| %.3g%s -> %s" % (
        worst_top, worst_margin,
        "" if worst_full is None else ", full-vector max|d| %.3g" % worst_full,
        "OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
