// Steps of a batch of diversity orderings (docs/gpu-orderings.md). Ordering b of the batch
// keeps integer running sums sums[b·n + j] = Σ q(seq_i, j) over its picks so far, where
// q(i, j) = round(clamp(S[i, j], −2, 2)·scale) is an entry of S quantised to an integer.
// Integer additions are exact, so the only error is each entry's, which the host bounds.
//
// One step is three dispatches; a submission records several steps. `add`: adds the row of
// the ordering's last pick to its sums (marking that pick CHOSEN) and records the smallest
// unchosen sum. `shortlist`: lists every unchosen j whose sum is within band[t] of that
// minimum (at most k per ordering; the count may exceed k). `decide`: a shortlist of one is
// the rule's pick (the proof), so the device takes it and goes on; any other shortlist stops
// the ordering (WAITING) until the host has re-scored it with weft-compute's f64 rule.
//
// The row of S comes from one of four bindings holding consecutive blocks of rows of the
// quantised S (`add_s`), or is computed from the normalised rows E (`add_e`) when S does not
// fit the device.

struct Params {
    n: u32,
    // orderings in the batch
    b: u32,
    // shortlist slots per ordering
    k: u32,
    // items each ordering is to reach
    len: u32,
    scale: f32,
    rows_per_block: u32,
    d: u32,
    // picks each ordering may take on the device between two visits of the host
    ring: u32,
}

// A chosen item's sum; real sums stay within ±2^30.
const CHOSEN: i32 = 0x7fffffff;
// An ordering's status.
const RUNNING: i32 = 0;
const WAITING: i32 = 1;
const DONE: i32 = 2;

@group(0) @binding(0) var<uniform> p: Params;
// Per ordering, in blocks of b: [0] the last pick, [1] the minimum unchosen sum, [2] the
// shortlist count, [3] t (items picked), [4] the status, [5] picks taken on the device since
// the host's last visit; then band[t] for t in 0..=n (integer bands, from the host).
@group(0) @binding(1) var<storage, read_write> state: array<atomic<i32>>;
@group(0) @binding(2) var<storage, read_write> sums: array<i32>;
// (item, sum) pairs, k per ordering; then `ring` picks per ordering taken on the device
@group(0) @binding(3) var<storage, read_write> cands: array<i32>;
@group(0) @binding(4) var<storage, read> e: array<f32>;
@group(0) @binding(5) var<storage, read> s0: array<i32>;
@group(0) @binding(6) var<storage, read> s1: array<i32>;
@group(0) @binding(7) var<storage, read> s2: array<i32>;
@group(0) @binding(8) var<storage, read> s3: array<i32>;

var<workgroup> wmin: atomic<i32>;

fn s_entry(l: u32, j: u32) -> i32 {
    let blk = l / p.rows_per_block;
    let at = (l - blk * p.rows_per_block) * p.n + j;
    switch blk {
        case 0u: { return s0[at]; }
        case 1u: { return s1[at]; }
        case 2u: { return s2[at]; }
        default: { return s3[at]; }
    }
}

// The f32 dot product of rows l and j of E, quantised as order_build.wgsl does.
fn e_entry(l: u32, j: u32) -> i32 {
    var acc = 0.0;
    let a = l * p.d;
    let c = j * p.d;
    for (var x = 0u; x < p.d; x++) {
        acc += e[a + x] * e[c + x];
    }
    return i32(round(clamp(acc, -2.0, 2.0) * p.scale));
}

// Adds entry q(last, j) to ordering b's sum j; folds the unchosen sums into the minimum.
fn add_one(j: u32, b: u32, li: u32, from_e: bool) {
    if li == 0u {
        atomicStore(&wmin, CHOSEN);
    }
    workgroupBarrier();
    let live = atomicLoad(&state[4u * p.b + b]) == RUNNING;
    if live && j < p.n {
        let l = u32(atomicLoad(&state[b]));
        let at = b * p.n + j;
        var v = sums[at];
        if j == l {
            v = CHOSEN;
            sums[at] = v;
        } else if v != CHOSEN {
            if from_e {
                v += e_entry(l, j);
            } else {
                v += s_entry(l, j);
            }
            sums[at] = v;
        }
        if v != CHOSEN {
            atomicMin(&wmin, v);
        }
    }
    workgroupBarrier();
    if li == 0u && live {
        let m = atomicLoad(&wmin);
        if m != CHOSEN {
            atomicMin(&state[p.b + b], m);
        }
    }
}

@compute @workgroup_size(256)
fn add_s(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    add_one(gid.x, gid.y, li, false);
}

@compute @workgroup_size(256)
fn add_e(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    add_one(gid.x, gid.y, li, true);
}

@compute @workgroup_size(256)
fn shortlist(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let b = gid.y;
    if j >= p.n || atomicLoad(&state[4u * p.b + b]) != RUNNING {
        return;
    }
    let v = sums[b * p.n + j];
    let m = atomicLoad(&state[p.b + b]);
    let band = atomicLoad(&state[6u * p.b + u32(atomicLoad(&state[3u * p.b + b]))]);
    // |v|, |m| ≤ 2^30, so v − m cannot overflow.
    if v == CHOSEN || v - m > band {
        return;
    }
    let slot = u32(atomicAdd(&state[2u * p.b + b], 1));
    if slot < p.k {
        let at = 2u * (b * p.k + slot);
        cands[at] = i32(j);
        cands[at + 1u] = v;
    }
}

// Per ordering: a shortlist of exactly one is the pick; take it, record it for the host and
// reset for the next step. Anything else waits for the host.
@compute @workgroup_size(64)
fn decide(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if b >= p.b || atomicLoad(&state[4u * p.b + b]) != RUNNING {
        return;
    }
    let fill = atomicLoad(&state[5u * p.b + b]);
    if atomicLoad(&state[2u * p.b + b]) != 1 || u32(fill) >= p.ring {
        atomicStore(&state[4u * p.b + b], WAITING);
        return;
    }
    let j = cands[2u * b * p.k];
    atomicStore(&state[b], j);
    cands[2u * p.b * p.k + b * p.ring + u32(fill)] = j;
    atomicStore(&state[5u * p.b + b], fill + 1);
    let t = atomicLoad(&state[3u * p.b + b]) + 1;
    atomicStore(&state[3u * p.b + b], t);
    atomicStore(&state[p.b + b], CHOSEN);
    atomicStore(&state[2u * p.b + b], 0);
    if u32(t) >= p.len {
        atomicStore(&state[4u * p.b + b], DONE);
    }
}
