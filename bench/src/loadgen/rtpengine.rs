//! `--target rtpengine`: the same relay load through rtpengine, its calls set up over the NG
//! protocol instead of earshot's HTTP API (`bench/compare-rtpengine.sh`).
//!
//! Per call, as a SIP proxy would: `offer` with the customer's SDP (the load generator's
//! customer socket) returns rtpengine's address for the agent side; `answer` with the agent's
//! SDP (the agent socket) returns its address for the customer side. rtpengine relays
//! symmetrically, each side from the port it receives that side on, so these two addresses are
//! exactly what an earshot call's `legs.customer.local` and `legs.agent.local` are to the rest
//! of the load generator: where a role's stream goes, and where the relay of the other role's
//! stream comes from. `delete` ends the call.

use crate::ng::{self, NgClient};

use super::{Fleet, LoadMode, Result, Role, Scope, SocketAddrV4, Sockets, Stream};

/// An rtpengine call's id and the customer's tag (its `from-tag`, which `delete` needs).
pub(super) struct NgCall {
    call_id: String,
    from_tag: String,
}

/// What the loaded rtpengine needs: its NG client and the calls set up through it.
pub(super) struct Rtpengine {
    pub(super) client: NgClient,
    calls: Vec<NgCall>,
    /// Makes call ids unique across runs against one daemon.
    run_id: String,
}

impl Rtpengine {
    pub(super) fn new(client: NgClient) -> Rtpengine {
        let nanos = super::realtime_ns();
        Rtpengine {
            client,
            calls: Vec::new(),
            run_id: format!("loadgen-{}-{nanos:x}", std::process::id()),
        }
    }
}

/// rtpengine's address in an SDP it returned; refused unless `scope` allows it.
fn rtpengine_addr(sdp: &str, scope: Scope, what: &str) -> Result<SocketAddrV4> {
    match ng::sdp_audio_addr(sdp) {
        Some(a) if scope.allows_media(a) => Ok(a),
        Some(a) => Err(format!(
            "{what}: rtpengine's address {a}: refusing to send there: {}",
            scope.describe()
        )),
        None => Err(format!("{what}: no IPv4 audio stream in rtpengine's SDP")),
    }
}

impl Fleet<'_> {
    /// Adds rtpengine calls (relay only) until there are `n`.
    pub(super) fn grow_ng(&mut self, n: u32, sockets: &Sockets) -> Result<()> {
        let scope = self.scope;
        let Some(rtpe) = self.ng.as_mut() else {
            return Err("no NG client".into());
        };
        while rtpe.calls.len() < n as usize {
            let k = rtpe.calls.len();
            let call = NgCall {
                call_id: format!("{}-{k}", rtpe.run_id),
                from_tag: format!("customer-{k}"),
            };
            let to_tag = format!("agent-{k}");
            // Listed before the offer: once sent, the call may exist in rtpengine (even if its
            // reply is lost), and it is deleted with the rest whatever happens next.
            let call_id = call.call_id.clone();
            let from_tag = call.from_tag.clone();
            rtpe.calls.push(call);
            let customer_sdp = ng::audio_sdp(sockets.addr(Role::Customer), k as u64 + 1);
            let offered = rtpe
                .client
                .offer(&call_id, &from_tag, &customer_sdp)
                .map_err(|e| e.to_string())?;
            let for_agent = rtpengine_addr(&offered, scope, "offer")?;
            let agent_sdp = ng::audio_sdp(sockets.addr(Role::Agent), k as u64 + 1);
            let answered = rtpe
                .client
                .answer(&call_id, &from_tag, &to_tag, &agent_sdp)
                .map_err(|e| e.to_string())?;
            let for_customer = rtpengine_addr(&answered, scope, "answer")?;
            // Stream state as `grow` gives earshot's legs, so both targets carry the same load.
            Stream::push_call(
                &mut self.streams,
                LoadMode::Relay,
                &[(Role::Customer, for_customer), (Role::Agent, for_agent)],
            );
        }
        Ok(())
    }

    /// Deletes every rtpengine call; returns how many rtpengine acknowledged.
    pub(super) fn delete_all_ng(&mut self) -> usize {
        let Some(rtpe) = self.ng.as_mut() else {
            return 0;
        };
        let mut deleted = 0;
        for call in std::mem::take(&mut rtpe.calls) {
            match rtpe.client.delete(&call.call_id, &call.from_tag) {
                Ok(()) => deleted += 1,
                Err(e) => eprintln!("loadgen: delete {}: {e}", call.call_id),
            }
        }
        self.streams.clear();
        deleted
    }

    /// How many calls are up, whichever the target.
    pub(super) fn call_count(&self) -> usize {
        self.ng
            .as_ref()
            .map_or(self.calls.len(), |rtpe| rtpe.calls.len())
    }
}
