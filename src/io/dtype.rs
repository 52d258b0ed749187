//! Stored element types and their decoding to f64.

use crate::Precision;

/// Byte order of the stored values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

/// A float dtype a file may store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dtype {
    pub(crate) precision: Precision,
    pub(crate) endian: Endian,
}

impl Dtype {
    /// Bytes per value.
    pub(crate) fn size(self) -> usize {
        match self.precision {
            Precision::F16 | Precision::BF16 => 2,
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }

    /// The value stored in `b` (exactly `self.size()` bytes), widened
    /// exactly to f64.
    pub(crate) fn decode(self, b: &[u8]) -> f64 {
        let le = self.endian == Endian::Little;
        match self.precision {
            Precision::F16 => {
                let bits = if le {
                    u16::from_le_bytes([b[0], b[1]])
                } else {
                    u16::from_be_bytes([b[0], b[1]])
                };
                f16_to_f64(bits)
            }
            Precision::BF16 => {
                let bits = if le {
                    u16::from_le_bytes([b[0], b[1]])
                } else {
                    u16::from_be_bytes([b[0], b[1]])
                };
                f64::from(f32::from_bits(u32::from(bits) << 16))
            }
            Precision::F32 => {
                let a = [b[0], b[1], b[2], b[3]];
                f64::from(if le {
                    f32::from_le_bytes(a)
                } else {
                    f32::from_be_bytes(a)
                })
            }
            Precision::F64 => {
                let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                if le {
                    f64::from_le_bytes(a)
                } else {
                    f64::from_be_bytes(a)
                }
            }
        }
    }
}

/// IEEE binary16 to f64, exactly (every half value is a double).
pub(crate) fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x03ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_values_decode_exactly() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x3555), 0.333_251_953_125);
        assert!(f16_to_f64(0x7c00).is_infinite());
        assert!(f16_to_f64(0x7e00).is_nan());
        assert_eq!(f16_to_f64(0x8000), 0.0);
    }

    #[test]
    fn bfloat16_is_the_top_half_of_a_float() {
        let d = Dtype {
            precision: Precision::BF16,
            endian: Endian::Little,
        };
        assert_eq!(d.decode(&0x3f80u16.to_le_bytes()), 1.0);
        assert_eq!(d.decode(&0xc040u16.to_le_bytes()), -3.0);
    }
}
