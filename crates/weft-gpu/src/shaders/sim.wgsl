// A block of S = A·Bᵀ: out[r, out_col0 + c] = dot(a[row_a0 + r], b[row_b0 + c]) for
// r < rows_a, c < rows_b, as ONE fused-multiply-add chain over k = 0..d in order starting
// from 0 — the summation weft-compute's CPU kernel uses (gemm.rs), so with a fused fma the
// bits are the CPU engine's. Each workgroup computes a 64×64 tile, each invocation 4×4
// entries (rows 4·ly + i, columns 4·lx + j, held in four vec4 accumulators: a vector
// fma is the same per-entry chain), staging 64×16 slices of A and B in workgroup memory.

struct Params {
    rows_a: u32,
    rows_b: u32,
    d: u32,
    row_a0: u32,
    row_b0: u32,
    out_stride: u32,
    out_col0: u32,
    out_row0: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 64u;
const KC: u32 = 16u;

// [k][row / 4] as vec4 of 4 consecutive rows.
var<workgroup> ta: array<vec4<f32>, 256>;
var<workgroup> tb: array<vec4<f32>, 256>;

// Rows row0..row0+3 of `m` at column k (zero past `rows` or `d`), for A (which = 0) or B.
fn load4(which: u32, first: u32, row0: u32, rows: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (k < p.d) {
        for (var i = 0u; i < 4u; i++) {
            if (row0 + i < rows) {
                if (which == 0u) {
                    v[i] = a[(first + row0 + i) * p.d + k];
                } else {
                    v[i] = b[(first + row0 + i) * p.d + k];
                }
            }
        }
    }
    return v;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) w: vec3<u32>) {
    let r0 = w.y * TILE;
    let c0 = w.x * TILE;
    let tid = l.y * 16u + l.x;
    // Staging: invocation tid loads rows 4·(tid / KC) .. +3 at k0 + tid % KC.
    let group = tid / KC;
    let kk_load = tid % KC;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.d; k0 += KC) {
        ta[kk_load * 16u + group] = load4(0u, p.row_a0, r0 + group * 4u, p.rows_a, k0 + kk_load);
        tb[kk_load * 16u + group] = load4(1u, p.row_b0, c0 + group * 4u, p.rows_b, k0 + kk_load);
        workgroupBarrier();
        // Only real k: a padded fma(0, 0, -0.0) would turn -0 into +0.
        let kend = min(KC, p.d - k0);
        for (var kk = 0u; kk < kend; kk++) {
            let av = ta[kk * 16u + l.y];
            let bv = tb[kk * 16u + l.x];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + l.y * 4u + i;
        if (r < p.rows_a) {
            for (var j = 0u; j < 4u; j++) {
                let c = c0 + l.x * 4u + j;
                if (c < p.rows_b) {
                    out[(p.out_row0 + r) * p.out_stride + p.out_col0 + c] = acc[i][j];
                }
            }
        }
    }
}
