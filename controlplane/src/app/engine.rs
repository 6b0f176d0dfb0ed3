//! The port through which the use cases reach the media (docs/design.md §9): a small trait the
//! composition root ([`crate::daemon`]) implements for the data-plane engine, so the use cases
//! can be driven without io_uring or AF_XDP (tests), and another media back end (an NG adapter,
//! a cluster node) can plug in at the same seam.
//!
//! Its methods are the engine's commands, with the engine's own types and errors (the data
//! plane's ids, `LegSpec`, `EngineError`): the use cases already speak them, and mapping them
//! to copies would only hide what the data plane refused.

use std::net::SocketAddr;

use dataplane::engine::{
    Backend, CallId, CallMedia, EngineError, EngineEvent, LegSpec, LegStats, SupervisorMedia,
};
use dataplane::media::matrix::{LegId, Mode};

/// The media of calls and supervisors: legs, their modes, their statistics, and the events
/// the media reports (docs/media.md). Every method may block briefly (a full command ring is
/// [`EngineError::Busy`], never a wait); `Send + Sync`: every request shares it.
pub trait Media: Send + Sync {
    /// Admits a call: a local media address for each of its two parties.
    fn create_call(&self, customer: LegSpec, agent: LegSpec) -> Result<CallMedia, EngineError>;
    /// Releases a call, its legs and their ports.
    fn delete_call(&self, call: CallId) -> Result<(), EngineError>;
    /// Adds a supervisor leg, hearing the call in `listen` at once; `beep` plays the
    /// supervision tone to the agent.
    fn add_supervisor(
        &self,
        call: CallId,
        spec: LegSpec,
        beep: bool,
    ) -> Result<SupervisorMedia, EngineError>;
    /// Removes a supervisor leg and releases its port.
    fn remove_supervisor(&self, call: CallId, leg: LegId) -> Result<(), EngineError>;
    /// Changes a supervisor leg's mode (docs/design.md §1: a preset of the hearing matrix).
    fn set_mode(&self, call: CallId, leg: LegId, mode: Mode) -> Result<(), EngineError>;
    /// The leg becomes strict-source on `remote`.
    fn set_remote(&self, call: CallId, leg: LegId, remote: SocketAddr) -> Result<(), EngineError>;
    /// Puts a leg's party on hold or takes it off (its silence is judged differently).
    fn set_held(&self, call: CallId, leg: LegId, held: bool) -> Result<(), EngineError>;
    /// A leg's statistics, while the media has it.
    fn leg_stats(&self, call: CallId, leg: LegId) -> Option<LegStats>;
    /// Moves every pending media event into `out`, without blocking.
    fn drain_events(&self, out: &mut Vec<EngineEvent>);
    /// Which back end carries the media (diagnostics).
    fn backend(&self) -> Backend;
    /// Calls currently admitted (diagnostics, tests).
    fn calls(&self) -> usize;
    /// Stops the media and releases every call. Idempotent.
    fn shutdown(&self);
}
