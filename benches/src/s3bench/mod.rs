//! `s3bench`: an S3 load generator for any S3 endpoint, Ignifuge or not (issue 7, instrument 2).
//!
//! Owns: parsing sizes, the bounded run loop (a deadline and an operation budget, whichever is
//! spent first), the workloads (put, get, mixed, list, multipart) over `aws-sdk-s3`, a raw
//! loopback HTTP baseline to compare small-object rates against, and the report (latency
//! histogram, errors by kind, client CPU time, one JSON line).
//!
//! Never depends on any Ignifuge crate: the tool must measure a store only through S3, so the
//! same binary and the same figures apply to AWS, MinIO, Garage or Ignifuge.
//!
//! Invariants: every run is bounded in time and in operations; an error response is counted by
//! its kind, never a panic; payloads are generated once before the clock starts, so the random
//! number generator is never measured.

pub mod baseline;
pub mod errors;
pub mod run;
pub mod s3;
pub mod stats;
pub mod units;
