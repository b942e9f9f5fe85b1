// order_build.wgsl in f64, for adapters with SHADER_F64: out[(i − first)·n + j] =
// round(clamp(S64, −2, 2)·scale) with S64 the dot product of f32 rows i and j in f64. Each
// product is exact in f64, so whether the driver fuses it with the add changes nothing; the
// sums add at most (d + 2)·2⁻⁵²·1.02 whatever their order and rounding direction
// (weft_compute::pick::entry_bound_any_f64). The band of candidates is then set by rounding
// to integers rather than by the similarity's error: far narrower than in f32.

struct Build {
    n: u32,
    d: u32,
    first: u32,
    rows: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Build;
@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;

@compute @workgroup_size(256)
fn build(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let j = gid.x;
    if j >= p.n {
        return;
    }
    let c = j * p.d;
    // More rows than one dispatch dimension allows are taken in strides of the grid.
    for (var r = gid.y; r < p.rows; r += groups.y) {
        let a = (p.first + r) * p.d;
        var acc = f64(0.0);
        for (var x = 0u; x < p.d; x++) {
            acc += f64(e[a + x]) * f64(e[c + x]);
        }
        out[r * p.n + j] = i32(round(clamp(acc, f64(-2.0), f64(2.0)) * f64(p.scale)));
    }
}
