//! The crate's one seeded random source: SplitMix64 (Steele, Lea & Flood
//! 2014) for uniform 64-bit words, and Box–Muller for standard normal
//! numbers, both outputs of each pair used. Small, portable and
//! reproducible across platforms; used for `Auto`'s probes and the
//! randomized SVD's sketch.

use crate::Scalar;

/// SplitMix64 with Box–Muller.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// `len` independent standard normal numbers.
    pub(crate) fn normals<T: Scalar>(&mut self, len: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(len + 1);
        while out.len() < len {
            let (u1, u2) = (self.uniform(), self.uniform());
            let (r, phi) = ((-2.0 * u1.ln()).sqrt(), std::f64::consts::TAU * u2);
            out.push(T::lit(r * phi.cos()));
            out.push(T::lit(r * phi.sin()));
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn normals_are_reproducible_and_standard() {
        let a: Vec<f64> = SplitMix64::new(7).normals(20_001);
        let b: Vec<f64> = SplitMix64::new(7).normals(20_001);
        assert_eq!(a, b);
        let n = a.len() as f64;
        let mean = a.iter().sum::<f64>() / n;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        // Standard errors: 1/√n ≈ 0.007 for the mean, √(2/n) ≈ 0.01 for the variance.
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
