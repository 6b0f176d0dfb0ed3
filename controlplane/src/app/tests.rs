//! Use cases driven through [`AppState`] over a test double of the media port
//! ([`crate::app::engine::Media`]): no io_uring, no sockets; the double records the commands
//! the use cases give, so a test asserts what the media was told.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dataplane::engine::{
    Backend, CallId, CallMedia, EngineError, EngineEvent, LegSpec, LegStats, SupervisorMedia,
};
use dataplane::media::matrix::{LegId, Mode};

use crate::app::engine::Media;
use crate::app::state::{AppState, Settings};
use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::call::{LegRequest, NewCall, NewSupervision};
use crate::domain::lifecycle::SupervisionState;
use crate::domain::lifecycle::validate_supervisor_number;
use crate::metrics::Metrics;
use crate::store::SqliteStore;

/// A media command as the double saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    CreateCall(CallId),
    DeleteCall(CallId),
    AddSupervisor(CallId, LegId),
    RemoveSupervisor(CallId, LegId),
    SetMode(CallId, LegId, Mode),
    SetRemote(CallId, LegId, SocketAddr),
}

/// Media that admits everything (up to `capacity` calls, when set) and remembers what it holds
/// and what it was told.
#[derive(Default)]
pub(super) struct RecordingMedia {
    pub(super) commands: Mutex<Vec<Command>>,
    /// The calls and supervisor legs it holds now.
    pub(super) held: Mutex<BTreeSet<(CallId, Option<LegId>)>>,
    /// Calls it admits at most: beyond, `PortsExhausted`, as the engine's port pool answers.
    pub(super) capacity: Mutex<Option<usize>>,
}

impl RecordingMedia {
    fn record(&self, command: Command) {
        self.commands.lock().unwrap().push(command);
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Media for Arc<RecordingMedia> {
    fn create_call(&self, _: LegSpec, _: LegSpec) -> Result<CallMedia, EngineError> {
        let mut held = self.held.lock().unwrap();
        let calls = held.iter().filter(|(_, leg)| leg.is_none()).count();
        if self
            .capacity
            .lock()
            .unwrap()
            .is_some_and(|max| calls >= max)
        {
            return Err(EngineError::PortsExhausted);
        }
        let call = CallId(held.iter().map(|(c, _)| c.0).max().unwrap_or(0) + 1);
        held.insert((call, None));
        self.record(Command::CreateCall(call));
        Ok(CallMedia {
            call,
            customer: local(40_000 + 4 * call.0 as u16),
            agent: local(40_002 + 4 * call.0 as u16),
        })
    }
    fn delete_call(&self, call: CallId) -> Result<(), EngineError> {
        self.record(Command::DeleteCall(call));
        let mut held = self.held.lock().unwrap();
        if !held.contains(&(call, None)) {
            return Err(EngineError::UnknownCall);
        }
        held.retain(|&(c, _)| c != call);
        Ok(())
    }
    fn add_supervisor(
        &self,
        call: CallId,
        _: LegSpec,
        _: bool,
    ) -> Result<SupervisorMedia, EngineError> {
        let leg = LegId(2);
        self.held.lock().unwrap().insert((call, Some(leg)));
        self.record(Command::AddSupervisor(call, leg));
        Ok(SupervisorMedia {
            leg,
            local: local(40_004),
        })
    }
    fn remove_supervisor(&self, call: CallId, leg: LegId) -> Result<(), EngineError> {
        self.record(Command::RemoveSupervisor(call, leg));
        match self.held.lock().unwrap().remove(&(call, Some(leg))) {
            true => Ok(()),
            false => Err(EngineError::UnknownLeg),
        }
    }
    fn set_mode(&self, call: CallId, leg: LegId, mode: Mode) -> Result<(), EngineError> {
        self.record(Command::SetMode(call, leg, mode));
        Ok(())
    }
    fn set_remote(&self, call: CallId, leg: LegId, remote: SocketAddr) -> Result<(), EngineError> {
        self.record(Command::SetRemote(call, leg, remote));
        Ok(())
    }
    fn set_held(&self, _: CallId, _: LegId, _: bool) -> Result<(), EngineError> {
        Ok(())
    }
    fn leg_stats(&self, _: CallId, _: LegId) -> Option<LegStats> {
        None
    }
    fn drain_events(&self, _: &mut Vec<EngineEvent>) {}
    fn backend(&self) -> Backend {
        Backend::Uring
    }
    fn calls(&self) -> usize {
        let held = self.held.lock().unwrap();
        held.iter().filter(|(_, leg)| leg.is_none()).count()
    }
    fn shutdown(&self) {}
}

pub(super) fn state(media: &Arc<RecordingMedia>) -> AppState {
    let registry = prometheus::Registry::new();
    AppState::new(
        media.clone(),
        Metrics::new(&registry).unwrap(),
        Settings::from_config(&Config::default()),
        Arc::new(SqliteStore::open_in_memory().unwrap()),
        Arc::new(ManualClock::new(1_700_000_000_000)),
    )
    .unwrap()
}

/// docs/api.md, `DELETE /v1/calls/{id}`: deleting a call closes its open supervisions
/// (`aborted`, `call_deleted`) and releases their media, the supervisor's leg before the call.
#[test]
fn deleting_a_call_aborts_its_supervisions_and_releases_their_media() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let call = state.create_call(NewCall::default()).unwrap();
    let number = "+15550100";
    let sup = state
        .create_supervision(
            call.id,
            NewSupervision {
                supervisor: LegRequest::default(),
                supervisor_id: Some("sup-1".to_owned()),
                registered_number: Some(validate_supervisor_number(number).unwrap()),
                answered: Some(number.to_owned()),
                ..NewSupervision::default()
            },
            &crate::app::rights::Requester::Admin,
        )
        .unwrap();
    assert_eq!(sup.state, SupervisionState::Active);
    let engine_call = state.engine_call(call.id).unwrap();
    let (_, leg) = state.engine_leg(sup.id).unwrap();
    assert_eq!(media.calls(), 1);

    state.delete_call(call.id).unwrap();

    let sup = state.supervision(sup.id).unwrap();
    assert_eq!(sup.state, SupervisionState::Aborted);
    assert_eq!(sup.abort.as_deref(), Some("call_deleted"));
    assert_eq!(
        media.commands.lock().unwrap().as_slice(),
        [
            Command::CreateCall(engine_call),
            Command::AddSupervisor(engine_call, leg),
            Command::RemoveSupervisor(engine_call, leg),
            Command::DeleteCall(engine_call),
        ]
    );
    assert!(media.held.lock().unwrap().is_empty(), "no media left held");
    assert!(
        state.call(call.id).is_err(),
        "the API forgets a deleted call"
    );
}
