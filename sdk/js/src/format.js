// Numbers in reasons, written the way the Rust SDK writes them, so that a
// verdict's text is the same whichever language the policy is in.

/**
 * `value` the way Rust's `{}` shows a float: `8`, `0.1`, never an exponent.
 * @param {number} value
 * @returns {string}
 */
export function display(value) {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  if (Object.is(value, -0)) return '-0';
  const text = String(value);
  return text.includes('e') ? expand(text) : text;
}

/** `1e+21` → `1000000000000000000000`, `1.5e-7` → `0.00000015`. */
function expand(text) {
  const [mantissa, exponentText] = text.split('e');
  const exponent = Number(exponentText);
  const negative = mantissa.startsWith('-');
  const [whole, fraction = ''] = mantissa.replace('-', '').split('.');
  const digits = whole + fraction;
  const point = whole.length + exponent;
  let out;
  if (point <= 0) out = '0.' + '0'.repeat(-point) + digits;
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length);
  else out = digits.slice(0, point) + '.' + digits.slice(point);
  return (negative ? '-' : '') + out;
}

/**
 * `value` with `digits` decimals, the way Rust's `{:.N}` shows it. Unlike
 * `toFixed`, an exact tie rounds to even (`0.125` → `0.12`), as Rust and
 * Python do.
 * @param {number} value
 * @param {number} digits
 * @returns {string}
 */
export function fixed(value, digits) {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  const negative = value < 0 || Object.is(value, -0);
  const magnitude = Math.abs(value);
  let text;
  if (magnitude >= 1e21) {
    // toFixed switches to an exponent here; such a float is an integer.
    text = BigInt(magnitude).toString() + (digits > 0 ? '.' + '0'.repeat(digits) : '');
  } else {
    text = magnitude.toFixed(digits);
    // toFixed rounds an exact tie up; Rust rounds it to even. Thirty more
    // digits tell a tie from a float merely close to one.
    const exact = magnitude.toFixed(Math.min(100, digits + 30));
    const point = exact.indexOf('.');
    if (/^50*$/.test(exact.slice(point + 1 + digits))) {
      const down = digits === 0 ? exact.slice(0, point) : exact.slice(0, point + 1 + digits);
      if (Number(down.slice(-1)) % 2 === 0) text = down;
    }
  }
  return (negative ? '-' : '') + text;
}
