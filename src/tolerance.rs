//! The float tolerances of the parity tests, from float32 error analysis: how far a value that
//! clinicadl-rs computes may lie from the one ClinicaDL 1.6.1 computed for the same input on
//! another CPU (other SIMD kernels, thread counts, summation orders), and how that error
//! propagates into probabilities, labels, losses and metrics. Nothing here comes from the numbers
//! one machine happened to give. Compiled into the library's unit tests and, by path, into the
//! integration tests (tests/cli), so that both compare by the same rules.
//!
//! The model, step by step:
//!
//! 1. **Network outputs.** Every output of a float32 network is a chain of sums (convolutions,
//!    matrix products) whose order depends on the kernels. Reordering a sum of K terms moves it
//!    by about √K·u·Σ|terms| (u = 2⁻²⁴; rounding errors of random sign, the probabilistic bound
//!    of Higham and Mary, SIAM J. Sci. Comput. 2019), and the errors of successive layers add in
//!    the same way: √(Σ_layers K)·u, relative to the scale of the values (Σ|terms| is the size
//!    of the tensor, not of each value: an output that comes out near zero by cancellation keeps
//!    the absolute error of the scale). Two evaluations (ClinicaDL's and ours) may each be off by
//!    that much, hence [`network_relative_error`] = 2·√(Σ K)·u, with Σ K summed over the
//!    weight tensors of the checkpoint ([`summed_terms`]). The scale is the largest magnitude
//!    of the values compared (a tensor, a column of outputs).
//! 2. **Probabilities** are the softmax of the logits z: dpᵢ = pᵢ·(dzᵢ − Σⱼ pⱼ·dzⱼ), so
//!    |dpᵢ| ≤ 2·pᵢ·(1 − pᵢ)·max|dz| ([`probability_tolerance`]). The logits are not written;
//!    their scale is taken as their spread, max ln(pᵢ/pⱼ), at least 1 ([`logit_scale`]):
//!    the softmax does not see their common offset.
//! 3. **Labels.** A predicted label may differ only where the two largest probabilities are
//!    within their tolerances of each other: a near-tie ([`is_near_tie`]). The metrics that
//!    follow from the labels are then recomputed from the labels given, not skipped.
//! 4. **Metrics** are functions of the rows. Their tolerance is the first-order bound
//!    Σᵢ |∂M/∂yᵢ|·δᵢ over the rows' tolerances δᵢ ([`first_order_bound`], by finite
//!    differences of the metric itself): absolute, so that a metric near zero (R2, a loss that
//!    is a sum) is compared at the size of its inputs' errors, not at its own.
//! 5. **Float32 reductions** (a mean, a sum of up to 2³² terms, pairwise as numpy and libtorch
//!    do) add at most log₂(n)·u relative: [`REDUCTION`] = 32·u.
//! 6. **SSIM** of a reconstruction moves by at most [`SSIM_LIPSCHITZ`] times the largest change
//!    of a voxel of the reconstruction (derivation at the constant).

// Each of the two test crates that compile this file uses a part of it.
#![allow(dead_code)]

/// The unit roundoff of float32, 2⁻²⁴.
pub const U: f64 = 1.0 / 16_777_216.0;

/// Relative rounding of a float32 reduction of up to 2³² terms (pairwise: log₂ n · u).
pub const REDUCTION: f64 = 32.0 * U;

/// Relative rounding of an element-wise float32 transform (the MinMax normalisation of an
/// input: a subtraction and a division, each correctly rounded), relative to the scale.
pub const ELEMENTWISE: f64 = 4.0 * U;

/// Relative rounding of a double computation of a metric from given rows (a few hundred
/// operations at most, each within the double unit roundoff 2⁻⁵³).
pub const DOUBLE_ROUNDING: f64 = 1024.0 * f64::EPSILON;

/// First-order bound of the change of ClinicaDL's SSIM (constants C1 = 0.01², C2 = 0.03²)
/// when each voxel of the reconstruction y moves by at most δ: each voxel of the SSIM map is
/// A·B with |A|, |B| ≤ 1, and the Gaussian window's weights sum to at most 1, so
/// |dμy| ≤ δ, |dσy²| ≤ 2δ·σy, |dσxy| ≤ δ·σx. For A = (2μxμy + C1)/(μx² + μy² + C1),
/// |∂A/∂μy| = 2|μx − μy·A|/(μx² + μy² + C1) ≤ 2√2·s/(s² + C1) ≤ √2/√C1 (s² = μx² + μy²);
/// for B = (2σxy + C2)/(σx² + σy² + C2), |dB| ≤ (2|dσxy| + |dσy²|)/(σx² + σy² + C2)
/// ≤ 2√2·δ·t/(t² + C2) ≤ √2·δ/√C2 (t² = σx² + σy²). So |dSSIM| ≤ (√2/0.01 + √2/0.03)·δ
/// = 188.6·δ, rounded up. The map's own float32 evaluation (Gaussian sums of 11³ terms) is a
/// perturbation of the same kind and size as the reconstruction's.
pub const SSIM_LIPSCHITZ: f64 = 189.0;

/// The window sums of an SSIM map: Gaussian windows of 11³ voxels.
const SSIM_WINDOW_TERMS: usize = 11 * 11 * 11;

/// Tolerance of an SSIM evaluated in float32 from the same images (of data range `range`) by
/// other kernels: its window sums are off as a network's outputs are (step 1, K = 11³), which
/// moves the map as a change of the voxels of that size would.
pub fn ssim_evaluation_error(range: f64) -> f64 {
    SSIM_LIPSCHITZ * network_relative_error(SSIM_WINDOW_TERMS) * range
}

/// The number of terms summed along a network, Σ K over its weight tensors (K: the terms of
/// one output of that layer). A state_dict does not tell a convolution (`[out, in, k…]`) from a
/// transposed one (`[in, out, k…]`), so K is the larger of the two readings; tensors of fewer
/// than two dimensions (biases, normalisation parameters) act element by element and add none.
pub fn summed_terms<'a>(shapes: impl IntoIterator<Item = &'a [usize]>) -> usize {
    shapes
        .into_iter()
        .filter(|shape| shape.len() >= 2 && shape[0] > 0 && shape[1] > 0)
        .map(|shape| {
            let numel: usize = shape.iter().product();
            (numel / shape[0]).max(numel / shape[1])
        })
        .sum()
}

/// Relative error of a network output (step 1): 2·√(Σ K)·u, relative to the scale of the values.
pub fn network_relative_error(summed_terms: usize) -> f64 {
    2.0 * (summed_terms.max(1) as f64).sqrt() * U
}

/// Whether `actual` is within `tolerance` of `expected` (NaN matches NaN, infinities match
/// themselves).
pub fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    if actual.is_nan() || expected.is_nan() {
        return actual.is_nan() && expected.is_nan();
    }
    actual == expected || (actual - expected).abs() <= tolerance
}

/// Largest magnitude of the values (the scale of step 1); NaN and infinities are skipped.
pub fn scale(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0.0, |m, v| m.max(v.abs()))
}

/// Tolerance of a softmax probability `p` whose logits are each off by at most `logit_error`
/// (step 2), with the softmax's own float32 rounding.
pub fn probability_tolerance(p: f64, logit_error: f64) -> f64 {
    2.0 * p * (1.0 - p) * logit_error + REDUCTION * p
}

/// The largest logit magnitude a float32 softmax can tell from another: below e^-103.97 a
/// probability underflows float32 to zero.
const LARGEST_LOGIT_SPREAD: f64 = 104.0;

/// The scale of the logits behind rows of probabilities (step 2): the largest spread
/// ln(max p / min p) of a row, at least 1.
pub fn logit_scale<'a>(rows: impl IntoIterator<Item = &'a [f64]>) -> f64 {
    rows.into_iter()
        .map(|row| {
            let high = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let low = row.iter().copied().fold(f64::INFINITY, f64::min);
            if low > 0.0 {
                (high / low).ln().min(LARGEST_LOGIT_SPREAD)
            } else {
                LARGEST_LOGIT_SPREAD
            }
        })
        .fold(1.0, f64::max)
}

/// Whether the two largest of `probabilities` (of one row) are within their tolerances of each
/// other, so that their order, the predicted label, may differ on another CPU (step 3).
pub fn is_near_tie(probabilities: &[f64], logit_error: f64) -> bool {
    let mut sorted: Vec<f64> = probabilities.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    match sorted.as_slice() {
        [first, second, ..] => {
            first - second
                <= probability_tolerance(*first, logit_error)
                    + probability_tolerance(*second, logit_error)
        }
        _ => false,
    }
}

/// First-order bound Σᵢ |∂f/∂xᵢ|·δᵢ of the change of `f` when each `x[i]` moves by at most
/// `deltas[i]` (step 4), by finite differences of `f` itself (each δᵢ is tiny, so the
/// difference is the derivative's term), taking the larger change of the two directions.
pub fn first_order_bound(f: impl Fn(&[f64]) -> f64, x: &[f64], deltas: &[f64]) -> f64 {
    let base = f(x);
    let mut moved = x.to_vec();
    let mut bound = 0.0;
    for (i, &delta) in deltas.iter().enumerate() {
        if delta == 0.0 {
            continue;
        }
        let mut largest: f64 = 0.0;
        for sign in [1.0, -1.0] {
            moved[i] = x[i] + sign * delta;
            let change = (f(&moved) - base).abs();
            if change.is_finite() {
                largest = largest.max(change);
            }
        }
        moved[i] = x[i];
        bound += largest;
    }
    bound
}

/// First-order bound Σ |∂value/∂t|·δ_t of a scalar `value` computed (with gradients) from
/// `leaves`, each of which may be off by at most its δ element-wise (step 4, by autograd where
/// the inputs are whole tensors).
pub fn gradient_bound(value: &tch::Tensor, leaves: &[(&tch::Tensor, f64)]) -> f64 {
    let tensors: Vec<&tch::Tensor> = leaves.iter().map(|(t, _)| *t).collect();
    let gradients = tch::Tensor::run_backward(&[value], &tensors, true, false);
    gradients
        .iter()
        .zip(leaves)
        // A leaf the value does not depend on has no (an undefined) gradient.
        .filter(|(gradient, _)| gradient.defined())
        .map(|(gradient, (_, delta))| {
            gradient.abs().sum(tch::Kind::Double).double_value(&[]) * delta
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_of_convolutions_and_linear_layers() {
        // Conv3d(1, 8, 3): 27 terms; Linear(50, 2): 50; a bias adds none.
        let shapes: [&[usize]; 3] = [&[8, 1, 3, 3, 3], &[2, 50], &[8]];
        assert_eq!(summed_terms(shapes), 8 * 27 + 50);
        assert!((network_relative_error(10_000) - 200.0 * U).abs() < 1e-18);
    }

    #[test]
    fn probability_errors_vanish_at_certainty() {
        assert_eq!(probability_tolerance(1.0, 0.1), REDUCTION);
        assert!((probability_tolerance(0.5, 0.1) - (0.05 + REDUCTION * 0.5)).abs() < 1e-15);
        assert_eq!(logit_scale([[0.5, 0.5].as_slice()]), 1.0);
        assert!((logit_scale([[0.9, 0.1].as_slice()]) - 9f64.ln()).abs() < 1e-12);
        assert_eq!(logit_scale([[1.0, 0.0].as_slice()]), LARGEST_LOGIT_SPREAD);
        assert!(is_near_tie(&[0.5, 0.5 - 1e-9], 1e-6));
        assert!(!is_near_tie(&[0.6, 0.4], 1e-6));
    }

    #[test]
    fn first_order_bound_of_a_sum_and_a_product() {
        let sum = |x: &[f64]| x.iter().sum::<f64>();
        let bound = first_order_bound(sum, &[1.0, 2.0], &[1e-6, 2e-6]);
        assert!((bound - 3e-6).abs() < 1e-15, "{bound}");
        let product = |x: &[f64]| x[0] * x[1];
        let bound = first_order_bound(product, &[3.0, 5.0], &[1e-6, 1e-6]);
        assert!((bound - 8e-6).abs() < 1e-12, "{bound}");
        assert!(within(f64::NAN, f64::NAN, 0.0) && !within(1.0, f64::NAN, 1.0));
    }
}
