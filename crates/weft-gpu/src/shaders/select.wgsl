// Top-k shortlist of each row of a block of S: one workgroup per row finds the row's k-th
// largest score g_k (self excluded) by a 4-pass radix select over order-preserving u32
// keys, then lists every other column whose score is ≥ g_k − margin. The host re-scores
// the listed columns exactly (docs/gpu.md: why the list always holds the CPU engine's
// top k). A row whose list overflows `cap` reports its true count and the host redoes it.

struct Params {
    n: u32,
    k: u32,
    cap: u32,
    // global index of the block's first row: the column each row skips (itself)
    row0: u32,
    margin: f32,
    stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read_write> cand: array<u32>;
@group(0) @binding(2) var<storage, read_write> count: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> prefix: u32;
var<workgroup> want: u32;
var<workgroup> listed: atomic<u32>;

// Larger float, larger key (finite values).
fn key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if ((b & 0x80000000u) != 0u) {
        return ~b;
    }
    return b | 0x80000000u;
}

fn unkey(k: u32) -> f32 {
    if ((k & 0x80000000u) != 0u) {
        return bitcast<f32>(k & 0x7fffffffu);
    }
    return bitcast<f32>(~k);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) w: vec3<u32>) {
    let r = w.x;
    let base = r * p.stride;
    let me = p.row0 + r;
    if (t == 0u) {
        prefix = 0u;
        want = p.k;
        atomicStore(&listed, 0u);
    }
    var mask = 0u;
    for (var round = 0u; round < 4u; round++) {
        let shift = 24u - round * 8u;
        atomicStore(&hist[t], 0u);
        workgroupBarrier();
        let pre = prefix;
        for (var j = t; j < p.n; j += 256u) {
            if (j != me) {
                let kx = key(s[base + j]);
                if ((kx & mask) == pre) {
                    atomicAdd(&hist[(kx >> shift) & 255u], 1u);
                }
            }
        }
        workgroupBarrier();
        if (t == 0u) {
            // The bin holding the want-th largest key among those matching the prefix.
            var rem = want;
            var bin = 255u;
            loop {
                let c = atomicLoad(&hist[bin]);
                if (c >= rem || bin == 0u) {
                    break;
                }
                rem -= c;
                bin -= 1u;
            }
            prefix = pre | (bin << shift);
            want = rem;
        }
        workgroupBarrier();
        mask = mask | (255u << shift);
    }
    let threshold = unkey(prefix) - p.margin;
    for (var j = t; j < p.n; j += 256u) {
        if (j != me && s[base + j] >= threshold) {
            let slot = atomicAdd(&listed, 1u);
            if (slot < p.cap) {
                cand[r * p.cap + slot] = j;
            }
        }
    }
    workgroupBarrier();
    if (t == 0u) {
        count[r] = atomicLoad(&listed);
    }
}
