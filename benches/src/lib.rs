//! Micro benchmarks of the data path and placement live in `benches/`; run them with
//! `cargo bench -p ignifuge-benches`. Results and their baselines are in docs/benchmarks.md.

pub mod s3bench;
