//! `[ng]`: the rtpengine NG protocol listener (docs/ng.md): where it listens, whom it answers,
//! who supervises when an NG command names nobody, and which NG party is the customer.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConfigError, invalid};
use crate::domain::call::Party;

/// The NG port rtpengine's modules are configured with by default (`rtpengine_sock`).
pub const NG_PORT_DEFAULT: u16 = 2223;

/// `[ng]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NgSection {
    /// The UDP address of the NG listener; `""` (or absent from the environment/flags as
    /// an empty value): no listener. Port 0 binds any free port. Not a wildcard: replies must
    /// leave from the address the request was sent to (the modules' sockets are connected).
    pub listen: Listen,
    /// Source networks whose datagrams are answered (`10.0.0.0/8`, or a bare address); any
    /// other source is dropped and counted (docs/design.md §4: the NG listener has no tokens).
    pub allow: Vec<Network>,
    /// Which NG party is the customer: the offerer's (`offerer = "customer"`, the default) or
    /// the answerer's (`offerer = "agent"`, e.g. outbound campaigns). A `label` in the request
    /// overrides it per call.
    pub offerer: Offerer,
    /// Who supervises when an NG supervision command names no supervisor.
    pub identity: NgIdentity,
}

impl Default for NgSection {
    fn default() -> Self {
        NgSection {
            listen: Listen(Some(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                NG_PORT_DEFAULT,
            )))),
            allow: vec![
                Network::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).expect("valid"),
                Network::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128).expect("valid"),
            ],
            offerer: Offerer::Customer,
            identity: NgIdentity::default(),
        }
    }
}

impl NgSection {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(addr) = self.listen.0
            && (addr.ip().is_unspecified() || addr.ip().is_multicast())
        {
            return Err(invalid(
                "ng.listen",
                format!(
                    "{addr} is not one local address: a reply could leave from another address \
                     than the request's, and the softswitch's connected socket would drop it"
                ),
            ));
        }
        if self.listen.0.is_some() && self.allow.is_empty() {
            return Err(invalid(
                "ng.allow",
                "is empty, so every request would be dropped (set ng.listen = \"\" to turn NG off)",
            ));
        }
        if let Some(id) = &self.identity.supervisor_id {
            crate::domain::ids::UserId::parse(id)
                .map_err(|e| invalid("ng.identity.supervisor_id", e.to_string()))?;
        }
        if let Some(number) = &self.identity.registered_number {
            crate::domain::call::parse_registered_number(number)
                .map_err(|e| invalid("ng.identity.registered_number", e.to_string()))?;
        }
        Ok(())
    }

    /// Whether `ip` may talk to the listener.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(ip))
    }
}

/// `[ng.identity]`: the supervisor NG supervision commands act as when their flags or labels
/// name none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NgIdentity {
    /// The supervisor's user id (docs/api.md `supervisor_id`).
    pub supervisor_id: Option<String>,
    /// The supervisor's registered number (docs/design.md §2.8); without one (here, in the
    /// command, or in the supervisor's settings) the supervision fails as over HTTP.
    pub registered_number: Option<String>,
}

/// The party the NG offerer (the `offer`'s from-tag) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Offerer {
    #[default]
    Customer,
    Agent,
}

impl Offerer {
    /// The offerer's party; the answerer is the other one.
    pub const fn party(self) -> Party {
        match self {
            Offerer::Customer => Party::Customer,
            Offerer::Agent => Party::Agent,
        }
    }
}

impl FromStr for Offerer {
    type Err = String;
    fn from_str(s: &str) -> Result<Offerer, String> {
        match s {
            "customer" => Ok(Offerer::Customer),
            "agent" => Ok(Offerer::Agent),
            _ => Err(format!("unknown party {s:?} (expected customer or agent)")),
        }
    }
}

/// `ng.listen`: an address, or off (written `""`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Listen(None));
        }
        s.parse()
            .map(|a| Listen(Some(a)))
            .map_err(|e| format!("{e} (expected IP:PORT, or an empty value to turn NG off)"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => Ok(()),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A source network of `ng.allow`: `address/prefix`, or a bare address (one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The network's address, host bits cleared.
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `None` when `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Network> {
        let bits = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (prefix <= bits).then(|| Network {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the network. An IPv4-mapped IPv6 source (`::ffff:a.b.c.d`, what a
    /// dual-stack socket reports) is its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

/// `addr` with every bit past the first `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Network, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|e| format!("{s:?}: {e} (expected an address or address/prefix)"))?;
        let prefix = match prefix {
            None if addr.is_ipv4() => 32,
            None => 128,
            Some(p) => p
                .parse::<u8>()
                .map_err(|e| format!("{s:?}: prefix {p:?}: {e}"))?,
        };
        Network::new(addr, prefix)
            .ok_or_else(|| format!("{s:?}: prefix /{prefix} is longer than the address"))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `EARSHOT_NG_ALLOW` / `--ng-allow`: networks separated by commas.
pub(super) fn parse_networks(s: &str) -> Result<Vec<Network>, String> {
    s.split(',')
        .filter(|n| !n.trim().is_empty())
        .map(str::parse)
        .collect()
}
