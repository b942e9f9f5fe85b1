//! Test support for the per-instruction-set kernel tests (`isa_*` in `gemm`, `sums`,
//! `compact`): each SIMD path is called directly and compared with the scalar one, whatever
//! the dispatcher would prefer on this CPU.
//!
//! A CPU without an instruction set cannot run its kernel. Its test then prints one
//! `SKIPPED` line naming the kernel and the missing features, and passes — unless the
//! environment variable `WEFT_REQUIRE_ISA` (a comma list: `avx2`, `avx512`, or `all`) names
//! that set, in which case the test fails. `make isa-test` prints which paths ran.

/// A small deterministic generator (xorshift64*), so the tests need no crate.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a nonzero-made seed.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in [-1, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A value in 0..n.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Whether the test of the `isa` kernel `what` can run: true when the CPU has the features
/// (`have`). Otherwise prints why it is skipped, or panics when `WEFT_REQUIRE_ISA` names
/// `isa` (or `all`).
pub(crate) fn runs(isa: &str, features: &str, have: bool, what: &str) -> bool {
    if have {
        eprintln!("isa: ran {what} ({isa}) against the scalar path");
        return true;
    }
    let required = std::env::var("WEFT_REQUIRE_ISA").unwrap_or_default();
    let required = required
        .split(',')
        .map(str::trim)
        .any(|r| r.eq_ignore_ascii_case(isa) || r.eq_ignore_ascii_case("all"));
    assert!(
        !required,
        "WEFT_REQUIRE_ISA names {isa}, but this CPU lacks {features}: {what} cannot be tested here"
    );
    eprintln!("SKIPPED {what} ({isa}): this CPU lacks {features} (WEFT_REQUIRE_ISA={isa} makes this an error)");
    false
}
