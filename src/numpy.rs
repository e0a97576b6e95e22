//! numpy 1.26 and pandas reductions with their exact rounding: `np.sum` / `np.add.reduce`
//! (pairwise summation over 8192-element chunks), `np.mean`, pandas' NaN-skipping
//! `Series.mean()`, `np.percentile` (linear) and `np.std`.
//!
//! This module owns only the order of the additions, so that sums and means are the floats numpy
//! prints; it knows nothing of metrics, rows or files. The metric formulas that use these
//! reductions live in `metrics`, the soft-voting weights in `ensemble`.

/// Elements per chunk of numpy's buffered reductions (`NPY_BUFSIZE`).
const NUMPY_BUFFER_SIZE: usize = 8192;

/// Largest block that numpy's pairwise summation adds with 8 accumulators (`PW_BLOCKSIZE`).
const PAIRWISE_BLOCK_SIZE: usize = 128;

/// numpy's pairwise summation of `count` values `get(start)…get(start + count − 1)`.
// numpy: pairwise_sum_@TYPE@ (numpy/core/src/umath/loops_utils.h.src)
fn pairwise_sum<T, F>(start: usize, count: usize, get: &F) -> T
where
    T: Copy + Default + std::ops::Add<Output = T>,
    F: Fn(usize) -> T,
{
    if count < 8 {
        let mut sum = T::default();
        for index in start..start + count {
            sum = sum + get(index);
        }
        sum
    } else if count <= PAIRWISE_BLOCK_SIZE {
        let mut partial = [T::default(); 8];
        for (offset, slot) in partial.iter_mut().enumerate() {
            *slot = get(start + offset);
        }
        let complete = count - count % 8;
        let mut index = 8;
        while index < complete {
            for (offset, slot) in partial.iter_mut().enumerate() {
                *slot = *slot + get(start + index + offset);
            }
            index += 8;
        }
        let mut sum = ((partial[0] + partial[1]) + (partial[2] + partial[3]))
            + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
        while index < count {
            sum = sum + get(start + index);
            index += 1;
        }
        sum
    } else {
        let mut half = count / 2;
        half -= half % 8;
        pairwise_sum(start, half, get) + pairwise_sum(start + half, count - half, get)
    }
}

/// numpy 1.26's `add.reduce` of the 1-D array `get(0)…get(count − 1)`: pairwise sums of
/// consecutive 8192-element chunks, added in order into an accumulator starting at 0.
// numpy: PyUFunc_Reduce with the buffered iterator (NPY_BUFSIZE = 8192), numpy 1.26.
pub fn numpy_sum<T, F>(count: usize, get: &F) -> T
where
    T: Copy + Default + std::ops::Add<Output = T>,
    F: Fn(usize) -> T,
{
    let mut total = T::default();
    let mut start = 0;
    while start < count {
        let chunk = NUMPY_BUFFER_SIZE.min(count - start);
        total = total + pairwise_sum(start, chunk, get);
        start += chunk;
    }
    total
}

/// `np.sum` of a float32 array with numpy 1.26's chunked pairwise summation (float32 adds).
// numpy: np.add.reduce on float32 (numpy 1.26)
pub fn numpy_pairwise_sum_f32(values: &[f32]) -> f32 {
    numpy_sum(values.len(), &|index| values[index])
}

/// `np.sum` of a float64 array with numpy 1.26's chunked pairwise summation.
// numpy: np.add.reduce on float64 (numpy 1.26)
pub fn numpy_pairwise_sum_f64(values: &[f64]) -> f64 {
    numpy_sum(values.len(), &|index| values[index])
}

/// `np.mean` of a float32 array: the float32 pairwise sum divided by the count in float32
/// (NaN for an empty array, NaN values propagate). Only the tests use it, to check the sums
/// against numpy's means; the metrics take pandas' [`column_mean_f32`].
// numpy: numpy.core._methods._mean
#[cfg(test)]
pub fn numpy_mean_f32(values: &[f32]) -> f32 {
    // numpy divides by the count converted to the array's float type.
    numpy_pairwise_sum_f32(values) / values.len() as f32
}

/// `np.mean` of a float64 array (NaN for an empty array, NaN values propagate).
// numpy: numpy.core._methods._mean
pub fn numpy_mean_f64(values: &[f64]) -> f64 {
    numpy_pairwise_sum_f64(values) / values.len() as f64
}

/// pandas `Series.mean()` of a float32 column: NaN values skipped (the sum runs with them
/// replaced by 0), float32 sum divided by the count of non-NaN values (NaN if none).
// pandas: pandas.core.nanops.nanmean (bottleneck is not used for means)
pub fn column_mean_f32(values: &[f32]) -> f32 {
    let (sum, count) = sum_skipping_nan(values, f32::is_nan);
    sum / count as f32
}

/// pandas `Series.mean()` of a float64 column: NaN values skipped, NaN if none is left.
// pandas: pandas.core.nanops.nanmean (bottleneck is not used for means)
pub fn column_mean_f64(values: &[f64]) -> f64 {
    let (sum, count) = sum_skipping_nan(values, f64::is_nan);
    sum / count as f64
}

/// The numpy sum of `values` with the NaN values replaced by 0, and the count of the others.
// pandas: pandas.core.nanops.nanmean (_get_values with fill_value=0, then _get_counts)
fn sum_skipping_nan<T>(values: &[T], is_nan: fn(T) -> bool) -> (T, usize)
where
    T: Copy + Default + std::ops::Add<Output = T>,
{
    // The default of a float is 0.
    let sum = numpy_sum(values.len(), &|index| {
        let value = values[index];
        if is_nan(value) { T::default() } else { value }
    });
    let count = values.iter().filter(|&&value| !is_nan(value)).count();
    (sum, count)
}

/// `np.percentile(values, q)` with the default linear interpolation (NaN if a value is NaN or
/// the slice is empty).
// numpy: numpy.lib.function_base._quantile with method="linear" and _lerp
pub fn numpy_percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() || values.iter().any(|value| value.is_nan()) {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    let virtual_index = (q / 100.0) * last as f64;
    let below = virtual_index.floor().clamp(0.0, last as f64);
    let gamma = virtual_index - below;
    // `below` is a whole number within 0..=last, so the conversion is exact.
    let below_index = below as usize;
    let above_index = (below_index + 1).min(last);
    let (a, b) = (sorted[below_index], sorted[above_index]);
    let difference = b - a;
    // numpy's _lerp: interpolate from the nearer end so that gamma = 1 gives b exactly.
    if gamma >= 0.5 {
        b - difference * (1.0 - gamma)
    } else {
        a + difference * gamma
    }
}

/// `np.std(values, ddof=ddof)`: square root of the pairwise sum of squared deviations from the
/// pairwise mean, divided by `n − ddof` (NaN when `n ≤ ddof`).
// numpy: numpy.core._methods._var / _std
pub fn numpy_std(values: &[f64], ddof: usize) -> f64 {
    let mean = numpy_mean_f64(values);
    let squares = numpy_sum(values.len(), &|index| {
        let deviation = values[index] - mean;
        deviation * deviation
    });
    let divisor = values.len().saturating_sub(ddof);
    if divisor == 0 {
        return f64::NAN;
    }
    (squares / divisor as f64).sqrt()
}

/// Test inputs that a Python script reproduces, and the comparison with the floats it printed.
#[cfg(test)]
pub(crate) mod fixtures {
    // Fixture generator shared with Python (numpy 1.26.4, the version of the reference venv).
    // The expected values of the tests were printed by this script (`str()` of float32
    // scalars, `repr(float(..))` of doubles):
    //
    //   import numpy as np
    //   def draws(seed, n):
    //       s = seed; out = []
    //       for _ in range(n):
    //           s = (s * 6364136223846793005 + 1442695040888963407) % 2**64
    //           out.append(s >> 40)
    //       return np.array(out, dtype=np.float32)
    //   def unit(seed, n): return draws(seed, n) / np.float32(16777216)
    //   def signed(seed, n): return draws(seed, n) / np.float32(8388608) - np.float32(1)
    //   # sums:   a = unit(seed, n) * np.float32(3); str(np.sum(a)), str(np.mean(a))
    //   # f64:    a = unit(n + 1000, n).astype(np.float64) * 0.1; repr(float(np.sum(a)))
    //   # recon:  v = (signed or unit)(seed, 2 * n); x, y = v[:n], v[n:]
    //   #         mae = np.mean(np.abs(x - y)); rmse = np.sqrt(np.mean(np.square(x - y)))
    //   #         psnr = 10 * np.log10(R ** 2 / np.mean((x - y) ** 2, dtype=np.float64))

    /// 24-bit draws of the 64-bit LCG above, as float32.
    fn draws(seed: u64, count: usize) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f32
            })
            .collect()
    }

    /// Uniform float32 values in [0, 1).
    pub(crate) fn unit(seed: u64, count: usize) -> Vec<f32> {
        draws(seed, count)
            .into_iter()
            .map(|value| value / 16_777_216.0)
            .collect()
    }

    /// Uniform float32 values in [−1, 1).
    pub(crate) fn signed(seed: u64, count: usize) -> Vec<f32> {
        draws(seed, count)
            .into_iter()
            .map(|value| value / 8_388_608.0 - 1.0)
            .collect()
    }

    /// Asserts that `actual` is the float Python printed as `expected`. Python prints the
    /// shortest digits that read back as the same float, so parsing them gives the exact value
    /// and the comparison is exact (`nan` matches any NaN).
    #[track_caller]
    pub(crate) fn assert_float_is<T>(actual: T, expected: &str, what: &str)
    where
        T: std::str::FromStr + Into<f64> + Copy + std::fmt::Debug,
    {
        let Ok(value) = expected.parse::<T>() else {
            panic!("{what}: `{expected}` is not a float");
        };
        // Widening to double is exact, so the comparison stays that of two `T` values.
        let (wide_actual, wide_value): (f64, f64) = (actual.into(), value.into());
        assert!(
            wide_actual == wide_value || (wide_actual.is_nan() && wide_value.is_nan()),
            "{what}: {actual:?}, Python printed {expected}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{assert_float_is, unit};
    use super::*;

    #[test]
    fn numpy_float32_sums_match_numpy_1_26() {
        let cases: &[(u64, usize, &str, &str)] = &[
            (0, 0, "0.0", "nan"),
            (1, 1, "1.2696273", "1.2696273"),
            (7, 7, "10.30764", "1.47252"),
            (8, 8, "12.213209", "1.5266511"),
            (9, 9, "12.238161", "1.3597957"),
            (127, 127, "199.01318", "1.5670329"),
            (128, 128, "173.78554", "1.3576995"),
            (129, 129, "182.26907", "1.4129386"),
            (1000, 1000, "1490.7983", "1.4907984"),
            (8191, 8191, "12328.932", "1.5051802"),
            (8192, 8192, "12422.545", "1.516424"),
            (8193, 8193, "12193.071", "1.4882303"),
            (10000, 10000, "15000.359", "1.5000359"),
            (16384, 16384, "24455.398", "1.4926391"),
            (20000, 20000, "30086.328", "1.5043164"),
            (50000, 50000, "75302.79", "1.5060558"),
            (100_003, 100_003, "149867.23", "1.4986274"),
            // Cases where the 8192-element chunks matter: plain pairwise summation (numpy 2.4)
            // gives 14977.531, 30129.074, 74898.61 and 150311.28.
            (10005, 10000, "14977.53", "1.497753"),
            (20014, 20000, "30129.072", "1.5064536"),
            (50010, 50000, "74898.6", "1.497972"),
            (100_004, 100_003, "150311.3", "1.5030679"),
        ];
        for &(seed, count, sum, mean) in cases {
            let values: Vec<f32> = unit(seed, count).into_iter().map(|v| v * 3.0).collect();
            assert_float_is(
                numpy_pairwise_sum_f32(&values),
                sum,
                &format!("sum of {count}"),
            );
            assert_float_is(numpy_mean_f32(&values), mean, &format!("mean of {count}"));
            assert_float_is(
                column_mean_f32(&values),
                mean,
                &format!("pandas mean of {count}"),
            );
        }
    }

    #[test]
    fn numpy_float64_sums_match_numpy_1_26() {
        let cases: &[(usize, &str)] = &[
            (0, "0.0"),
            (5, "0.3730554044246674"),
            (100, "5.354769337177276"),
            (129, "6.720523387193681"),
            // numpy 2.4 (no chunking) gives 405.8751096010208.
            (8193, "405.8751096010209"),
            (20000, "1006.0661941289902"),
            (50000, "2497.2239357173444"),
        ];
        for &(count, sum) in cases {
            let values: Vec<f64> = unit(count as u64 + 1000, count)
                .into_iter()
                .map(|v| f64::from(v) * 0.1)
                .collect();
            assert_float_is(
                numpy_pairwise_sum_f64(&values),
                sum,
                &format!("sum of {count}"),
            );
        }
        assert!(numpy_mean_f64(&[]).is_nan());
    }

    #[test]
    fn pairwise_sum_differs_from_a_plain_loop() {
        // The eight accumulators change the rounding: 1 + 8 × 2^-24 is 1 + 2^-21 with partial
        // sums, but stays 1 when added one by one left to right.
        let mut values = vec![1.0_f32];
        values.extend(std::iter::repeat_n(2.0_f32.powi(-24), 8));
        let sequential = values.iter().fold(0.0_f32, |sum, &value| sum + value);
        assert_eq!(sequential, 1.0);
        assert_eq!(numpy_pairwise_sum_f32(&values), 1.0 + 2.0_f32.powi(-21));
    }

    #[test]
    fn column_means_skip_nan_like_pandas() {
        assert_eq!(column_mean_f32(&[1.0, f32::NAN, 2.0]), 1.5);
        assert_eq!(column_mean_f64(&[f64::NAN, 4.0, 2.0]), 3.0);
        assert!(column_mean_f64(&[f64::NAN]).is_nan());
        assert!(numpy_mean_f32(&[1.0, f32::NAN]).is_nan());
    }

    #[test]
    fn percentile_and_std_match_numpy() {
        let values: Vec<f64> = unit(99, 3000).into_iter().map(f64::from).collect();
        assert_float_is(
            numpy_percentile(&values, 2.5),
            "0.033093415200710304",
            "2.5th percentile",
        );
        assert_float_is(
            numpy_percentile(&values, 97.5),
            "0.9755618020892144",
            "97.5th percentile",
        );
        assert_float_is(numpy_std(&values, 1), "0.2887713278461503", "std");

        let small = [4.0, 2.0, 1.0, 3.0];
        assert_float_is(numpy_percentile(&small, 2.5), "1.075", "small 2.5");
        assert_float_is(numpy_percentile(&small, 97.5), "3.925", "small 97.5");
        assert_float_is(numpy_std(&small, 1), "1.2909944487358056", "small std");

        let mixed = [0.3, -1.7, 2.9, 0.1, 5.5, 0.2, 0.2];
        assert_float_is(numpy_percentile(&mixed, 2.5), "-1.43", "mixed 2.5");
        assert_float_is(
            numpy_percentile(&mixed, 97.5),
            "5.109999999999999",
            "mixed 97.5",
        );
        assert_float_is(numpy_percentile(&mixed, 50.0), "0.2", "mixed median");
        assert_float_is(numpy_std(&mixed, 1), "2.369749836103863", "mixed std 1");
        assert_float_is(numpy_std(&mixed, 0), "2.1939620296976656", "mixed std 0");

        assert_eq!(numpy_percentile(&[7.0], 2.5), 7.0);
        assert_eq!(numpy_percentile(&small, 0.0), 1.0);
        assert_eq!(numpy_percentile(&small, 100.0), 4.0);
        assert!(numpy_percentile(&[], 50.0).is_nan());
        assert!(numpy_percentile(&[1.0, f64::NAN], 50.0).is_nan());
        assert!(numpy_std(&[1.0], 1).is_nan());
    }
}
