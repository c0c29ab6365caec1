// network.wgsl — the MLP evaluated whole in one invocation, for the sampling kernels
// (ode_step.wgsl, ode_adaptive.wgsl); twin: src/cpu/mlp.rs::{network, guided, velocity}.
// Expects globals `model: ModelDesc` (common.wgsl) and `params: array<f32>`, and `HIDDEN`.
//
//   net_at(x, t, r, col): the network at the input row (x, y, t, [r at model.r_column],
//     [one-hot with a 1 at column col]) — the first layer adds W[:, r_column]·r and the embedding
//     W[:, col] instead of multiplying a mostly-zero row (col = 0: no class columns).
//   guided_net(x, t, r): the query's field (model.query_column), mixed with classifier-free
//     guidance v(∅) + w·(v(c) - v(∅)) when model.guided = 1 (Ho & Salimans 2022).
//   velocity(x, t) = guided_net(x, t, t): for MeanFlow models the average velocity over an empty
//     interval, which is the instantaneous velocity.
// The hidden vector lives in two private arrays of HIDDEN floats (ping-pong between layers).

fn net_at(x: vec2<f32>, t: f32, r: f32, col: u32) -> vec2<f32> {
    var h: array<array<f32, HIDDEN>, 2>;
    let first = model.layers[0];
    for (var o = 0u; o < first.y; o++) {
        let w = first.z + first.x * o;
        var z = params[first.w + o] + params[w] * x.x + params[w + 1u] * x.y + params[w + 2u] * t;
        if (model.r_column != 0u) { z += params[w + model.r_column] * r; }
        if (col != 0u) { z += params[w + col]; }
        h[0][o] = act(model.activation, z);
    }
    var cur = 0u;
    for (var l = 1u; l + 1u < model.n_layers; l++) {
        let L = model.layers[l];
        let nxt = 1u - cur;
        for (var o = 0u; o < L.y; o++) {
            let w = L.z + o * L.x;
            var z = params[L.w + o];
            for (var k = 0u; k < L.x; k++) {
                z += h[cur][k] * params[w + k];
            }
            h[nxt][o] = act(model.activation, z);
        }
        cur = nxt;
    }
    let last = model.layers[model.n_layers - 1u];
    var v = vec2<f32>(params[last.w], params[last.w + 1u]);
    for (var k = 0u; k < last.x; k++) {
        v += h[cur][k] * vec2<f32>(params[last.z + k], params[last.z + last.x + k]);
    }
    return v;
}

fn guided_net(x: vec2<f32>, t: f32, r: f32) -> vec2<f32> {
    // One network evaluation per pass of the loop (two when guided): a loop, not two calls, so the MLP is
    // inlined once per field evaluation (shader compilers inline every call; the Runge–Kutta
    // steps already call this up to 14 times, and compile time grows faster than the code).
    var vc = vec2<f32>(0.0);
    var out = vec2<f32>(0.0);
    for (var e = 0u; e <= model.guided; e++) {
        let v = net_at(x, t, r, select(model.query_column, model.null_column, e == 1u));
        if (e == 0u) {
            vc = v;
            out = v;
        } else {
            out = v + model.guidance * (vc - v);
        }
    }
    return out;
}

fn velocity(x: vec2<f32>, t: f32) -> vec2<f32> {
    return guided_net(x, t, t);
}
