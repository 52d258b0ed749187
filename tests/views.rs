//! Inputs as views: strided nalgebra views, row-major slices, stack heads
//! and (feature `ndarray`) ndarray arrays give the same results as the
//! owned column-major matrix they show, with and without copying.

use attention_svd::attention::{Mask, Scale, scaled_dot_product, softmax_rows};
use attention_svd::metrics::{SummaryParams, summarize};
use attention_svd::svd::{Backend, singular_values, svd};
use attention_svd::{AsMatrixRef, MatrixRef, Stack, StackView};
use nalgebra::{DMatrix, Dyn, MatrixView};

fn sample(n: usize, m: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, m, |i, j| ((i * m + j) as f64 * 0.37).sin().abs() + 0.1)
}

/// Every backend gives identical singular values for a matrix and for any
/// view of the same entries: the views are read, not reinterpreted.
#[test]
fn svd_of_views_equals_svd_of_copies() {
    let big = sample(9, 12);
    let block = big.view((1, 2), (6, 7));
    let owned = block.clone_owned();
    for &backend in Backend::all() {
        let from_view = singular_values(&block, backend).unwrap();
        let from_owned = singular_values(&owned, backend).unwrap();
        assert_eq!(
            from_view.as_slice(),
            from_owned.as_slice(),
            "{}",
            backend.name()
        );
        let f = svd(&big.columns(3, 5), backend).unwrap();
        let g = svd(&big.columns(3, 5).clone_owned(), backend).unwrap();
        assert_eq!(f.singular_values(), g.singular_values());
    }
}

#[test]
fn row_major_slices_and_general_strides() {
    let a = sample(5, 4);
    // The same matrix stored row by row (numpy's C order), without a copy.
    let rows: Vec<f64> = (0..5)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| a[(i, j)])
        .collect();
    let r = MatrixRef::from_row_major_slice(&rows, 5, 4).unwrap();
    assert_eq!(r.to_dmatrix(), a);
    let s1 = singular_values(&r, Backend::Auto).unwrap();
    let s2 = singular_values(&a, Backend::Auto).unwrap();
    for (x, y) in s1.iter().zip(s2.iter()) {
        assert!((x - y).abs() <= 16.0 * f64::EPSILON * s2[0]);
    }
    // Every second entry of a buffer, as a 3×2 matrix with strides (2, 6).
    let buf: Vec<f64> = (0..12).map(f64::from).collect();
    let strided = MatrixRef::from_slice_with_strides(&buf, (3, 2), (2, 6)).unwrap();
    assert_eq!(strided.get(2, 1), 10.0);
    assert!(MatrixRef::from_slice_with_strides(&buf, (3, 3), (2, 6)).is_none());
    // A nalgebra view with a row stride: the transpose of a column-major buffer.
    let t =
        MatrixView::from_slice_with_strides_generic(a.as_slice(), Dyn(4), Dyn(5), Dyn(5), Dyn(1));
    assert_eq!(t.as_matrix_ref().to_dmatrix(), a.transpose());
}

#[test]
fn attention_on_views_equals_attention_on_copies() {
    let qk = DMatrix::from_fn(10, 12, |i, j| ((i * 12 + j) as f64 * 0.21).cos());
    let (q, k) = (qk.columns(0, 6), qk.columns(6, 6));
    for mask in [Mask::none(), Mask::causal()] {
        let a = scaled_dot_product(&q, &k, &mask, Scale::default()).unwrap();
        let b = scaled_dot_product(&q.clone_owned(), &k.clone_owned(), &mask, Scale::default())
            .unwrap();
        assert_eq!(a, b);
    }
    let logits = sample(8, 8);
    let sub = logits.view((2, 0), (6, 8));
    assert_eq!(
        softmax_rows(&sub, &Mask::causal()).unwrap(),
        softmax_rows(&sub.clone_owned(), &Mask::causal()).unwrap()
    );
}

#[test]
fn stack_heads_are_borrowed_views() {
    let mats: Vec<DMatrix<f64>> = (0..6).map(|t| sample(4, 5) * (t + 1) as f64).collect();
    let s = Stack::from_matrices(2, 3, &mats).unwrap();
    for (t, m) in mats.iter().enumerate() {
        let head = s.head(t / 3, t % 3).unwrap();
        assert_eq!(head.to_dmatrix(), *m);
        // The head is read in place (row-major strides) by the SVD.
        assert_eq!(
            summarize(&head, SummaryParams::default()).unwrap(),
            summarize(m, SummaryParams::default()).unwrap()
        );
    }
    // A batch entry of a larger C-order buffer, and its top-left crop.
    let data: Vec<f64> = (0..2 * 6 * 20).map(|x| x as f64).collect();
    let v = StackView::from_slice(&data[120..], [2, 3, 4, 5], [60, 20, 5, 1]).unwrap();
    assert_eq!(
        v.head(1, 2).unwrap().get(3, 4),
        (120 + 60 + 40 + 15 + 4) as f64
    );
    let c = v.crop(2, 3).unwrap();
    assert_eq!(c.shape(), [2, 3, 2, 3]);
    assert!(StackView::from_slice(&data[..10], [2, 3, 4, 5], [60, 20, 5, 1]).is_err());
    assert!(v.crop(5, 1).is_err());
}

#[cfg(feature = "ndarray")]
mod ndarray_interop {
    use super::*;
    use attention_svd::analysis::{AnalysisParams, analyze};
    use ndarray::{Array2, Array4, ShapeBuilder, s};

    #[test]
    fn arrays_of_every_layout_are_matrices() {
        let a = sample(6, 5);
        let c = Array2::from_shape_fn((6, 5), |(i, j)| a[(i, j)]);
        let f = Array2::from_shape_fn((6, 5).f(), |(i, j)| a[(i, j)]);
        let big = Array2::from_shape_fn(
            (8, 9),
            |(i, j)| if i < 6 && j < 5 { a[(i, j)] } else { 0.0 },
        );
        let sliced = big.slice(s![..6, ..5]);
        let flipped_src = Array2::from_shape_fn((6, 5), |(i, j)| a[(5 - i, j)]);
        let flipped = flipped_src.slice(s![..;-1, ..]);
        let reference = singular_values(&a, Backend::jacobi()).unwrap();
        for (name, m) in [
            ("C order", c.as_matrix_ref().to_dmatrix()),
            ("F order", f.as_matrix_ref().to_dmatrix()),
            ("sliced", sliced.as_matrix_ref().to_dmatrix()),
            ("negative stride", flipped.as_matrix_ref().to_dmatrix()),
        ] {
            assert_eq!(m, a, "{name}");
        }
        assert_eq!(
            singular_values(&c, Backend::jacobi()).unwrap().as_slice(),
            reference.as_slice()
        );
        assert_eq!(
            singular_values(&flipped, Backend::jacobi())
                .unwrap()
                .as_slice(),
            reference.as_slice()
        );
    }

    #[test]
    fn an_array4_is_analysed_in_one_call() {
        let mats: Vec<DMatrix<f32>> = (0..6)
            .map(|t| {
                let q = DMatrix::from_fn(7, 3, |i, j| ((t * 21 + i * 3 + j) as f32 * 0.7).sin());
                scaled_dot_product(&q, &q, &Mask::causal(), Scale::default()).unwrap()
            })
            .collect();
        let stack = Stack::from_matrices(2, 3, &mats).unwrap();
        let array = Array4::from_shape_fn((2, 3, 7, 7), |(l, h, i, j)| mats[l * 3 + h][(i, j)]);
        let from_array = analyze(&array, AnalysisParams::default()).unwrap();
        assert_eq!(
            from_array,
            analyze(&stack, AnalysisParams::default()).unwrap()
        );
        // A non-standard layout is read head by head all the same.
        let permuted = array.clone().permuted_axes([1, 0, 2, 3]);
        let swapped = permuted.permuted_axes([1, 0, 2, 3]);
        assert_eq!(
            analyze(&swapped, AnalysisParams::default()).unwrap(),
            from_array
        );
        assert_eq!(Stack::from_ndarray(array).unwrap(), stack);
        assert_eq!(Stack::from_ndarray(swapped.to_owned()).unwrap(), stack);
    }
}
