//! A supervised call on a running daemon, driven through its phases and recorded.
//!
//! A [`Rig`] starts a daemon on a [`Setup`] (loopback, or a veth pair), binds three endpoints,
//! creates the call (each leg's remote is its endpoint's address, or omitted for a latching
//! leg), and starts the customer and agent tones.
//! [`Rig::supervise`] adds the supervisor, [`Rig::set_mode`] changes modes; every change is a
//! [`Phase`] stamped with when it was requested and when the daemon answered, so the analysis
//! knows which packets to judge against which row of the hearing matrix.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::audio::{AGENT_TONE, CUSTOMER_TONE, SUPERVISOR_TONE, Tone};
use crate::daemon::TestDaemon;
use crate::endpoint::{Endpoint, Impairment, Received, SendSpec, Signal};
use crate::rtp::{PT_PCMA, PT_PCMU};
use crate::setup::Setup;

/// A party of the call, by the endpoint that plays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Customer,
    Agent,
    Supervisor,
}

pub const PARTIES: [Party; 3] = [Party::Customer, Party::Agent, Party::Supervisor];

/// The supervisor number a [`Rig`] registers and answers from (any valid one).
pub const SUPERVISOR_NUMBER: &str = "+15550100";

impl Party {
    pub const fn name(self) -> &'static str {
        match self {
            Party::Customer => "customer",
            Party::Agent => "agent",
            Party::Supervisor => "supervisor",
        }
    }

    /// The tone this party's endpoint sends.
    pub const fn tone(self) -> Tone {
        match self {
            Party::Customer => CUSTOMER_TONE,
            Party::Agent => AGENT_TONE,
            Party::Supervisor => SUPERVISOR_TONE,
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What the call is in: no supervision, or one of the five supervision modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Unsupervised,
    Listen,
    Whisper,
    Barge,
    Takeover,
    TakeoverListen,
}

impl Mode {
    pub const SUPERVISED: [Mode; 5] = [
        Mode::Listen,
        Mode::Whisper,
        Mode::Barge,
        Mode::Takeover,
        Mode::TakeoverListen,
    ];

    /// The mode's name in the API; `(none)` when unsupervised.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Unsupervised => "(none)",
            Mode::Listen => "listen",
            Mode::Whisper => "whisper",
            Mode::Barge => "barge",
            Mode::Takeover => "takeover",
            Mode::TakeoverListen => "takeover_listen",
        }
    }

    /// The hearing matrix, docs/design.md §1.2: whom `listener` hears in this mode.
    pub const fn hears(self, listener: Party) -> &'static [Party] {
        use Party::{Agent as A, Customer as C, Supervisor as S};
        match (self, listener) {
            (Mode::Unsupervised, C) => &[A],
            (Mode::Unsupervised, A) => &[C],
            (Mode::Unsupervised, S) => &[],
            (Mode::Listen, C) => &[A],
            (Mode::Listen, A) => &[C],
            (Mode::Listen, S) => &[C, A],
            (Mode::Whisper, C) => &[A],
            (Mode::Whisper, A) => &[C, S],
            (Mode::Whisper, S) => &[C, A],
            (Mode::Barge, C) => &[A, S],
            (Mode::Barge, A) => &[C, S],
            (Mode::Barge, S) => &[C, A],
            (Mode::Takeover, C) => &[S],
            (Mode::Takeover, A) => &[],
            (Mode::Takeover, S) => &[C],
            (Mode::TakeoverListen, C) => &[S],
            (Mode::TakeoverListen, A) => &[C, S],
            (Mode::TakeoverListen, S) => &[C],
        }
    }

    /// The modes in which the customer must never hear a supervisor (docs/design.md §1.2).
    pub const fn customer_private(self) -> bool {
        matches!(self, Mode::Unsupervised | Mode::Listen | Mode::Whisper)
    }
}

/// One stretch of the call in one mode.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub mode: Mode,
    /// When the change was asked for (HTTP request sent, or key press started).
    pub requested_at: Instant,
    /// When the daemon confirmed it (HTTP answer read, or the new mode seen by polling).
    pub effective_at: Instant,
    /// When the next change was asked for, or the recording stopped.
    pub ended_at: Instant,
    /// This phase began with the supervision's start (the agent may hear the beep).
    pub supervision_start: bool,
}

/// One step of a scripted scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start the supervision (in `listen`).
    Supervise,
    /// Change its mode through the API.
    Mode(Mode),
}

/// How one leg is set up.
#[derive(Debug, Clone, Copy)]
pub struct LegOptions {
    /// `remote` given (strict source) or omitted (the leg latches).
    pub strict: bool,
    /// 0 (PCMU) or 8 (PCMA): both the leg's codec and what the endpoint sends.
    pub pt: u8,
    /// Whether the endpoint sends its tone at all.
    pub sends: bool,
}

impl Default for LegOptions {
    fn default() -> Self {
        LegOptions {
            strict: true,
            pt: PT_PCMU,
            sends: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RigOptions {
    pub customer: LegOptions,
    pub agent: LegOptions,
    pub supervisor: LegOptions,
    /// Reproducible 5 % loss + 5 % reordering on every endpoint's output (a case number derived per
    /// party).
    pub impairment_case: Option<u64>,
    /// The supervision's `beep` field; `None` leaves the daemon's default.
    pub beep: Option<bool>,
}

/// The call's identity and local media addresses.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub id: String,
    pub customer_local: SocketAddr,
    pub agent_local: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct SupervisionInfo {
    pub id: String,
    pub local: SocketAddr,
}

/// A running daemon, a call on it and the three endpoints.
pub struct Rig {
    pub setup: Setup,
    pub daemon: TestDaemon,
    pub options: RigOptions,
    pub customer: Endpoint,
    pub agent: Endpoint,
    pub supervisor: Endpoint,
    pub call: CallInfo,
    pub supervision: Option<SupervisionInfo>,
    pub phases: Vec<Phase>,
    /// The origin of every time printed in reports.
    pub t0: Instant,
}

/// What a scenario produced: its phases and every packet each endpoint received.
pub struct Recording {
    pub t0: Instant,
    pub phases: Vec<Phase>,
    /// Indexed by [`Party::index`].
    pub received: [Vec<Received>; 3],
    /// Which parties sent their tone, by [`Party::index`].
    pub sending: [bool; 3],
    /// The daemon's tick and drop counters when the recording stopped.
    pub health: String,
}

impl Recording {
    pub fn of(&self, party: Party) -> &[Received] {
        &self.received[party.index()]
    }
}

fn codec_name(pt: u8) -> &'static str {
    if pt == PT_PCMA { "pcma" } else { "pcmu" }
}

fn leg_body(opts: LegOptions, endpoint: &Endpoint) -> Value {
    let remote = if opts.strict {
        json!(endpoint.local_addr().to_string())
    } else {
        Value::Null
    };
    json!({"remote": remote, "codec": codec_name(opts.pt)})
}

/// `"ip:port"` from a JSON string field, with a panic that shows the whole object.
pub fn addr_field(v: &Value, pointer: &str) -> SocketAddr {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address at {pointer} in {v}"))
}

/// A string field, with a panic that shows the whole object.
pub fn str_field<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

impl Rig {
    /// Starts a daemon on loopback, creates the call and starts the customer and agent
    /// senders.
    pub fn start(options: RigOptions) -> Rig {
        Rig::start_in(&Setup::loopback(), options)
    }

    /// As [`Rig::start`], on `setup` (on a veth, from a thread in the peer namespace).
    pub fn start_in(setup: &Setup, options: RigOptions) -> Rig {
        Rig::start_on(setup, TestDaemon::start_in(setup, |_| {}), options)
    }

    /// As [`Rig::start_in`], with a daemon already started on `setup`.
    pub fn start_on(setup: &Setup, daemon: TestDaemon, options: RigOptions) -> Rig {
        let t0 = Instant::now();
        let customer = setup.endpoint("customer");
        let agent = setup.endpoint("agent");
        let supervisor = setup.endpoint("supervisor");
        let body = json!({
            "customer": leg_body(options.customer, &customer),
            "agent": leg_body(options.agent, &agent),
        });
        let reply = daemon.api.post("/v1/calls", &body);
        let (requested_at, effective_at) = (reply.sent_at, reply.answered_at);
        let call = reply.expect(201, "POST /v1/calls");
        let call = CallInfo {
            id: str_field(&call, "/id").to_owned(),
            customer_local: addr_field(&call, "/legs/customer/local"),
            agent_local: addr_field(&call, "/legs/agent/local"),
        };
        let mut rig = Rig {
            setup: setup.clone(),
            daemon,
            options,
            customer,
            agent,
            supervisor,
            call,
            supervision: None,
            phases: vec![Phase {
                mode: Mode::Unsupervised,
                requested_at,
                effective_at,
                ended_at: effective_at,
                supervision_start: false,
            }],
            t0,
        };
        let (c_local, a_local) = (rig.call.customer_local, rig.call.agent_local);
        start_party(
            &mut rig.customer,
            options.customer,
            c_local,
            Party::Customer,
            options.impairment_case,
        );
        start_party(
            &mut rig.agent,
            options.agent,
            a_local,
            Party::Agent,
            options.impairment_case,
        );
        rig
    }

    /// Starts a supervision (always in `listen`) and the supervisor's sender.
    pub fn supervise(&mut self) -> SupervisionInfo {
        // The supervisor's leg is up already (the test is its phone): answered at creation,
        // so media flows at once.
        let mut body = json!({
            "supervisor": leg_body(self.options.supervisor, &self.supervisor),
            "supervisor_id": "supervisor",
            "registered_number": SUPERVISOR_NUMBER,
            "answered": {"calling_number": SUPERVISOR_NUMBER},
        });
        if let Some(beep) = self.options.beep {
            body["beep"] = json!(beep);
        }
        let reply = self
            .daemon
            .api
            .post(&format!("/v1/calls/{}/supervisions", self.call.id), &body);
        let (requested_at, effective_at) = (reply.sent_at, reply.answered_at);
        let s = reply.expect(201, "POST /v1/calls/{id}/supervisions");
        assert_eq!(s["mode"], "listen", "a supervision starts in listen: {s}");
        let info = SupervisionInfo {
            id: str_field(&s, "/id").to_owned(),
            local: addr_field(&s, "/leg/local"),
        };
        self.push_phase(Mode::Listen, requested_at, effective_at, true);
        let opts = self.options.supervisor;
        start_party(
            &mut self.supervisor,
            opts,
            info.local,
            Party::Supervisor,
            self.options.impairment_case,
        );
        self.supervision = Some(info.clone());
        info
    }

    fn supervision_id(&self) -> &str {
        &self.supervision.as_ref().expect("supervise() first").id
    }

    /// `PATCH /v1/supervisions/{id}` to `mode`, asserting 200 and the echoed mode.
    pub fn set_mode(&mut self, mode: Mode) {
        let path = format!("/v1/supervisions/{}", self.supervision_id());
        let reply = self.daemon.api.patch(&path, &json!({"mode": mode.name()}));
        let (requested_at, effective_at) = (reply.sent_at, reply.answered_at);
        let s = reply.expect(200, &format!("PATCH {path} to {}", mode.name()));
        assert_eq!(
            s["mode"],
            mode.name(),
            "PATCH answer carries the new mode: {s}"
        );
        self.push_phase(mode, requested_at, effective_at, false);
    }

    /// Records a mode change made out of band (a key press): asked at `requested_at`, seen
    /// at `effective_at`.
    pub fn record_phase(&mut self, mode: Mode, requested_at: Instant, effective_at: Instant) {
        self.push_phase(mode, requested_at, effective_at, false);
    }

    fn push_phase(
        &mut self,
        mode: Mode,
        requested_at: Instant,
        effective_at: Instant,
        supervision_start: bool,
    ) {
        self.phases.push(Phase {
            mode,
            requested_at,
            effective_at,
            ended_at: effective_at,
            supervision_start,
        });
    }

    /// `GET /v1/supervisions/{id}`.
    pub fn supervision_state(&self) -> Value {
        let path = format!("/v1/supervisions/{}", self.supervision_id());
        self.daemon
            .api
            .get(&path)
            .expect(200, &format!("GET {path}"))
    }

    /// Polls the supervision every 20 ms until its mode is `mode`; the instant it was seen.
    pub fn wait_for_mode(&self, mode: Mode, within: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + within;
        loop {
            let s = self.supervision_state();
            if s["mode"] == mode.name() {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "mode still {} after {within:?} (wanted {}): {s}",
                    s["mode"],
                    mode.name()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /v1/calls/{id}`.
    pub fn call_state(&self) -> Value {
        let path = format!("/v1/calls/{}", self.call.id);
        self.daemon
            .api
            .get(&path)
            .expect(200, &format!("GET {path}"))
    }

    /// Runs `steps`, each followed by its dwell time.
    pub fn run(&mut self, steps: &[(Step, Duration)]) {
        for (step, dwell) in steps {
            match step {
                Step::Supervise => {
                    self.supervise();
                }
                Step::Mode(m) => self.set_mode(*m),
            }
            self.dwell(*dwell);
        }
    }

    /// Another endpoint on the rig's network (e.g. an intruder).
    pub fn endpoint(&self, name: &'static str) -> Endpoint {
        self.setup.endpoint(name)
    }

    /// Lets the call run for `d`.
    pub fn dwell(&self, d: Duration) {
        thread::sleep(d);
    }

    /// Ends the last phase now, stops every sender, lets the last packets land and returns
    /// everything recorded. The endpoints keep their sockets (and the call stays up).
    pub fn finish(&mut self) -> Recording {
        let now = Instant::now();
        let n = self.phases.len();
        for i in 0..n {
            self.phases[i].ended_at = if i + 1 < n {
                self.phases[i + 1].requested_at
            } else {
                now
            };
        }
        for e in [&mut self.customer, &mut self.agent, &mut self.supervisor] {
            e.stop_sending();
        }
        thread::sleep(Duration::from_millis(100));
        Recording {
            t0: self.t0,
            phases: self.phases.clone(),
            received: [
                self.customer.received(),
                self.agent.received(),
                self.supervisor.received(),
            ],
            sending: [
                self.options.customer.sends,
                self.options.agent.sends,
                self.options.supervisor.sends,
            ],
            health: self.daemon.health(),
        }
    }
}

fn start_party(
    e: &mut Endpoint,
    opts: LegOptions,
    dest: SocketAddr,
    party: Party,
    case: Option<u64>,
) {
    if !opts.sends {
        return;
    }
    let impairment =
        case.map(|s| Impairment::standard(s.wrapping_mul(31).wrapping_add(party.index() as u64)));
    e.start_sending(SendSpec {
        dest,
        signal: Signal::Tone(party.tone()),
        pt: opts.pt,
        impairment,
    });
}
