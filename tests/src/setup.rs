//! Where a scenario runs: the daemon and its endpoints on loopback with io_uring (the default),
//! or in a pair of network namespaces joined by a veth ([`crate::netns`]) with either backend.
//!
//! The scenarios of [`crate::suite`] take a [`Setup`] and run unchanged on each, with the same
//! assertions. On a veth, [`on_veth`] makes the namespaces, runs the scenario on a thread in
//! the peer namespace (so its endpoints and API requests go over the veth), and the daemon is
//! started from a thread in the appliance namespace with the veth's address as its HTTP and
//! media address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use controlplane::config::{BackendKind, Config};

use crate::endpoint::Endpoint;
use crate::netns::{self, Veth};
use crate::ports;

/// Media ports of a loopback daemon: 50 legs, many more than any scenario opens.
const LOOPBACK_PORTS: u16 = 100;

/// The network a scenario's daemon and endpoints share.
#[derive(Debug, Clone)]
pub enum Net {
    /// Everything on 127.0.0.1 in the test's own namespace.
    Loopback,
    /// The daemon in the pair's appliance namespace on its veth address; endpoints and API
    /// requests from the peer namespace.
    Veth(Arc<Veth>),
}

/// A scenario's network, backend and worker count.
#[derive(Debug, Clone)]
pub struct Setup {
    pub net: Net,
    pub backend: BackendKind,
    pub workers: usize,
}

impl Setup {
    /// Loopback with io_uring and one worker: the suite's original setup.
    pub fn loopback() -> Setup {
        Setup {
            net: Net::Loopback,
            backend: BackendKind::Uring,
            workers: 1,
        }
    }

    pub fn veth(&self) -> Option<&Arc<Veth>> {
        match &self.net {
            Net::Loopback => None,
            Net::Veth(v) => Some(v),
        }
    }

    /// The address the appliance listens on (HTTP and media).
    pub fn appliance_ip(&self) -> IpAddr {
        match &self.net {
            Net::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Net::Veth(v) => IpAddr::V4(v.appliance_ip),
        }
    }

    /// The address endpoints bind.
    pub fn endpoint_ip(&self) -> IpAddr {
        match &self.net {
            Net::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Net::Veth(v) => IpAddr::V4(v.peer_ip),
        }
    }

    /// An endpoint on [`Setup::endpoint_ip`]. On a veth the calling thread must be in the
    /// peer namespace (binding fails anywhere else: the address exists only there).
    pub fn endpoint(&self, name: &'static str) -> Endpoint {
        Endpoint::bind_on(name, self.endpoint_ip())
    }

    /// Points `config` at this setup: HTTP and NG on ephemeral ports of the appliance address,
    /// media on that address, the backend, its interface and the workers.
    pub fn configure(&self, config: &mut Config) {
        config.http.listen = SocketAddr::new(self.appliance_ip(), 0);
        config.ng.listen.0 = Some(SocketAddr::new(self.appliance_ip(), 0));
        config.media.ip = self.appliance_ip();
        config.engine.backend = self.backend;
        config.engine.workers = self.workers;
        match &self.net {
            Net::Veth(v) => config.engine.interface = Some(v.appliance_if.clone()),
            // On the machine's loopback, other daemons and programs bind ports too: a range the
            // OS had free (in a namespace of its own, the default range cannot collide).
            Net::Loopback => {
                (config.media.port_min, config.media.port_max) =
                    ports::udp_range_on(self.appliance_ip(), LOOPBACK_PORTS);
            }
        }
    }

    /// E.g. `afxdp on es3f2a1 (10.77.2.1), 1 worker`, for failure reports.
    pub fn describe(&self) -> String {
        let net = match &self.net {
            Net::Loopback => "loopback".to_owned(),
            Net::Veth(v) => format!(
                "{} ({}, {} queue(s)) in {}, peers in {}",
                v.appliance_if, v.appliance_ip, v.queues, v.appliance, v.peer
            ),
        };
        format!(
            "backend {} on {net}, {} worker(s)",
            self.backend, self.workers
        )
    }
}

/// Runs `body` on a veth of its own with `backend` and one worker: see [`on_veth_with`].
pub fn on_veth(backend: BackendKind, body: impl FnOnce(&Setup) + Send) {
    on_veth_with(1, backend, body);
}

/// Creates a namespace pair whose veth has `queues` queues, runs `body` on a thread in the
/// peer namespace with a setup of `queues` workers on `backend`, and deletes the namespaces
/// (also when `body` panics; the panic is then resumed). Needs root: see [`netns::assert_root`].
pub fn on_veth_with(queues: u32, backend: BackendKind, body: impl FnOnce(&Setup) + Send) {
    netns::assert_root();
    // Created and dropped on this thread, whose mount namespace is the machine's: deleting a
    // namespace unmounts it, and that must not happen in a thread's private copy.
    let veth = Arc::new(Veth::with_queues(queues));
    let setup = Setup {
        net: Net::Veth(Arc::clone(&veth)),
        backend,
        workers: queues as usize,
    };
    veth.in_peer(|| body(&setup));
}
