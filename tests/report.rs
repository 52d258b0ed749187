//! Reports: shards by layer, head and prompt merge exactly into the report
//! of one run over everything; the JSON round-trips every number.

use attention_svd::analysis::{AnalysisParams, Population, analyze};
use attention_svd::attention::{Mask, Scale, scaled_dot_product};
use attention_svd::report::{ModelInfo, PromptReport, Report};
use attention_svd::{Error, Stack};
use nalgebra::DMatrix;

/// A [3, 4, n, n] stack of causal attention with a prompt-dependent seed.
fn prompt_stack(n: usize, seed: usize) -> Stack<f64> {
    let mats: Vec<DMatrix<f64>> = (0..12)
        .map(|t| {
            let q = DMatrix::from_fn(n, 4, |i, j| {
                (((seed * 131 + t) * 97 + i * 4 + j) as f64 * 0.37).sin()
            });
            scaled_dot_product(&q, &q, &Mask::causal(), Scale::default()).unwrap()
        })
        .collect();
    Stack::from_matrices(3, 4, &mats).unwrap()
}

fn report_of(prompts: Vec<(String, Stack<f64>, AnalysisParams)>) -> Report {
    let prs = prompts
        .into_iter()
        .map(|(name, s, p)| PromptReport::new(name, "test", analyze(&s, p).unwrap()))
        .collect();
    Report::new(ModelInfo::new("test model", 3, 4), prs).unwrap()
}

#[test]
fn shards_merge_into_the_whole_run() {
    let stacks: Vec<Stack<f64>> = [(8, 1), (12, 2), (16, 3)]
        .into_iter()
        .map(|(n, s)| prompt_stack(n, s))
        .collect();
    let full = report_of(
        stacks
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("p{i}"), s.clone(), AnalysisParams::default()))
            .collect(),
    );
    assert!(full.population.is_some());
    // Prompt 0 sharded by layers, prompt 1 by heads, prompt 2 whole.
    let shards = vec![
        report_of(vec![(
            "p0".into(),
            stacks[0].clone(),
            AnalysisParams::default().layers(0..1),
        )]),
        report_of(vec![(
            "p0".into(),
            stacks[0].clone(),
            AnalysisParams::default().layers(1..3),
        )]),
        report_of(vec![(
            "p1".into(),
            stacks[1].clone(),
            AnalysisParams::default().heads(0..3),
        )]),
        report_of(vec![
            (
                "p1".into(),
                stacks[1].clone(),
                AnalysisParams::default().heads(3..4),
            ),
            ("p2".into(), stacks[2].clone(), AnalysisParams::default()),
        ]),
    ];
    // A partial shard has no population of its own.
    assert!(shards[3].population.is_none());
    let merged = Report::merge(shards).unwrap();
    assert_eq!(merged, full);
}

#[test]
fn merge_rejects_conflicts_and_gaps() {
    let s = prompt_stack(8, 1);
    let a = report_of(vec![(
        "p".into(),
        s.clone(),
        AnalysisParams::default().layers(0..1),
    )]);
    // Layers 0 and 2 without 1: not a rectangle.
    let c = report_of(vec![(
        "p".into(),
        s.clone(),
        AnalysisParams::default().layers(2..3),
    )]);
    assert!(matches!(
        Report::merge(vec![a.clone(), c]),
        Err(Error::InvalidParameter { .. })
    ));
    // The same head twice with different numbers.
    let other = report_of(vec![(
        "p".into(),
        prompt_stack(8, 9),
        AnalysisParams::default().layers(0..1),
    )]);
    assert!(matches!(
        Report::merge(vec![a.clone(), other]),
        Err(Error::InvalidParameter { .. })
    ));
    // The same head twice with the same numbers is fine.
    assert_eq!(Report::merge(vec![a.clone(), a.clone()]).unwrap(), a);
    // Different models.
    let mut b = a.clone();
    b.model = ModelInfo::new("another", 3, 4);
    assert!(Report::merge(vec![a, b]).is_err());
    assert!(matches!(
        Report::merge(Vec::<Report>::new()),
        Err(Error::Empty { .. })
    ));
}

#[test]
fn json_round_trips_every_number() {
    let r = report_of(vec![
        (
            "a".into(),
            prompt_stack(8, 1),
            AnalysisParams::default().top_keys(2),
        ),
        (
            "b".into(),
            prompt_stack(10, 2),
            AnalysisParams::default().top_keys(2),
        ),
    ]);
    let text = serde_json::to_string(&r).unwrap();
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    assert!(
        r.prompts[0]
            .spectra
            .heads
            .iter()
            .all(|h| h.top_keys.len() == 2)
    );
}

#[test]
fn population_quartiles_are_over_prompts() {
    let reports: Vec<_> = (0..5)
        .map(|i| analyze(&prompt_stack(6 + 2 * i, i), AnalysisParams::default()).unwrap())
        .collect();
    let p = Population::of(&reports).unwrap();
    assert_eq!((p.prompts, p.heads.len(), p.layers.len()), (5, 12, 3));
    let h = &p.heads[5];
    let eranks: Vec<f64> = reports
        .iter()
        .map(|r| r.head(h.layer, h.head).unwrap().effective_rank)
        .collect();
    let mut sorted = eranks.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(h.effective_rank.median, sorted[2]);
    assert_eq!(
        (h.effective_rank.q1, h.effective_rank.q3),
        (sorted[1], sorted[3])
    );
    assert_eq!(p.layers[0].samples, 20);
    assert!(p.heads.iter().all(|h| h.numerical_rank_fraction.min == 1.0)); // causal ⇒ full rank
}

#[test]
fn csv_outputs_have_one_row_per_value() {
    let r = report_of(vec![(
        "a,b".into(),
        prompt_stack(8, 1),
        AnalysisParams::default(),
    )]);
    let mut spectra = Vec::new();
    r.write_spectra_csv(&mut spectra).unwrap();
    let text = String::from_utf8(spectra).unwrap();
    assert_eq!(text.lines().count(), 1 + 12 * 8);
    assert!(text.lines().nth(1).unwrap().starts_with("\"a,b\",0,0,1,"));
    let mut heads = Vec::new();
    r.write_heads_csv(&mut heads).unwrap();
    assert_eq!(String::from_utf8(heads).unwrap().lines().count(), 13);
}
