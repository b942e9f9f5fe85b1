// One block of the quantised S the ordering steps read (order_step.wgsl): for rows
// i in [first, first + rows) and every j, out[(i − first)·n + j] = round(clamp(S32, −2, 2)·scale)
// with S32 the f32 dot product of rows i and j of the normalised E. Whatever order the GPU
// adds in and whether it fuses, |S32 − e_i·e_j| stays within the host's entry bound
// (weft_compute::pick::entry_bound_any_f32); clamping never changes a unit row's entry.

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
        var acc = 0.0;
        for (var x = 0u; x < p.d; x++) {
            acc += e[a + x] * e[c + x];
        }
        out[r * p.n + j] = i32(round(clamp(acc, -2.0, 2.0) * p.scale));
    }
}
