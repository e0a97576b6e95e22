//! Python `repr` of floating-point numbers, as pandas writes them in TSV files, and of strings
//! and lists or sets of strings, as ClinicaDL's messages and `description.log` print them.
//!
//! This module owns the text of one float: Python's `repr(float)` for doubles, numpy's float32
//! repr for float32 values, and the pandas `to_csv` rule that writes NaN as an empty field
//! (docs/ARCHITECTURE.md, "description.log and number formatting"). The shortest round-trip digits
//! come from Rust's own formatting (`{:e}`, shortest digits for the value's own width); this module
//! breaks exact ties between two shortest candidates towards the even digit, as Python and numpy
//! do, and lays the digits out. Field quoting, separators and line endings belong to the writers.

/// Python `repr` of a double: shortest round-trip digits, fixed notation for decimal exponents
/// −4 ≤ e < 16 (`69.0`, `0.0001`), scientific otherwise (`1e-05`, `1.5e+16`).
// Python: float_repr (Python/pystrtod.c, `format_float_short` with mode 'r').
pub fn repr_f64(x: f64) -> String {
    if let Some(special) = special_value(x.is_nan(), x.is_infinite(), x.is_sign_negative()) {
        return special;
    }
    let mut digits = ShortestDigits::parse(&format!("{x:e}"));
    digits.break_tie_to_even(x, |text| text.parse::<f64>().ok() == Some(x));
    // Python decides on the exponent of the shortest digits: fixed when -4 <= e < 16.
    let fixed = (-4..16).contains(&digits.exponent);
    digits.layout(fixed)
}

/// numpy float32 repr: shortest digits that round-trip *as float32*, fixed notation when
/// 1e-4 ≤ |x| < 1e16 (or x is zero), scientific otherwise (`1e-04` for `float32(0.0001)`).
// numpy: floattype_repr_either (numpy/core/src/multiarray/scalartypes.c.src), Dragon4 unique mode.
pub fn repr_f32(x: f32) -> String {
    if let Some(special) = special_value(x.is_nan(), x.is_infinite(), x.is_sign_negative()) {
        return special;
    }
    let mut digits = ShortestDigits::parse(&format!("{x:e}"));
    digits.break_tie_to_even(f64::from(x), |text| text.parse::<f32>().ok() == Some(x));
    // numpy decides on the value itself, not on its shortest digits: float32(0.0001) lies
    // below 1e-4 and is printed `1e-04`. No float32 lies between the double 1e-4 and numpy's
    // long double 1e-4L, so the double comparison is exact for this purpose.
    let magnitude = f64::from(x.abs());
    let fixed = x == 0.0 || (1e-4..1e16).contains(&magnitude);
    digits.layout(fixed)
}

/// A double as pandas `to_csv` writes it: NaN as an empty field, otherwise [`repr_f64`].
// pandas: DataFrame.to_csv with the default na_rep="".
pub fn tsv_f64(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        repr_f64(x)
    }
}

/// A float32 as pandas `to_csv` writes it: NaN as an empty field, otherwise [`repr_f32`].
// pandas: DataFrame.to_csv with the default na_rep="".
pub fn tsv_f32(x: f32) -> String {
    if x.is_nan() {
        String::new()
    } else {
        repr_f32(x)
    }
}

/// `nan`, `inf`, `-inf` for the non-finite values, `None` for finite ones.
fn special_value(is_nan: bool, is_infinite: bool, is_negative: bool) -> Option<String> {
    if is_nan {
        Some("nan".to_owned())
    } else if is_infinite {
        Some(if is_negative { "-inf" } else { "inf" }.to_owned())
    } else {
        None
    }
}

/// The shortest round-trip decimal digits of a finite float: value = 0.d1d2… × 10^(exponent+1).
struct ShortestDigits {
    negative: bool,
    /// Significant digits without a decimal point, no leading zero (except for zero itself).
    digits: String,
    /// Decimal exponent of the first digit (scientific notation exponent).
    exponent: i32,
}

impl ShortestDigits {
    /// Parses Rust's `{:e}` output (`-1.2345e-5`, `6.9e1`, `0e0`).
    fn parse(scientific: &str) -> Self {
        let (negative, unsigned) = match scientific.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, scientific),
        };
        let (mantissa, exponent) = unsigned.split_once('e').unwrap_or((unsigned, "0"));
        let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            // Not produced by `{:e}`; keeps `layout` total.
            digits.push('0');
        }
        // `{:e}` always writes a valid integer exponent; 0 is a harmless fallback.
        let exponent = exponent.parse::<i32>().unwrap_or(0);
        Self {
            negative,
            digits,
            exponent,
        }
    }

    /// When the value lies exactly halfway between two shortest candidates, picks the one whose
    /// last digit is even, as Python's `dtoa` and numpy's Dragon4 do (Rust rounds such ties up:
    /// float32 512313.625 is `512313.63` in Rust but `512313.62` in numpy).
    ///
    /// `exact` is the value widened to double (exact for float32); `round_trips` tells whether a
    /// decimal string parses back to the original value in its own width.
    fn break_tie_to_even(&mut self, exact: f64, round_trips: impl Fn(&str) -> bool) {
        let Some(last) = self.digits.bytes().last().map(|byte| byte - b'0') else {
            return;
        };
        if last % 2 == 0 {
            return;
        }
        // Ties are only possible when the neighbouring candidate also round-trips; the
        // other neighbour would need a carry (last digit 9), which gives a shorter string that
        // the shortest-digit search would already have chosen.
        for neighbour in [last - 1, last + 1] {
            if neighbour > 9 {
                continue;
            }
            let mut candidate = self.digits.clone();
            candidate.pop();
            candidate.push(char::from(b'0' + neighbour));
            let text = format!(
                "{}{}e{}",
                if self.negative { "-" } else { "" },
                point_after_first(&candidate),
                self.exponent
            );
            if !round_trips(&text) {
                continue;
            }
            // Exact tie: the value's exact decimal expansion is the common prefix followed by 5.
            let lower = last.min(neighbour);
            let mut midpoint = self.digits.clone();
            midpoint.pop();
            midpoint.push(char::from(b'0' + lower));
            midpoint.push('5');
            let expansion = ShortestDigits::parse(&format!("{:.1100e}", exact.abs()));
            let exact_digits = expansion.digits.trim_end_matches('0');
            if expansion.exponent == self.exponent && exact_digits == midpoint {
                self.digits = candidate;
                return;
            }
        }
    }

    /// Lays the digits out in fixed (`123.45`, `0.001`, `100.0`) or scientific (`1.5e+16`,
    /// `1e-05`) notation, Python's presentation.
    fn layout(&self, fixed: bool) -> String {
        let mut text = String::with_capacity(self.digits.len() + 8);
        if self.negative {
            text.push('-');
        }
        let count = self.digits.len();
        if fixed {
            // Number of digits before the decimal point.
            let point = self.exponent + 1;
            if point <= 0 {
                text.push_str("0.");
                text.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
                text.push_str(&self.digits);
            } else {
                let point = point.unsigned_abs() as usize;
                if point >= count {
                    text.push_str(&self.digits);
                    text.extend(std::iter::repeat_n('0', point - count));
                    text.push_str(".0");
                } else {
                    text.push_str(&self.digits[..point]);
                    text.push('.');
                    text.push_str(&self.digits[point..]);
                }
            }
        } else {
            text.push_str(&self.digits[..1]);
            if count > 1 {
                text.push('.');
                text.push_str(&self.digits[1..]);
            }
            text.push('e');
            text.push(if self.exponent < 0 { '-' } else { '+' });
            text.push_str(&format!("{:02}", self.exponent.unsigned_abs()));
        }
        text
    }
}

/// `12345` → `1.2345` (a mantissa for a `…e<exp>` string).
fn point_after_first(digits: &str) -> String {
    if digits.len() > 1 {
        format!("{}.{}", &digits[..1], &digits[1..])
    } else {
        digits.to_owned()
    }
}

/// Python `repr` of a string: single quotes unless the text holds one and no double quote;
/// backslashes, newlines, tabs and the chosen quote escaped.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `repr` of a list of strings: `['a', 'b']`.
pub fn repr_str_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| repr_str(s)).collect();
    format!("[{}]", inner.join(", "))
}

/// Python `repr` of a set of strings, its items in the order given: `{'a', 'b'}`.
pub fn repr_str_set(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| repr_str(s)).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_lists_and_sets_as_python_prints_them() {
        assert_eq!(super::repr_str("sub-01"), "'sub-01'");
        assert_eq!(super::repr_str("it's"), "\"it's\"");
        assert_eq!(super::repr_str("a'b\"c\\"), "'a\\'b\"c\\\\'");
        let items = ["AD".to_owned(), "C'N".to_owned()];
        assert_eq!(super::repr_str_list(&items), "['AD', \"C'N\"]");
        assert_eq!(super::repr_str_set(&items[..1]), "{'AD'}");
        assert_eq!(super::repr_str_list(&[]), "[]");
    }

    use super::*;

    #[test]
    fn repr_f64_matches_python() {
        // Expected strings produced by CPython 3.11 `repr(float)`.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (69.0, "69.0"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e-5, "1e-05"),
            (-1e-5, "-1e-05"),
            (2.5e-7, "2.5e-07"),
            (9.999999999999999e-5, "9.999999999999999e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (1e-300, "1e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (0.1 + 0.2, "0.30000000000000004"),
            (12345.678, "12345.678"),
            (1e-4 * 3.0, "0.00030000000000000003"),
            // Values of the reference TSVs (float32 widened to double).
            (f64::from(72.3f32), "72.30000305175781"),
            (f64::from(0.520_579_04_f32), "0.5205790400505066"),
            (1.4291268587112427, "1.4291268587112427"),
            (0.816496580927726, "0.816496580927726"),
            (0.16666666666666663, "0.16666666666666663"),
            (-1.8189919348474461, "-1.8189919348474461"),
            (306.5198974609375, "306.5198974609375"),
            (2.4000000000000004, "2.4000000000000004"),
            (0.0715329647064209, "0.0715329647064209"),
        ];
        for &(value, expected) in cases {
            assert_eq!(repr_f64(value), expected, "repr of {value:e}");
        }
    }

    #[test]
    fn repr_f64_non_finite() {
        assert_eq!(repr_f64(f64::NAN), "nan");
        assert_eq!(repr_f64(f64::INFINITY), "inf");
        assert_eq!(repr_f64(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn repr_f32_matches_numpy() {
        // Expected strings produced by numpy 1.26 / 2.4 `str(np.float32(x))`.
        let cases: &[(f32, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (69.0, "69.0"),
            (0.1, "0.1"),
            (0.0001, "1e-04"),
            (0.00010001, "0.00010001"),
            (1e-5, "1e-05"),
            (2.5e-7, "2.5e-07"),
            (-2.5e-7, "-2.5e-07"),
            (16777216.0, "16777216.0"),
            (1e15, "1000000000000000.0"),
            (9.999999e15, "9999999000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (f32::MAX, "3.4028235e+38"),
            (f32::MIN_POSITIVE, "1.1754944e-38"),
            (1e-45, "1e-45"),
            (1.0 / 3.0, "0.33333334"),
            (72.3, "72.3"),
            // Values of the reference reconstruction TSVs.
            (0.341_572_37, "0.34157237"),
            (0.362_722_58, "0.36272258"),
            (0.358_863_1, "0.3588631"),
            (0.182_729_51, "0.18272951"),
            (0.005_084_861, "0.005084861"),
            (0.007_167_423_6, "0.0071674236"),
            (0.162_646_8, "0.1626468"),
            (0.292_980_1, "0.2929801"),
        ];
        for &(value, expected) in cases {
            assert_eq!(repr_f32(value), expected, "repr of {value:e}");
        }
        assert_eq!(repr_f32(f32::NAN), "nan");
        assert_eq!(repr_f32(f32::NEG_INFINITY), "-inf");
    }

    #[test]
    fn ties_round_to_even_digit() {
        // Values exactly halfway between two shortest candidates (Python / numpy outputs).
        // 512313.625, exactly halfway between 512313.62 and 512313.63.
        assert_eq!(repr_f32(f32::from_bits(1_224_353_588)), "512313.62");
        assert_eq!(repr_f32(f32::from_bits(3_397_220_613)), "-4152897.2");
        assert_eq!(repr_f32(f32::from_bits(1_224_212_436)), "507902.62");
        assert_eq!(
            repr_f64(f64::from_bits(4_833_754_983_112_306_681)),
            "1474045642783742.2"
        );
        assert_eq!(
            repr_f64(f64::from_bits(4_821_812_732_852_945_444)),
            "233272849808913.12"
        );
        assert_eq!(
            repr_f64(f64::from_bits(14_040_616_563_002_897_576)),
            "-115626939319250.62"
        );
        // Odd last digits that are not ties stay as they are.
        assert_eq!(repr_f32(0.341_572_37), "0.34157237");
        assert_eq!(repr_f64(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn tsv_writes_nan_empty() {
        assert_eq!(tsv_f64(f64::NAN), "");
        assert_eq!(tsv_f32(f32::NAN), "");
        assert_eq!(tsv_f64(0.25), "0.25");
        assert_eq!(tsv_f32(0.25), "0.25");
        assert_eq!(tsv_f64(f64::INFINITY), "inf");
    }
}
