//! The interface the gateway calls, and its single-node implementation.

use crate::MetaError;
use crate::machine::StateMachine;
use crate::records::{Answer, Command, Outcome, Query};
use std::sync::{Arc, Mutex};

/// Replicated-metadata interface. Implementations: [`LocalMetadata`] (one process, for tests and
/// the baseline of the metadata bench) and the gateway's leader-following client of the Raft
/// voters (`ignifuge-raft` behind the internode API). Either way: commands are applied atomically
/// in one total order, and queries observe every command whose `apply` returned.
#[async_trait::async_trait]
pub trait Metadata: Send + Sync + 'static {
    async fn apply(&self, command: Command) -> Result<Outcome, MetaError>;
    async fn query(&self, query: Query) -> Result<Answer, MetaError>;
}

/// The state machine applied in-process, one writer at a time.
pub struct LocalMetadata {
    machine: StateMachine,
    writer: Mutex<()>,
}

impl LocalMetadata {
    pub fn new(kv: Arc<dyn ignifuge_kv::KvStore>) -> Self {
        Self { machine: StateMachine::new(kv), writer: Mutex::new(()) }
    }

    /// Applies a command synchronously (call from a blocking context: it fsyncs).
    pub fn apply_blocking(&self, command: Command) -> Result<Outcome, MetaError> {
        let _one_writer = self.writer.lock().expect("metadata writer lock poisoned");
        self.machine.apply(command)
    }

    pub fn query_blocking(&self, query: Query) -> Result<Answer, MetaError> {
        self.machine.query(query)
    }
}

#[async_trait::async_trait]
impl Metadata for LocalMetadata {
    async fn apply(&self, command: Command) -> Result<Outcome, MetaError> {
        self.apply_blocking(command)
    }

    async fn query(&self, query: Query) -> Result<Answer, MetaError> {
        self.query_blocking(query)
    }
}
