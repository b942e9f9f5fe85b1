// A block of S = A·Bᵀ: out[r, out_col0 + c] = dot(a[row_a0 + r], b[row_b0 + c]) for
// r < rows_a, c < rows_b, as ONE fused-multiply-add chain over k = 0..d in order starting
// from 0 — the summation weft-compute's CPU kernel uses (gemm.rs), so with a fused fma the
// bits are the CPU engine's. Each workgroup computes a 64×64 tile, each invocation 4×4
// entries (rows ly + 16·i, columns lx + 16·j), staging 64×16 slices of A and B in
// workgroup memory.

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

// [k][row] so the 16 invocations of a row read consecutive words.
var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) w: vec3<u32>) {
    let r0 = w.y * TILE;
    let c0 = w.x * TILE;
    let tid = l.y * 16u + l.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < p.d; k0 += KC) {
        for (var q = 0u; q < 4u; q++) {
            let idx = tid + q * 256u;
            let row = idx / KC;
            let kk = idx % KC;
            let gk = k0 + kk;
            var va = 0.0;
            if (r0 + row < p.rows_a && gk < p.d) {
                va = a[(p.row_a0 + r0 + row) * p.d + gk];
            }
            ta[kk * TILE + row] = va;
            var vb = 0.0;
            if (c0 + row < p.rows_b && gk < p.d) {
                vb = b[(p.row_b0 + c0 + row) * p.d + gk];
            }
            tb[kk * TILE + row] = vb;
        }
        workgroupBarrier();
        // Only real k: a padded fma(0, 0, -0.0) would turn -0 into +0.
        let kend = min(KC, p.d - k0);
        for (var kk = 0u; kk < kend; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = ta[kk * TILE + l.y + 16u * i];
                bv[i] = tb[kk * TILE + l.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + l.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let c = c0 + l.x + 16u * j;
            if (r < p.rows_a && c < p.rows_b) {
                out[(p.out_row0 + r) * p.out_stride + p.out_col0 + c] = acc[i * 4u + j];
            }
        }
    }
}
