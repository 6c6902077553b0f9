#!/usr/bin/env python3
"""random-fvecs.py OUT N DIM SEED: writes N seeded gaussian vectors of DIM
float32 to OUT in .fvecs form (per row: int32 dim, then the floats), for
the benchmarks' smoke tests (no network, no numpy)."""
import random
import struct
import sys

out, n, dim, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
with open(out, "wb") as f:
    for _ in range(n):
        f.write(struct.pack("<i", dim))
        f.write(struct.pack("<%df" % dim, *[rnd.gauss(0, 1) for _ in range(dim)]))
