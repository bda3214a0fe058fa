//! Committing written data to the metadata, for the S3 handlers, the packer and the pack
//! compactor alike: the command's answer (with the fault points that make an answer lost or
//! wrong), and giving up the blobs of a commit that was refused.

use crate::datapath::DataPath;
use ignifuge_meta::{Command, MetaError, Metadata, Outcome};
use ignifuge_types::BlobId;
use ignifuge_types::time::now_ms;
use std::sync::Arc;

/// Proposes `command` and returns its answer. A refusal for a known reason
/// (`MetaError::is_known_refusal`) means it was not applied; any other error leaves the outcome
/// unknown: the command may still be applied.
pub async fn answer(metadata: &dyn Metadata, command: Command) -> Result<Outcome, MetaError> {
    answer_at(metadata, command, GATEWAY_COMMIT).await
}

/// The fault points of one caller's commits.
pub struct AnswerFaults {
    /// The commit went through but its answer never came back, and settling failed too.
    pub lost: &'static str,
    /// A wrong refusal: the metadata forgot the proposal's id (it aged out while the caller
    /// retried) and settled an applied commit as abandoned.
    pub wrong: &'static str,
}

/// The S3 handlers' and the packer's.
const GATEWAY_COMMIT: AnswerFaults =
    AnswerFaults { lost: "gateway.commit.answer-lost", wrong: "gateway.commit.answer-wrong" };

/// `answer`, with another caller's fault points.
pub async fn answer_at(metadata: &dyn Metadata, command: Command, faults: AnswerFaults) -> Result<Outcome, MetaError> {
    let mut answer = metadata.apply(command).await;
    if ignifuge_faults::hit(faults.lost).is_some() {
        answer = Err(MetaError::Unavailable("fault point: the commit's answer was lost".into()));
    }
    if answer.is_ok() && ignifuge_faults::hit(faults.wrong).is_some() {
        answer = Err(MetaError::Abandoned);
    }
    answer
}

/// Deletes the shards of blobs whose commit was refused, in the background, once the metadata
/// has fenced them (`Command::ReclaimOrphans` with no grace): a refusal is only as sure as the
/// proposal ids the metadata still remembers, and the fence refuses any blob a record
/// references, so no answer, however wrong, can make this delete what the metadata names.
pub fn give_up(metadata: Arc<dyn Metadata>, data: Arc<DataPath>, blobs: Vec<BlobId>) {
    if blobs.is_empty() {
        return;
    }
    tokio::spawn(async move {
        match metadata.reclaim_orphans(blobs, now_ms(), 0).await {
            Ok(fenced) => {
                for blob in fenced {
                    data.discard(blob);
                }
            }
            Err(e) => tracing::debug!(error = %e, "refused write's blobs not fenced; the orphan sweep will"),
        }
    });
}
