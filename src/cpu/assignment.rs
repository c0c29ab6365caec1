//! Exact optimal assignment (the Hungarian method, shortest augmenting paths with potentials, in
//! the O(n³) form of Kuhn–Munkres / Jonker–Volgenant); twin of `shaders/w2_minibatch.wgsl`.
//!
//! Rows are added one at a time; for row i a Dijkstra-like search over columns grows an
//! alternating tree: `minv[j]` is the smallest reduced cost `C[i0][j] - u[i0] - v[j]` reaching
//! column j, the free column with the smallest `minv` (ties: the smallest j) joins the tree, the
//! potentials move by that `delta`, and when a free column is reached the path is augmented.
//! All arithmetic is f32 in the shader's order, so both find the same assignment.
//!
//! Used for the minibatch estimate of `W2²(source, samples)`: the mean cost of the optimal
//! matching between m noise points and m samples, averaged over minibatches.

/// Index of `p`/`way` with no row (the algorithm's sentinel column 0).
const NONE: usize = 0;

/// The optimal assignment for an `n × n` cost: `col_of_row[i]`. Columns and rows are 0-based
/// here (the algorithm's 1-based arrays are internal).
pub fn hungarian(n: usize, cost: impl Fn(usize, usize) -> f32) -> Vec<usize> {
    let inf = f32::MAX;
    let (mut u, mut v) = (vec![0.0f32; n + 1], vec![0.0f32; n + 1]);
    let (mut p, mut way) = (vec![NONE; n + 1], vec![NONE; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let (mut delta, mut j1) = (inf, 0usize);
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == NONE {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut col_of_row = vec![0; n];
    for j in 1..=n {
        col_of_row[p[j] - 1] = j - 1;
    }
    col_of_row
}

/// `|a - b|²` as the shader computes it.
pub fn sq_dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
    dx * dx + dy * dy
}

/// The mean optimal matching cost of each minibatch `k < batches`: points `k·m .. (k+1)·m` of
/// `x0` against the same slice of `x1`.
pub fn minibatch_w2(x0: &[[f32; 2]], x1: &[[f32; 2]], m: usize, batches: usize) -> Vec<f32> {
    (0..batches)
        .map(|k| {
            let (a, b) = (&x0[k * m..(k + 1) * m], &x1[k * m..(k + 1) * m]);
            let col = hungarian(m, |i, j| sq_dist(a[i], b[j]));
            (0..m).map(|i| sq_dist(a[i], b[col[i]])).sum::<f32>() / m as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for k in 0..n {
                let mut q = p.clone();
                q.insert(k, n - 1);
                out.push(q);
            }
        }
        out
    }

    /// Against every permutation, on random costs of sizes 1–7.
    #[test]
    fn finds_the_optimum() {
        let mut r = Stream::new(3, 0);
        for n in 1..=7 {
            for _ in 0..20 {
                let c: Vec<f32> = (0..n * n).map(|_| r.range(0.0, 10.0)).collect();
                let col = hungarian(n, |i, j| c[i * n + j]);
                let got: f32 = (0..n).map(|i| c[i * n + col[i]]).sum();
                let mut seen = vec![false; n];
                col.iter().for_each(|&j| seen[j] = true);
                assert!(seen.iter().all(|&s| s), "not a permutation: {col:?}");
                let best = permutations(n).iter().map(|p| (0..n).map(|i| c[i * n + p[i]]).sum::<f32>()).fold(f32::MAX, f32::min);
                assert!(got <= best + 1e-4, "n {n}: {got} vs optimum {best}");
            }
        }
    }

    /// Two shifted copies of a point set: the optimal matching is the shift (cost |shift|²).
    #[test]
    fn a_shift_costs_its_square() {
        let mut r = Stream::new(5, 0);
        let a: Vec<[f32; 2]> = (0..64).map(|_| [r.normal(), r.normal()]).collect();
        let mut b: Vec<[f32; 2]> = a.iter().map(|p| [p[0] + 0.3, p[1] - 0.4]).collect();
        b.reverse();
        let w = minibatch_w2(&a, &b, 64, 1);
        assert!((w[0] - 0.25).abs() < 1e-4, "{w:?}");
    }
}
