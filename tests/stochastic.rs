//! Stochasticity checks: which row or entry fails, by how much, and errors.

use attention_svd::Error;
use attention_svd::stochastic::StochasticParams;
use attention_svd::stochastic::{
    Stochasticity, Violation, check_stochastic, default_tolerance, max_column_sum_deviation,
    max_row_sum_deviation, violations,
};
use nalgebra::{DMatrix, dmatrix};

#[test]
fn passes_within_default_tolerance() {
    let a = dmatrix![0.1_f64, 0.2, 0.7; 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0];
    assert_eq!(check_stochastic(&a, StochasticParams::row()), Ok(()));
    let eps_off = dmatrix![0.5_f32, 0.5 + 2.0 * f32::EPSILON];
    assert_eq!(check_stochastic(&eps_off, StochasticParams::row()), Ok(()));
    assert_eq!(default_tolerance::<f32>(0), 4.0 * f32::EPSILON);
}

#[test]
fn reports_the_worst_violation() {
    // Row 1 is off by 0.1, row 2 by 0.3: row 2 is reported.
    let a = dmatrix![0.5_f64, 0.5; 0.6, 0.5; 0.2, 0.5];
    match check_stochastic(&a, StochasticParams::row()) {
        Err(Error::NotStochastic {
            violation:
                Violation::RowSum {
                    row,
                    sum,
                    deviation,
                },
            tolerance,
        }) => {
            assert_eq!(row, 2);
            assert!((sum - 0.7).abs() < 1e-15 && (deviation + 0.3).abs() < 1e-15);
            assert_eq!(tolerance, 8.0 * f64::EPSILON);
        }
        other => panic!("{other:?}"),
    }
    // A negative entry outranks any row-sum deviation.
    let a = dmatrix![1.5_f64, -0.5; 0.0, 0.0];
    assert!(matches!(
        check_stochastic(&a, StochasticParams::row()),
        Err(Error::NotStochastic {
            violation: Violation::Negative { row: 0, col: 1, value },
            ..
        }) if value == -0.5
    ));
    // A non-finite entry outranks everything.
    let a = dmatrix![1.5_f64, -0.5; f64::NAN, 0.0];
    let err = check_stochastic(&a, StochasticParams::row()).unwrap_err();
    assert!(matches!(
        err,
        Error::NotStochastic {
            violation: Violation::NonFinite { row: 1, col: 0 },
            ..
        }
    ));
    assert!(err.to_string().contains("(1, 0)"));
}

#[test]
fn lists_every_violation() {
    let a = dmatrix![0.5_f64, 0.6; 0.5, 0.4; -0.1, 1.1];
    let v = violations(&a, StochasticParams::default().kind(Stochasticity::Row)).unwrap();
    assert_eq!(v.len(), 3);
    assert!(matches!(v[0], Violation::Negative { row: 2, col: 0, .. }));
    assert!(matches!(v[1], Violation::RowSum { row: 0, .. }));
    assert!(matches!(v[2], Violation::RowSum { row: 1, .. }));
    let v = violations(
        &a,
        StochasticParams::default()
            .kind(Stochasticity::Column)
            .tolerance(0.05),
    )
    .unwrap();
    assert!(
        v.iter()
            .any(|x| matches!(x, Violation::ColumnSum { col: 1, .. }))
    );
    assert!(v.iter().all(|x| x.magnitude() > 0.05));
}

#[test]
fn tolerance_is_respected() {
    let a = dmatrix![0.5_f64, 0.49; -0.005, 1.0];
    assert!(check_stochastic(&a, StochasticParams::row()).is_err());
    assert_eq!(
        check_stochastic(&a, StochasticParams::row().tolerance(0.011)),
        Ok(())
    );
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            check_stochastic(&a, StochasticParams::row().tolerance(bad)),
            Err(Error::InvalidTolerance {
                name: "tolerance",
                ..
            })
        ));
    }
}

#[test]
fn column_and_doubly_stochastic() {
    let a = dmatrix![0.25_f64, 0.75; 0.75, 0.25];
    assert_eq!(check_stochastic(&a, StochasticParams::doubly()), Ok(()));
    assert_eq!(
        check_stochastic(&a.transpose(), StochasticParams::column()),
        Ok(())
    );
    let rows_only = dmatrix![0.25_f64, 0.75; 0.25, 0.75];
    assert_eq!(
        check_stochastic(&rows_only, StochasticParams::row()),
        Ok(())
    );
    assert!(matches!(
        check_stochastic(&rows_only, StochasticParams::doubly()),
        Err(Error::NotStochastic {
            violation: Violation::ColumnSum { col: 0, .. },
            ..
        })
    ));
    assert_eq!(
        check_stochastic(
            &DMatrix::<f64>::from_element(2, 3, 0.5),
            StochasticParams::default().kind(Stochasticity::Doubly)
        ),
        Err(Error::NotSquare { rows: 2, cols: 3 })
    );
}

#[test]
fn max_deviations() {
    let a = dmatrix![0.5_f64, 0.5; 0.5, 0.75];
    assert_eq!(max_row_sum_deviation(&a).unwrap(), 0.25);
    assert_eq!(max_column_sum_deviation(&a).unwrap(), 0.25);
    assert!(matches!(
        max_row_sum_deviation(&DMatrix::<f64>::zeros(0, 2)),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        max_column_sum_deviation(&dmatrix![f32::INFINITY]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        check_stochastic(&DMatrix::<f64>::zeros(3, 0), StochasticParams::row()),
        Err(Error::Empty { .. })
    ));
}

#[test]
fn compensated_sums_do_not_drift_with_length() {
    // 10⁵ entries of 1/10⁵: a naive f32 sum drifts by ~1e-3; the check's own
    // error is O(ε), so the row passes the tight default tolerance.
    let m = 100_000;
    let a = DMatrix::<f32>::from_element(1, m, 1.0 / m as f32);
    let dev = max_row_sum_deviation(&a).unwrap();
    assert!(dev <= 8.0 * f32::EPSILON, "{dev:e}");
}
