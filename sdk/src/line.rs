//! Building the sentences verdicts carry (reasons, signal details) without
//! `format!`.
//!
//! A profile of the reference policies put most of a native
//! `confidence-gate` evaluation in `core::fmt`: the `Arguments` machinery,
//! padding, and exact float formatting for every `{:.2}`. In the sandbox
//! each of those instructions also pays for fuel. [`Line`] appends the
//! pieces directly, and writes fixed-precision decimals with integer
//! arithmetic whenever that is provably the answer `format!` gives; in the
//! rare case it cannot tell (a value within a rounding error of a tie) it
//! asks `core::fmt`. The text is therefore byte-for-byte what `format!`
//! would have written, which is what keeps recorded decisions identical.
//!
//! ```
//! use handoff_sdk::Line;
//!
//! let reason: String = Line::new()
//!     .text("Agent confidence ")
//!     .fixed(0.8249, 2)
//!     .text(" is within policy.")
//!     .into();
//! assert_eq!(reason, format!("Agent confidence {:.2} is within policy.", 0.8249));
//! ```

use std::fmt::{Display, Write};

use crate::Money;

/// The most decimals [`Line::fixed`] writes without `core::fmt`: ten to
/// this power is exact in an `f64`.
const FAST_DECIMALS: usize = 9;

/// A sentence being built, appended to in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Line(String);

impl Line {
    /// An empty line with room for a typical reason: growing it would
    /// copy it.
    pub fn new() -> Self {
        Line(String::with_capacity(128))
    }

    /// Appends text as it is.
    pub fn text(mut self, text: &str) -> Self {
        self.0.push_str(text);
        self
    }

    /// Appends `value` with `decimals` digits after the point: exactly
    /// what `format!("{value:.decimals$}")` writes.
    pub fn fixed(mut self, value: f64, decimals: usize) -> Self {
        push_fixed(&mut self.0, value, decimals);
        self
    }

    /// Appends an unsigned integer in decimal.
    pub fn int(mut self, value: u64) -> Self {
        push_int(&mut self.0, value);
        self
    }

    /// Appends an amount as [`crate::money::format_money`] writes it.
    pub fn money(mut self, amount: &Money) -> Self {
        push_money(&mut self.0, amount);
        self
    }

    /// Appends anything else through its `Display`, for the rare piece
    /// with no fast form (a float's shortest representation, say).
    pub fn display(mut self, value: impl Display) -> Self {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{value}");
        self
    }
}

impl From<Line> for String {
    fn from(line: Line) -> String {
        line.0
    }
}

/// Appends `value` with `decimals` digits after the point, as
/// `format!("{value:.decimals$}")` does: rounded to nearest from the
/// value's exact binary expansion, ties to even.
pub fn push_fixed(out: &mut String, value: f64, decimals: usize) {
    let Some(rounded) = rounded_scaled(value, decimals) else {
        let _ = write!(out, "{value:.decimals$}");
        return;
    };
    // At most 16 integer digits (below 2^52), a point, nine decimals.
    let mut digits = [b'0'; 32];
    let mut start = digits.len();
    let mut rest = rounded;
    for place in 0.. {
        if place == decimals && decimals > 0 {
            start -= 1;
            digits[start] = b'.';
        }
        if place > decimals && rest == 0 {
            break;
        }
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    push_ascii(out, &digits[start..]);
}

/// `value × 10^decimals` rounded to an integer, when the multiplication's
/// rounding error provably cannot change which integer is nearest: `None`
/// for negative, non-finite or huge values, too many decimals, and values
/// within that error of a tie, which `core::fmt` then writes exactly.
fn rounded_scaled(value: f64, decimals: usize) -> Option<u64> {
    if decimals > FAST_DECIMALS || !value.is_finite() || value.is_sign_negative() {
        return None;
    }
    // Exact: every power of ten up to 10^22 is an f64.
    let scaled = value * 10f64.powi(decimals as i32);
    if scaled >= (1u64 << 52) as f64 {
        return None;
    }
    let whole = scaled.floor();
    // Exact below 2^52. The product is within half an ulp of the true
    // scaled value; an ulp is at most scaled × 2^-52, so anything more than
    // scaled × 2^-50 away from the tie rounds the same way for both.
    let fraction = scaled - whole;
    let margin = scaled * f64::EPSILON * 4.0;
    if (fraction - 0.5).abs() <= margin {
        return None;
    }
    let rounded = whole as u64 + u64::from(fraction > 0.5);
    Some(rounded)
}

/// Appends an unsigned integer in decimal.
pub fn push_int(out: &mut String, value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    push_ascii(out, &digits[start..]);
}

/// Appends digits (and a point) written into a buffer: one copy, and a
/// check that is always true.
fn push_ascii(out: &mut String, ascii: &[u8]) {
    if let Ok(text) = std::str::from_utf8(ascii) {
        out.push_str(text);
    }
}

/// Appends minor units for people: `125000` USD is `1250.00 USD`.
pub fn push_money(out: &mut String, amount: &Money) {
    if amount.minor < 0 {
        out.push('-');
    }
    let value = amount.minor.unsigned_abs();
    push_int(out, value / 100);
    let cents = (value % 100) as u8;
    push_ascii(out, &[b'.', b'0' + cents / 10, b'0' + cents % 10, b' ']);
    out.push_str(&amount.currency);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(value: f64, decimals: usize) -> String {
        let mut out = String::new();
        push_fixed(&mut out, value, decimals);
        out
    }

    /// A small deterministic generator: the test needs many values, not
    /// randomness.
    fn values() -> impl Iterator<Item = f64> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
        .take(200_000)
        .flat_map(|bits| {
            let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
            [
                unit,
                unit * 100.0,
                unit * 1e6,
                f64::from_bits(bits),
                // Values on and next to ties at two decimals.
                ((bits % 100_000) as f64 + 0.5) / 100.0,
                ((bits % 1000) as f64) / 1000.0 + 0.005,
            ]
        })
    }

    #[test]
    fn writes_what_format_writes() {
        let mut fast = 0;
        let mut checked = 0;
        for value in values() {
            for decimals in [0, 1, 2, 3, 9] {
                assert_eq!(
                    fixed(value, decimals),
                    format!("{value:.decimals$}"),
                    "{value:e} at {decimals} decimals"
                );
                checked += 1;
                fast += usize::from(rounded_scaled(value, decimals).is_some());
            }
        }
        // The fast path is the common one, or it would save nothing.
        assert!(
            fast * 10 > checked * 6,
            "{fast} of {checked} on the fast path"
        );
    }

    #[test]
    fn ties_signs_and_specials_are_written_by_core() {
        for (value, decimals) in [
            (0.125, 2),
            (0.375, 2),
            (2.5, 0),
            (3.5, 0),
            (-0.0, 2),
            (-0.001, 2),
            (-1.25, 1),
            (f64::NAN, 2),
            (f64::INFINITY, 2),
            (f64::NEG_INFINITY, 1),
            (1e300, 2),
            (4503599627370497.0, 0),
            (0.1, 12),
            (f64::MIN_POSITIVE, 2),
        ] {
            assert_eq!(fixed(value, decimals), format!("{value:.decimals$}"));
        }
        assert_eq!(rounded_scaled(0.125, 2), None);
        assert_eq!(rounded_scaled(-1.0, 2), None);
    }

    #[test]
    fn integers_and_money() {
        for value in [0, 7, 10, 99, 100, 12_345, u64::MAX] {
            let mut out = String::new();
            push_int(&mut out, value);
            assert_eq!(out, value.to_string());
        }
        for minor in [0, 5, -5, 125_000, -125_099, i64::MIN, i64::MAX] {
            let amount = Money {
                minor,
                currency: "USD".into(),
            };
            let value = minor.unsigned_abs();
            let sign = if minor < 0 { "-" } else { "" };
            let expected = format!("{sign}{}.{:02} USD", value / 100, value % 100);
            assert_eq!(String::from(Line::new().money(&amount)), expected);
        }
    }

    #[test]
    fn a_line_appends_in_order() {
        let line: String = Line::new()
            .text("a ")
            .int(3)
            .text(" b ")
            .fixed(0.5, 1)
            .text(" c ")
            .display(1.5f64)
            .into();
        assert_eq!(line, "a 3 b 0.5 c 1.5");
    }
}
