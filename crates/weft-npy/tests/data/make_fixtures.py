#!/usr/bin/env python3
"""Regenerate the .npy fixtures that crates/weft-npy/tests/npy.rs reads.

Run from anywhere with a python3 that has numpy (Debian: python3-numpy):

    python3 crates/weft-npy/tests/data/make_fixtures.py

Every fixture is written by numpy itself, so the tests check weft against the real
format rather than against weft's own idea of it. The values follow formulas that the
Rust test recomputes (see `value` in tests/npy.rs): element k, counted in C (row-major)
order over the logical shape, is

    f2, f4:  k * 0.5 - 3          (exact in float16 and float32)
    f8:      k * 0.1 - 2.5        (inexact, but IEEE multiplication is deterministic)
    i4:      k * 7 - 20
    i8:      k * 3000000007 - 10**10
    u1:      250 - k * 13
    u2:      60000 - k * 999
    u4:      4000000000 - k * 12345

1-D fixtures have 7 elements, 2-D fixtures the shape (3, 4), unless the name says otherwise.
Fortran-order and big-endian fixtures hold the same logical values in another layout.
"""

import os

import numpy as np
from numpy.lib import format as npf

HERE = os.path.dirname(os.path.abspath(__file__))

FORMULAS = {
    "f2": lambda k: k * 0.5 - 3,
    "f4": lambda k: k * 0.5 - 3,
    "f8": lambda k: k * 0.1 - 2.5,
    "i4": lambda k: k * 7 - 20,
    "i8": lambda k: k * 3000000007 - 10**10,
    "u1": lambda k: 250 - k * 13,
    "u2": lambda k: 60000 - k * 999,
    "u4": lambda k: 4000000000 - k * 12345,
}


def values(code, shape, order="<"):
    n = int(np.prod(shape))
    k = np.arange(n, dtype=np.int64)
    if code[0] == "f":
        # Compute in float64 (as the Rust test does), then round to the element type.
        v = FORMULAS[code](k.astype(np.float64))
    else:
        v = np.array([FORMULAS[code](int(i)) for i in k], dtype=np.int64)
    prefix = "|" if code[1] == "1" else order
    return v.astype(prefix + code).reshape(shape)


def write(name, array, version=None, allow_pickle=False):
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        npf.write_array(f, array, version=version, allow_pickle=allow_pickle)


def main():
    for code in ["f4", "f8", "i4", "i8", "u1", "u2", "u4"]:
        write(f"{code}_1d.npy", values(code, (7,)))
        write(f"{code}_2d.npy", values(code, (3, 4)))

    # Header versions 2.0 (4-byte header length) and 3.0 (utf-8 header).
    write("f4_2d_v2.npy", values("f4", (3, 4)), version=(2, 0))
    write("i8_1d_v3.npy", values("i8", (7,)), version=(3, 0))

    # Empty arrays.
    write("f4_empty_1d.npy", np.zeros((0,), dtype="<f4"))
    write("f4_empty_rows.npy", np.zeros((0, 5), dtype="<f4"))
    write("u2_empty_cols.npy", np.zeros((3, 0), dtype="<u2"))

    # Fortran order (numpy writes fortran_order True for F-contiguous 2-D arrays).
    write("f4_2d_fortran.npy", np.asfortranarray(values("f4", (3, 4))))
    write("i8_2d_fortran.npy", np.asfortranarray(values("i8", (3, 4))))
    write("u1_2d_fortran.npy", np.asfortranarray(values("u1", (3, 4))))
    write("u2_5x2_fortran.npy", np.asfortranarray(values("u2", (5, 2))))

    # Big-endian, every multi-byte dtype.
    for code in ["f4", "f8", "i4", "i8", "u2", "u4"]:
        write(f"{code}_2d_be.npy", values(code, (3, 4), order=">"))
    write("u4_1d_be.npy", values("u4", (7,), order=">"))

    # Big-endian and Fortran order together.
    write("f8_2d_fortran_be.npy", np.asfortranarray(values("f8", (3, 4), order=">")))

    # float16: converted to f32 on load.
    write("f2_1d.npy", values("f2", (7,)))
    write("f2_2d.npy", values("f2", (3, 4)))
    write("f2_2d_fortran_be.npy", np.asfortranarray(values("f2", (3, 4), order=">")))
    special = np.array(
        [0.0, -0.0, 2.0**-24, -(2.0**-24), 2.0**-14, 65504.0, np.inf, -np.inf, np.nan, 1.0 / 3.0],
        dtype="<f2",
    )
    write("f2_special.npy", special)

    # Refused: shapes weft does not have.
    write("f4_3d.npy", values("f4", (2, 3, 4)))
    write("f4_0d.npy", np.array(1.5, dtype="<f4"))

    # Refused: dtypes weft does not have.
    write("i1_1d.npy", np.arange(5, dtype="|i1"))
    write("b1_1d.npy", np.array([True, False, True]))
    write("u8_1d.npy", np.arange(3, dtype="<u8"))
    write("c8_1d.npy", np.arange(3, dtype="<c8"))
    write("str_1d.npy", np.array(["ab", "cde"], dtype="<U3"))
    write("bytes_1d.npy", np.array([b"ab", b"cde"], dtype="|S3"))
    write("object_1d.npy", np.array([1, "two", None], dtype=object), allow_pickle=True)
    # A structured dtype with a non-ASCII field name needs a utf-8 (3.0) header.
    write("structured_v3.npy", np.zeros(2, dtype=[("\u00e9t\u00e9", "<f4"), ("n", "<i4")]), version=(3, 0))


if __name__ == "__main__":
    main()
