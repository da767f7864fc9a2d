"""tq_reference.py OUT - TQ1_0 / TQ2_0 tensors made by gguf-py's own quantizer.

The independent side of `test_ternary_repack gguf`: random ternary tensors
(values in {-s, 0, +s}, odd row counts, BitNet's K of 2560, some blocks all
zero) quantized with gguf.quants.quantize, so our decoder is checked against
llama.cpp's Python encoder rather than against one written alongside it.

OUT, all little-endian: b"BNTQREF1", uint32 count, then per tensor uint32 ggml
type, uint32 K, uint32 rows, float32 s, uint64 nbytes, the nbytes of TQ data,
and rows * K int8 values t (the tensor is s * t).
"""
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize

K = 2560
# (rows, s): odd counts; scales that f16 rounds, one that it keeps exactly.
SHAPES = [(1, 0.0371), (3, 1.7), (37, 0.5), (5, 3.3e-3)]


def tensors(rng):
    for qtype in (GGMLQuantizationType.TQ1_0, GGMLQuantizationType.TQ2_0):
        for rows, s in SHAPES:
            t = rng.integers(-1, 2, size=(rows, K), dtype=np.int8)
            t[rows // 2, 256:768] = 0  # two all-zero blocks: gguf-py gives them d = 0
            q = quantize((t.astype(np.float32) * np.float32(s)), qtype)
            yield qtype, rows, s, q.tobytes(), t.tobytes()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = list(tensors(np.random.default_rng(1234)))
    with open(sys.argv[1], "wb") as f:
        f.write(b"BNTQREF1" + struct.pack("<I", len(out)))
        for qtype, rows, s, data, t in out:
            f.write(struct.pack("<IIIfQ", int(qtype), K, rows, s, len(data)) + data + t)
    print(f"{len(out)} TQ1_0 / TQ2_0 tensors from gguf-py in {sys.argv[1]}")


if __name__ == "__main__":
    main()
