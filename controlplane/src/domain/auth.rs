//! Access control (docs/design.md §4), pure: bearer tokens, roles, the role × endpoint-class matrix
//! and the group-scoped supervision rights. The HTTP layer looks a token's hash up in the store
//! and asks this module whether the request may proceed.
//!
//! Tokens are random (256 bits) and shown once; only their SHA-256 is stored, so a stolen
//! database does not hold usable credentials.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use dataplane::media::matrix::Mode;
use sha2::{Digest, Sha256};

use crate::domain::ids::UserId;

/// The prefix that makes earshot tokens recognisable (e.g. by secret scanners).
const TOKEN_PREFIX: &str = "es_";

/// What a token holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Supervisor,
    Agent,
    /// A softswitch (service account): drives calls and reports their events.
    Softswitch,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Supervisor, Role::Agent, Role::Softswitch];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::Softswitch => "softswitch",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown role (expected admin, supervisor, agent or softswitch)")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownRole)
    }
}

/// A bearer token in the clear: only ever shown to its holder, once.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The SHA-256 of a token: what the store keeps and looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl Token {
    /// A token made of 32 random bytes the caller drew (reading the OS's random number
    /// generator is I/O: the app does it, `app::tokens`).
    pub fn from_random(bytes: [u8; 32]) -> Token {
        Token(format!("{TOKEN_PREFIX}{}", B64URL.encode(bytes)))
    }

    /// Wraps a token given by configuration (e.g. the bootstrap admin token). At least 32
    /// characters, so a configured token is not weaker than a generated one.
    pub fn from_config(s: &str) -> Result<Token, WeakToken> {
        let s = s.trim();
        if s.len() < 32 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakToken);
        }
        Ok(Token(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        hash(&self.0)
    }
}

/// A configured token that is too short or has spaces or control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a token must be at least 32 printable characters without spaces")]
pub struct WeakToken;

fn hash(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Why a request carries no usable credentials (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("missing Authorization header (expected: Bearer <token>)")]
    Missing,
    #[error("malformed Authorization header (expected: Bearer <token>)")]
    Malformed,
}

/// The hash of the token in an `Authorization: Bearer …` header value (RFC 6750 §2.1).
pub fn bearer(header: Option<&str>) -> Result<TokenHash, Unauthenticated> {
    let value = header.ok_or(Unauthenticated::Missing)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(Unauthenticated::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(Unauthenticated::Malformed);
    }
    Ok(hash(token))
}

/// The classes of endpoints, each with one rule for who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointClass {
    /// Tokens, users, groups' configuration, webhooks: admins only.
    Administration,
    /// Creating and deleting calls, reporting call and supervisor-leg events: softswitches
    /// (and admins, for operations).
    Signalling,
    /// Starting, changing and stopping supervisions: supervisors (group rights checked per
    /// request by [`may_supervise`]) and admins.
    Supervision,
    /// Supervisor consoles: group views, ringing calls, take-call, forced agent changes.
    Console,
    /// An agent's own state, dashboard and messages.
    AgentSelf,
    /// Reading calls, alerts and the event stream: everyone authenticated sees what their
    /// scope allows (the handler filters).
    Read,
}

impl EndpointClass {
    pub const ALL: [EndpointClass; 6] = [
        EndpointClass::Administration,
        EndpointClass::Signalling,
        EndpointClass::Supervision,
        EndpointClass::Console,
        EndpointClass::AgentSelf,
        EndpointClass::Read,
    ];
}

/// Whether `role` may call endpoints of `class` at all (the role × class matrix).
pub fn allowed(role: Role, class: EndpointClass) -> bool {
    use EndpointClass as C;
    match (role, class) {
        (Role::Admin, C::AgentSelf) => false,
        (Role::Admin, _) => true,
        (Role::Softswitch, C::Signalling | C::Read) => true,
        (Role::Supervisor, C::Supervision | C::Console | C::Read) => true,
        (Role::Agent, C::AgentSelf | C::Read) => true,
        _ => false,
    }
}

/// Who is calling: the token's user (none for service and bootstrap tokens), its roles and the
/// token's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Parsed once, when the token was loaded or created (docs/design.md §9: one id type per
    /// concept, parsed once).
    pub user_id: Option<UserId>,
    /// A token acts with its own role only.
    pub roles: Vec<Role>,
    pub token_id: String,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// The audit log's actor: `user:<id>`, else `token:<id>`.
    pub fn actor(&self) -> String {
        match &self.user_id {
            Some(user) => format!("user:{user}"),
            None => format!("token:{}", self.token_id),
        }
    }
}

/// A supervisor's rights over the agents of one group (docs/design.md §4.3: listen rights are
/// distinct from whisper / barge / takeover rights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupRights {
    pub listen: bool,
    /// Whisper, barge, takeover and takeover_listen.
    pub intervene: bool,
    /// Forced logon/logoff of members, forced agent state changes.
    pub admin: bool,
}

/// Why a supervisor may not supervise in a mode (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("you do not supervise a group of this agent")]
    NotYourAgent,
    #[error("your rights over this agent's groups allow listening only")]
    ListenOnly,
    #[error("your rights over this agent's groups do not include listening")]
    NoListenRight,
}

impl Denied {
    pub const fn code(self) -> &'static str {
        match self {
            Denied::NotYourAgent => "not_your_agent",
            Denied::ListenOnly => "listen_only",
            Denied::NoListenRight => "no_listen_right",
        }
    }
}

/// Whether a supervisor with `rights` over the agent (the union over the groups they share
/// with the agent; `None`: they share none) may supervise in `mode`.
pub fn may_supervise(rights: Option<GroupRights>, mode: Mode) -> Result<(), Denied> {
    let rights = rights.ok_or(Denied::NotYourAgent)?;
    match mode {
        Mode::Listen if rights.listen => Ok(()),
        Mode::Listen => Err(Denied::NoListenRight),
        _ if rights.intervene => Ok(()),
        _ => Err(Denied::ListenOnly),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hashed_and_parsed_from_bearer_headers() {
        let t = Token::from_random([7; 32]);
        assert!(t.expose().starts_with("es_") && t.expose().len() == 3 + 43);
        assert_ne!(Token::from_random([8; 32]), t);
        assert_eq!(
            bearer(Some(&format!("Bearer {}", t.expose()))),
            Ok(t.hash())
        );
        assert_eq!(
            bearer(Some(&format!("bearer  {} ", t.expose()))),
            Ok(t.hash())
        );
        assert_eq!(bearer(None), Err(Unauthenticated::Missing));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic abc",
            t.expose(),
            "Bearer a b",
        ] {
            assert_eq!(
                bearer(Some(bad)),
                Err(Unauthenticated::Malformed),
                "{bad:?}"
            );
        }
        assert!(
            !format!("{t:?}").contains(t.expose()),
            "Debug never shows a token"
        );
        // SHA-256 of "abc" (FIPS 180-2 appendix B.1).
        assert_eq!(hash("abc").0[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn configured_tokens_must_be_strong() {
        assert!(Token::from_config("short").is_err());
        assert!(Token::from_config(&"x y".repeat(20)).is_err());
        assert!(Token::from_config(&"k".repeat(32)).is_ok());
    }

    /// Every role against every endpoint class.
    #[test]
    fn role_by_endpoint_class_matrix() {
        use EndpointClass as C;
        let table: [(Role, [bool; 6]); 4] = [
            //                 Admin  Signal Superv Console AgentSelf Read
            (Role::Admin, [true, true, true, true, false, true]),
            (Role::Supervisor, [false, false, true, true, false, true]),
            (Role::Agent, [false, false, false, false, true, true]),
            (Role::Softswitch, [false, true, false, false, false, true]),
        ];
        for (role, row) in table {
            for (class, expected) in C::ALL.into_iter().zip(row) {
                assert_eq!(allowed(role, class), expected, "{role} on {class:?}");
            }
        }
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("root".parse::<Role>(), Err(UnknownRole));
    }

    #[test]
    fn listen_rights_are_distinct_from_intervening() {
        let listen_only = GroupRights {
            listen: true,
            ..Default::default()
        };
        let full = GroupRights {
            listen: true,
            intervene: true,
            admin: false,
        };
        assert_eq!(may_supervise(None, Mode::Listen), Err(Denied::NotYourAgent));
        assert_eq!(
            may_supervise(Some(GroupRights::default()), Mode::Listen),
            Err(Denied::NoListenRight)
        );
        assert_eq!(may_supervise(Some(listen_only), Mode::Listen), Ok(()));
        for mode in [
            Mode::Whisper,
            Mode::Barge,
            Mode::Takeover,
            Mode::TakeoverListen,
        ] {
            assert_eq!(
                may_supervise(Some(listen_only), mode),
                Err(Denied::ListenOnly),
                "{mode}"
            );
            assert_eq!(may_supervise(Some(full), mode), Ok(()), "{mode}");
        }
    }
}
