//! `svd` and `singular_values` of arbitrary f32/f64 matrices with the
//! backends of `Backend::all()`.
//!
//! Ok ⇒ σ has k = min(n, m) entries, finite, ≥ 0, non-increasing; U (n×k)
//! and Vᵀ (k×m) finite. For Auto and Jacobi also, on the scale of max|a|:
//! ‖A − UΣVᵀ‖_F ≤ 64·max(n, m)·ε·‖A‖_F, ‖UᵀU − I‖_F ≤ 64·max(n, m)·ε,
//! ‖VᵀV − I‖_F ≤ 64·max(n, m)·ε, and values-only σ agree with the σ of the
//! full SVD to 64·max(n, m)·ε·σ₁.
#![no_main]

use attention_svd::svd::{singular_values, svd, Backend, Svd};
use attention_svd::Error;
use fuzz_common::*;
use nalgebra::DMatrix;

fuzz_both_precisions!(run);

fn check_sigma<T: FuzzFloat>(s: &[T], k: usize, what: &str, ctx: &dyn Fn() -> String) {
    ensure!(s.len() == k, ctx, "{what}: {} singular values, expected {k}", s.len());
    for (i, &x) in s.iter().enumerate() {
        ensure!(x.finite() && x >= T::zero(), ctx, "{what}: σ[{i}] = {x:?} not finite ≥ 0: {s:?}");
        ensure!(i == 0 || x <= s[i - 1], ctx, "{what}: σ not sorted at {i}: {s:?}");
    }
}

/// The spacing of subnormal numbers, MIN_POSITIVE·ε (2⁻¹⁴⁹ for f32, 2⁻¹⁰⁷⁴ for f64).
fn ulp_floor<T: FuzzFloat>() -> T {
    T::MIN_POSITIVE * T::EPSILON
}

fn run<T: FuzzFloat>(u: &mut Unstructured) {
    let (n, m) = (dim(u), dim(u));
    let a = matrix::<T>(u, n, m);
    let ctx = || format!("let a = {};", matrix_literal(&a));
    if verbose() {
        eprintln!("{}", ctx());
    }
    let k = n.min(m);
    let big = T::from_count(n.max(m));
    let tol = T::lit(64.0) * big * T::EPSILON;
    for &backend in Backend::all() {
        let name = backend.name();
        // Jacobi is O(sweeps·n·m·k); shapes are ≤ 40 by construction.
        debug_assert!(n <= 40 && m <= 40);
        // Only Auto and Jacobi promise accurate factors; nalgebra and faer
        // promise the gate's guarantees (finite, sorted, ≥ 0).
        let validated = matches!(backend, Backend::Auto | Backend::Jacobi(_));
        let full: Result<Svd<T>, Error> = svd(&a, backend);
        if let Ok(f) = &full {
            let s = f.singular_values();
            check_sigma(s, k, &format!("svd({name}) σ"), &ctx);
            ensure!(f.u().shape() == (n, k), ctx, "svd({name}): U is {:?}", f.u().shape());
            ensure!(f.v_t().shape() == (k, m), ctx, "svd({name}): Vᵀ is {:?}", f.v_t().shape());
            ensure!(f.u().iter().all(|x| x.finite()), ctx, "svd({name}): U not finite");
            ensure!(f.v_t().iter().all(|x| x.finite()), ctx, "svd({name}): Vᵀ not finite");
            if validated {
                let amax = a.amax();
                let scaled = if amax > T::zero() { &a / amax } else { a.clone() };
                let mut us = f.u().clone();
                for (j, &sj) in s.iter().enumerate() {
                    let f = if amax > T::zero() { sj / amax } else { sj };
                    us.column_mut(j).scale_mut(f);
                }
                let res = (&scaled - us * f.v_t()).norm();
                let anorm = scaled.norm();
                // σ in the subnormal range cannot be closer than half an ulp
                // there (MIN_POSITIVE·ε/2): allow that much per singular value.
                let floor = if amax > T::zero() { T::from_count(k) * ulp_floor::<T>() / amax } else { T::zero() };
                ensure!(
                    res <= tol * anorm + floor,
                    ctx,
                    "svd({name}): ‖A − UΣVᵀ‖_F/max|a| = {res:?} > {tol:?}·‖A‖_F/max|a| = {:?} (σ = {s:?})",
                    tol * anorm
                );
                let eye = DMatrix::<T>::identity(k, k);
                let ou = (f.u().tr_mul(f.u()) - &eye).norm();
                let ov = (f.v_t() * f.v_t().transpose() - &eye).norm();
                ensure!(ou <= tol, ctx, "svd({name}): ‖UᵀU − I‖_F = {ou:?} > {tol:?}");
                ensure!(ov <= tol, ctx, "svd({name}): ‖VᵀV − I‖_F = {ov:?} > {tol:?}");
            }
        }
        if let Ok(s) = singular_values(&a, backend) {
            check_sigma(&s, k, &format!("singular_values({name})"), &ctx);
            if let (true, Ok(f)) = (validated, &full) {
                let sv = f.singular_values();
                let s1 = sv.first().copied().unwrap_or(T::zero());
                for (i, (&x, &y)) in s.iter().zip(sv).enumerate() {
                    ensure!(
                        (x - y).abs() <= tol * s1 + T::lit(2.0) * ulp_floor::<T>(),
                        ctx,
                        "{name}: values-only σ[{i}] = {x:?} vs with-vectors σ[{i}] = {y:?} (σ₁ = {s1:?}): {s:?} vs {sv:?}"
                    );
                }
            }
        }
    }
}
