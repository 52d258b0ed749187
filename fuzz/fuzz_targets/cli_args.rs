//! The command line of `attention-svd`: its clap definition
//! (`src/bin/attention-svd/args.rs`, compiled here as it is in the tool)
//! parses argument vectors built from the tool's own flags, subcommands
//! and values (ranges, masks, targets, precisions, backends), hostile
//! values (empty, `-`, `--`, huge and negative integers, NaN, 1e309,
//! `window:` variants, `=`-joined forms), arbitrary UTF-8 and invalid
//! UTF-8 arguments.
//!
//! Never panics (clap's own consistency checks run in this build, which
//! has debug assertions on); an error renders to a message; an `Ok` keeps
//! its ranges non-empty and its positional inputs as given.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

#[allow(dead_code)]
#[path = "../../src/bin/attention-svd/args.rs"]
mod args;

use args::{Cli, Command};
use clap::Parser;
use fuzz_common::*;
use libfuzzer_sys::fuzz_target;

const TOKENS: &[&str] = &[
    "analyze", "sweep", "merge", "compress", "help", "--help", "-h", "--version", "-V",
    "--input", "all", "bread_n64", "lighthouse_n16", "--data", "data/minilm", "--q", "--k",
    "--tensor", "--mask", "auto", "none", "causal", "window:0", "window:3", "window:",
    "window:-1", "window:18446744073709551616", "--from-qk", "--precision", "f32", "f64",
    "--backend", "jacobi", "faer", "nalgebra", "--layers", "--heads", "0..1", "5..2", "0..0",
    "..", "1..", "..3", " 1 .. 2 ", "0..18446744073709551615", "--json", "--csv",
    "--spectra-csv", "--plot", "--heatmap", "--prompt", "--layers-only", "-q", "--quiet",
    "--no-collapse", "--sweep", "--top-keys", "--temperatures", "0,1,2", ",", "1,,2",
    "--calibrate", "--evaluate", "--max-output-error", "--max-mean-tv", "0.01", "0", "1",
    "1.5", "-1", "nan", "NaN", "inf", "-inf", "1e309", "-1e-300", "18446744073709551616",
    "--", "-", "", "x.npy", "x.json", "no/such/dir/x.json", "--layers=0..2",
    "--mask=window:2", "--json=", "-qq", "--unknown",
];

fn arg(u: &mut Unstructured) -> OsString {
    match byte(u) % 10 {
        0..=6 => OsString::from(TOKENS[usize::from(byte(u)) % TOKENS.len()]),
        7 => {
            let len = usize::from(byte(u) % 12);
            let s: String = (0..len).map(|_| char::from(32 + byte(u) % 95)).collect();
            OsString::from(s)
        }
        8 => {
            // A flag joined to a value with `=`.
            let a = TOKENS[usize::from(byte(u)) % TOKENS.len()];
            let b = TOKENS[usize::from(byte(u)) % TOKENS.len()];
            OsString::from(format!("{a}={b}"))
        }
        _ => {
            let len = usize::from(byte(u) % 8);
            OsString::from_vec((0..len).map(|_| byte(u)).collect())
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut argv = vec![OsString::from("attention-svd")];
    let count = byte(&mut u) % 16;
    for _ in 0..count {
        argv.push(arg(&mut u));
    }
    if verbose() {
        eprintln!("argv: {argv:?}");
    }
    match Cli::try_parse_from(&argv) {
        Err(e) => {
            let _ = e.kind();
            let _ = e.render().to_string();
        }
        Ok(cli) => {
            let compute = match &cli.command {
                Command::Analyze(a) => Some(&a.compute),
                Command::Sweep(s) => Some(&s.compute),
                Command::Merge(m) => {
                    assert!(!m.reports.is_empty(), "merge parsed without reports");
                    None
                }
                Command::Compress(_) => None,
            };
            if let Some(c) = compute {
                for r in [&c.layers, &c.heads].into_iter().flatten() {
                    assert!(r.start < r.end, "empty range {r:?} parsed");
                }
            }
        }
    }
});
