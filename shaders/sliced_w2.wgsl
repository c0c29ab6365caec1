// sliced_w2.wgsl — live sample quality: the sliced Wasserstein-2 distance between the current
// particles and target samples, on the GPU (twin: src/metrics.rs::sliced_w2_projections).
//
// Workgroup k handles direction θ_k = π·(k + offset)/K: it projects m = min(n_particles, 1024)
// particles and m target points (data[hash4(seed, k, i, 40) % n_points]) onto (cos θ_k, sin θ_k),
// bitonic-sorts both 1024-slot arrays in workgroup memory (padding sorts last and is ignored),
// and writes  w2sq[k] = (1/m) Σ_i (a_(i) - b_(i))²,  the exact 1D W2² between the projections.
// The CPU (or a caller) averages over k and takes the square root: SW2 = sqrt(mean_k w2sq[k]).
// Bindings: 0 qp: QualityParams (uniform), 1 particles: array<vec2<f32>> (read),
//           2 data: array<vec2<f32>> (read), 3 w2sq: array<f32> (read_write, K values).
// Dispatched by src/gpu/quality.rs with K workgroups of 256 invocations.

const N: u32 = QUALITY_N; // samples per reading (src/gpu/quality.rs QUALITY_SAMPLES, via the prelude)
const PAD: f32 = 3.0e38;

struct QualityParams {
    n_particles: u32, n_points: u32, n_dirs: u32, seed: u32,
    offset: f32, _p0: f32, _p1: f32, _p2: f32,
}

@group(0) @binding(0) var<uniform> qp: QualityParams;
@group(0) @binding(1) var<storage, read> particles: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> data: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> w2sq: array<f32>;

var<workgroup> a: array<f32, N>;
var<workgroup> b: array<f32, N>;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn sliced_w2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let k = wid.x;
    let m = min(qp.n_particles, N);
    let theta = 3.141592653589793 * (f32(k) + qp.offset) / f32(qp.n_dirs);
    let dir = vec2<f32>(cos(theta), sin(theta));
    for (var i = lid; i < N; i += 256u) {
        if (i < m) {
            a[i] = dot(particles[i], dir);
            b[i] = dot(data[hash4(qp.seed, k, i, STREAM_QUALITY) % qp.n_points], dir);
        } else {
            a[i] = PAD;
            b[i] = PAD;
        }
    }
    workgroupBarrier();
    for (var size = 2u; size <= N; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var i = lid; i < N; i += 256u) {
                let l = i ^ stride;
                if (l > i) {
                    let ascending = (i & size) == 0u;
                    let ai = a[i];
                    let al = a[l];
                    if ((ai > al) == ascending) { a[i] = al; a[l] = ai; }
                    let bi = b[i];
                    let bl = b[l];
                    if ((bi > bl) == ascending) { b[i] = bl; b[l] = bi; }
                }
            }
            workgroupBarrier();
        }
    }
    var acc = 0.0;
    for (var i = lid; i < m; i += 256u) {
        let d = a[i] - b[i];
        acc += d * d;
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) { partial[lid] += partial[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) { w2sq[k] = partial[0] / f32(max(m, 1u)); }
}
