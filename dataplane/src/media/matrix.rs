//! The hearing matrix (docs/design.md §1.2): rows are listeners, columns are whose audio they hear.
//! The supervision modes are presets of it; the rest of the data plane only knows the matrix.

use core::fmt;
use core::str::FromStr;

/// Most supervisor legs one call can carry. Bounds every per-call array (docs/design.md §9.4).
pub const MAX_SUPERVISORS: usize = 4;
/// Most legs one call can carry: customer, agent and the supervisors.
pub const MAX_LEGS: usize = 2 + MAX_SUPERVISORS;

/// A leg's index within its call: 0 is the customer, 1 the agent, 2.. the supervisors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u8);

impl LegId {
    pub const CUSTOMER: LegId = LegId(0);
    pub const AGENT: LegId = LegId(1);

    pub const fn index(self) -> usize {
        self.0 as usize
    }

    pub const fn is_supervisor(self) -> bool {
        self.0 >= 2
    }
}

/// A supervision mode (docs/design.md §1.2). Every supervision starts in [`Mode::Listen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    #[default]
    Listen,
    Whisper,
    Barge,
    Takeover,
    TakeoverListen,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Listen,
        Mode::Whisper,
        Mode::Barge,
        Mode::Takeover,
        Mode::TakeoverListen,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Listen => "listen",
            Mode::Whisper => "whisper",
            Mode::Barge => "barge",
            Mode::Takeover => "takeover",
            Mode::TakeoverListen => "takeover_listen",
        }
    }

    /// Does the customer hear this supervisor?
    const fn customer_hears_supervisor(self) -> bool {
        matches!(self, Mode::Barge | Mode::Takeover | Mode::TakeoverListen)
    }

    /// Does the agent hear this supervisor?
    const fn agent_hears_supervisor(self) -> bool {
        matches!(self, Mode::Whisper | Mode::Barge | Mode::TakeoverListen)
    }

    /// Does this supervisor replace the agent toward the customer?
    const fn replaces_agent(self) -> bool {
        matches!(self, Mode::Takeover | Mode::TakeoverListen)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode (expected listen, whisper, barge, takeover or takeover_listen)")]
pub struct UnknownMode;

impl FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Mode, UnknownMode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(UnknownMode)
    }
}

/// A set of legs, one bit per [`LegId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegSet(u8);

impl LegSet {
    pub const EMPTY: LegSet = LegSet(0);

    pub const fn of(leg: LegId) -> LegSet {
        LegSet(1 << leg.0)
    }

    pub const fn with(self, leg: LegId) -> LegSet {
        LegSet(self.0 | (1 << leg.0))
    }

    pub const fn contains(self, leg: LegId) -> bool {
        self.0 & (1 << leg.0) != 0
    }

    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The only member, when there is exactly one.
    pub const fn single(self) -> Option<LegId> {
        if self.0.count_ones() == 1 {
            Some(LegId(self.0.trailing_zeros() as u8))
        } else {
            None
        }
    }

    pub fn iter(self) -> impl Iterator<Item = LegId> {
        (0..MAX_LEGS as u8)
            .map(LegId)
            .filter(move |l| self.contains(*l))
    }
}

/// Who hears whom: `hears(listener)` is the set of legs whose audio reaches `listener`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Matrix {
    rows: [LegSet; MAX_LEGS],
}

impl Matrix {
    pub fn hears(&self, listener: LegId) -> LegSet {
        self.rows[listener.index()]
    }

    /// The matrix for a call whose supervisor legs are in the given modes (`None`: no
    /// supervisor on that slot). With no supervisor it is the plain call: customer and agent
    /// hear each other. Each supervisor hears its own mode's row of docs/design.md §1.2, plus the
    /// other supervisors who are in `barge`.
    pub fn from_modes(supervisors: &[Option<Mode>; MAX_SUPERVISORS]) -> Matrix {
        let mut rows = [LegSet::EMPTY; MAX_LEGS];
        let sup = |i: usize| LegId(2 + i as u8);
        let active = || {
            supervisors
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.map(|m| (sup(i), m)))
        };

        let agent_replaced = active().any(|(_, m)| m.replaces_agent());
        let agent_detached = active().any(|(_, m)| m == Mode::Takeover);

        // Customer: the agent unless a supervisor took over, plus every supervisor it hears.
        let mut customer = if agent_replaced {
            LegSet::EMPTY
        } else {
            LegSet::of(LegId::AGENT)
        };
        // Agent: the customer unless detached by a takeover, plus every supervisor it hears.
        let mut agent = if agent_detached {
            LegSet::EMPTY
        } else {
            LegSet::of(LegId::CUSTOMER)
        };
        for (leg, mode) in active() {
            if mode.customer_hears_supervisor() {
                customer = customer.with(leg);
            }
            if mode.agent_hears_supervisor() && !agent_detached {
                agent = agent.with(leg);
            }
        }
        rows[LegId::CUSTOMER.index()] = customer;
        rows[LegId::AGENT.index()] = agent;

        for (leg, mode) in active() {
            let mut row = if mode.replaces_agent() {
                LegSet::of(LegId::CUSTOMER)
            } else {
                LegSet::of(LegId::CUSTOMER).with(LegId::AGENT)
            };
            for (other, other_mode) in active() {
                if other != leg && other_mode == Mode::Barge {
                    row = row.with(other);
                }
            }
            rows[leg.index()] = row;
        }
        Matrix { rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: LegId = LegId::CUSTOMER;
    const A: LegId = LegId::AGENT;
    const S: LegId = LegId(2);

    fn set(legs: &[LegId]) -> LegSet {
        legs.iter().fold(LegSet::EMPTY, |s, l| s.with(*l))
    }

    fn one(mode: Option<Mode>) -> Matrix {
        Matrix::from_modes(&[mode, None, None, None])
    }

    /// Every row of the docs/design.md §1.2 table, literally.
    #[test]
    fn every_mode_preset_matches_the_spec_table() {
        /// A row of the table: the mode, then whom the customer, agent and supervisor hear.
        type Row = (
            Option<Mode>,
            &'static [LegId],
            &'static [LegId],
            &'static [LegId],
        );
        let table: [Row; 6] = [
            (None, &[A], &[C], &[]),
            (Some(Mode::Listen), &[A], &[C], &[C, A]),
            (Some(Mode::Whisper), &[A], &[C, S], &[C, A]),
            (Some(Mode::Barge), &[A, S], &[C, S], &[C, A]),
            (Some(Mode::Takeover), &[S], &[], &[C]),
            (Some(Mode::TakeoverListen), &[S], &[C, S], &[C]),
        ];
        for (mode, customer, agent, supervisor) in table {
            let m = one(mode);
            assert_eq!(m.hears(C), set(customer), "customer in {mode:?}");
            assert_eq!(m.hears(A), set(agent), "agent in {mode:?}");
            assert_eq!(m.hears(S), set(supervisor), "supervisor in {mode:?}");
        }
    }

    #[test]
    fn customer_never_hears_a_listening_or_whispering_supervisor() {
        for a in [Mode::Listen, Mode::Whisper] {
            for b in [None, Some(Mode::Listen), Some(Mode::Whisper)] {
                let m = Matrix::from_modes(&[Some(a), b, Some(Mode::Listen), None]);
                assert_eq!(m.hears(C), LegSet::of(A));
            }
        }
    }

    #[test]
    fn supervisors_hear_each_other_only_in_barge() {
        let s2 = LegId(3);
        let m = Matrix::from_modes(&[Some(Mode::Listen), Some(Mode::Barge), None, None]);
        assert_eq!(m.hears(S), set(&[C, A, s2]));
        assert_eq!(m.hears(s2), set(&[C, A]));
        assert_eq!(m.hears(C), set(&[A, s2]));
        assert_eq!(m.hears(A), set(&[C, s2]));
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in Mode::ALL {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
        }
        assert_eq!("coach".parse::<Mode>(), Err(UnknownMode));
    }

    #[test]
    fn legset_single() {
        assert_eq!(set(&[A]).single(), Some(A));
        assert_eq!(set(&[A, C]).single(), None);
        assert_eq!(LegSet::EMPTY.single(), None);
    }
}
