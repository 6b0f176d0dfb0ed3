//! The tests' client of the daemon's HTTP API (docs/api.md): the bench's
//! [`earshot_bench::http::Client`] (the load generator's too), with the request's timing, the
//! admin token by default, and a guard against sending from outside a test's namespaces.

use std::net::SocketAddr;
use std::time::Instant;

use earshot_bench::http::Client;
use serde_json::Value;

use crate::netns::NsId;

/// One HTTP exchange's outcome. Non-2xx answers are values, not errors: tests assert on them.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
    /// When the request started to be sent and when the answer was read.
    pub sent_at: Instant,
    pub answered_at: Instant,
}

impl Reply {
    /// The body, after asserting the status; the panic names the request and shows the body.
    pub fn expect(self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status, status,
            "{what}: HTTP {} (expected {status}), body: {}",
            self.status, self.text
        );
        self.body
    }
}

/// The bootstrap admin token the test daemons are configured with (`[auth] admin_token`,
/// `--admin-token`); every [`Api`] sends it.
pub const ADMIN_TOKEN: &str = "es_e2e-admin-token-0123456789abcdefghijkl";

pub struct Api {
    client: Client,
    /// When set, requests may only be made from a thread in one of these network namespaces
    /// (the daemon's address exists only there; anywhere else it would be routed off the
    /// machine).
    namespaces: Vec<NsId>,
}

impl Api {
    /// A client of a daemon on loopback.
    pub fn new(http_addr: SocketAddr) -> Api {
        Api::confined(http_addr, Vec::new())
    }

    /// A client that refuses to send unless the calling thread is in one of `namespaces`
    /// (none: no check).
    pub fn confined(http_addr: SocketAddr, namespaces: Vec<NsId>) -> Api {
        Api {
            client: Client::new(http_addr, Some(ADMIN_TOKEN)),
            namespaces,
        }
    }

    /// One exchange; panics on a transport error (no connection, timeout).
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// One exchange; a transport error (no connection, timeout) is an `Err` with its text.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        if !self.namespaces.is_empty() {
            assert!(
                self.namespaces.contains(&NsId::current()),
                "{method} {path} from a thread outside the test's network namespaces: refused"
            );
        }
        let sent_at = Instant::now();
        let reply = self
            .client
            .exchange(method, path, body)
            .map_err(|e| format!("transport error: {e}"))?;
        let answered_at = Instant::now();
        Ok(Reply {
            status: reply.status,
            body: reply.json(),
            text: reply.text,
            sent_at,
            answered_at,
        })
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.request("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None)
    }

    /// `GET /metrics` as text.
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: HTTP {}", r.status);
        r.text
    }
}

/// The sum of every sample of `metric` whose label set contains all of `labels`
/// (`name="value"` pairs) in Prometheus text exposition format; `None` if there is none.
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (label_part, value_part) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(close) = inner.find('}') else {
                continue;
            };
            (&inner[..close], &inner[close + 1..])
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue; // another metric with this one's name as a prefix
        };
        let wanted = labels.iter().all(|(k, v)| {
            label_part
                .split(',')
                .any(|kv| kv.trim() == format!("{k}=\"{v}\""))
        });
        if !wanted {
            continue;
        }
        if let Some(v) = value_part
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn metric_sum_filters_by_labels_and_sums_workers() {
        let text = "# HELP earshot_packets_dropped_total x\n\
                    earshot_packets_dropped_total{reason=\"wrong_source\",worker=\"0\"} 3\n\
                    earshot_packets_dropped_total{reason=\"malformed\",worker=\"0\"} 7\n\
                    earshot_packets_dropped_total{worker=\"1\",reason=\"wrong_source\"} 2\n\
                    earshot_packets_dropped_totalx{reason=\"wrong_source\"} 100\n\
                    earshot_calls 4\n";
        let m = "earshot_packets_dropped_total";
        assert_eq!(
            metric_sum(text, m, &[("reason", "wrong_source")]),
            Some(5.0)
        );
        assert_eq!(metric_sum(text, m, &[]), Some(12.0));
        assert_eq!(metric_sum(text, "earshot_calls", &[]), Some(4.0));
        assert_eq!(metric_sum(text, m, &[("reason", "nope")]), None);
    }
}
