//! The media's events into the use cases: supervisor keys, media timeouts and latched sources
//! become the same inputs the API gives (docs/design.md §2).

use std::net::SocketAddr;

use dataplane::engine::{self, EngineError, EngineEvent};
use dataplane::media::matrix::LegId;

use crate::app::records::*;
use crate::app::state::{AppState, StateError};
use crate::app::supervisions::*;
use crate::config::DtmfAction;
use crate::domain::call::Party;
use crate::domain::lifecycle::{HangupParty, Input};
use crate::store::StoreExt as _;

/// Most engine events kept for retry while the engine's command ring is full (docs/design.md §9.4).
const ENGINE_EVENTS_RETRY_MAX: usize = 4096;

impl AppState {
    /// Moves the engine's pending events into `events`, without blocking.
    pub fn drain_engine_events(&self, events: &mut Vec<EngineEvent>) {
        self.inner.engine.drain_events(events);
    }

    /// Handles `events` (blocking). An event that failed only because the engine's command
    /// ring was full stays in `events` for the next round; the rest are consumed (failures
    /// logged).
    pub fn apply_engine_events(&self, events: &mut Vec<EngineEvent>) {
        events.retain(|&event| match self.engine_event(event) {
            Ok(()) => false,
            Err(StateError::Engine(EngineError::Busy)) => true,
            Err(err) => {
                tracing::warn!(?event, %err, "engine event not applied");
                false
            }
        });
        if events.len() > ENGINE_EVENTS_RETRY_MAX {
            let dropped = events.len() - ENGINE_EVENTS_RETRY_MAX;
            tracing::error!(
                dropped,
                "engine stays busy; dropping the oldest events awaiting retry"
            );
            events.drain(..dropped);
        }
    }

    /// One event from the data plane: supervisor DTMF switches mode or stops (through the
    /// session, like the API); a media timeout is a hangup of that party.
    pub fn engine_event(&self, event: EngineEvent) -> Result<(), StateError> {
        let mut r = self.records();
        let now = self.now_ms();
        let ignore_refusal = |result: Result<(), StateError>| match result {
            Err(StateError::Refused {
                supervision,
                refused,
            }) => {
                tracing::debug!(%supervision, %refused, "data-plane event not for this session");
                Ok(())
            }
            other => other,
        };
        match event {
            EngineEvent::Dtmf { call, leg, digit } => {
                let Some(sup) = r.supervision_on_leg(call, leg) else {
                    return Ok(());
                };
                let input = match self.inner.settings.dtmf.action(digit) {
                    Some(DtmfAction::Mode(mode)) => Input::SetMode(mode),
                    Some(DtmfAction::Stop) => Input::Stop,
                    None => {
                        tracing::debug!(supervision = %sup, %digit, "supervisor key with no action");
                        return Ok(());
                    }
                };
                ignore_refusal(self.step(&mut r, sup, now, Step::Input(input)))
            }
            EngineEvent::MediaTimeout { call, leg } => {
                let Some(&call_id) = r.by_engine_call.get(&call) else {
                    return Ok(());
                };
                let held = r.call(call_id).is_ok_and(|c| match leg {
                    LegId::CUSTOMER => c.customer.held,
                    LegId::AGENT => c.agent.held,
                    _ => false,
                });
                tracing::info!(call = %call_id, leg = leg.0, held, "media timeout");
                match leg {
                    LegId::CUSTOMER => self.party_hung_up(&mut r, call_id, Party::Customer, now),
                    LegId::AGENT => self.party_hung_up(&mut r, call_id, Party::Agent, now),
                    leg => match r.supervision_on_leg(call, leg) {
                        Some(sup) => ignore_refusal(self.step(
                            &mut r,
                            sup,
                            now,
                            Step::Input(Input::Hangup {
                                party: HangupParty::Supervisor,
                            }),
                        )),
                        None => Ok(()),
                    },
                }
            }
            EngineEvent::Latched { call, leg, remote } => self.latched(&mut r, call, leg, remote),
        }
    }

    /// A latching leg locked to `remote`: the call's (or the supervision's) leg shows it from
    /// now on, and keeps it in the store like a configured remote.
    pub(super) fn latched(
        &self,
        r: &mut Records,
        call: engine::CallId,
        leg: LegId,
        remote: SocketAddr,
    ) -> Result<(), StateError> {
        let Some(&call_id) = r.by_engine_call.get(&call) else {
            return Ok(());
        };
        let party = match leg {
            LegId::CUSTOMER => Some(Party::Customer),
            LegId::AGENT => Some(Party::Agent),
            _ => None,
        };
        if let Some(party) = party {
            let record = r.call_mut(call_id)?;
            if !record.leg_mut(party).latch(remote) {
                return Ok(());
            }
            let stored = record.stored(call_id, None);
            self.inner.store.write(|w| w.update_call(&stored))?;
            tracing::debug!(call = %call_id, party = party.as_str(), %remote, "leg latched");
        } else if let Some(id) = r.supervision_on_leg(call, leg)
            && let Some(sup) = r.supervisions.get_mut(&id)
            && sup.leg.latch(remote)
        {
            let stored = sup.stored(id);
            self.inner.store.write(|w| w.update_supervision(&stored))?;
            tracing::debug!(supervision = %id, %remote, "supervisor leg latched");
        }
        Ok(())
    }
}
