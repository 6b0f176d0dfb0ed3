//! A blocking client for the daemon's HTTP API (docs/api.md).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::NsId;

/// `req` with an `Authorization` header, when there is one.
fn with_auth<B>(req: ureq::RequestBuilder<B>, auth: Option<&str>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(value) => req.header("authorization", value),
        None => req,
    }
}

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
/// `--admin-token`); every [`Api`] sends it unless given another.
pub const ADMIN_TOKEN: &str = "es_e2e-admin-token-0123456789abcdefghijkl";

pub struct Api {
    base: String,
    /// Sent as `Authorization: Bearer …` (none: no header).
    token: Option<String>,
    agent: ureq::Agent,
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
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Loopback or a test namespace only: an HTTP_PROXY in the environment must not
            // capture it.
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Api {
            base: format!("http://{http_addr}"),
            token: Some(ADMIN_TOKEN.to_owned()),
            agent,
            namespaces,
        }
    }

    /// This client with another bearer token (none: no `Authorization` header).
    pub fn with_token(mut self, token: Option<&str>) -> Api {
        self.token = token.map(str::to_owned);
        self
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
        let url = format!("{}{path}", self.base);
        if !self.namespaces.is_empty() {
            assert!(
                self.namespaces.contains(&NsId::current()),
                "{method} {url} from a thread outside the test's network namespaces: refused"
            );
        }
        let sent_at = Instant::now();
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let auth = auth.as_deref();
        let result = match (method, body) {
            ("GET", _) => with_auth(self.agent.get(&url), auth).call(),
            ("DELETE", _) => with_auth(self.agent.delete(&url), auth).call(),
            ("POST", b) => with_auth(self.agent.post(&url), auth)
                .content_type("application/json")
                .send(b.map_or_else(|| "{}".to_owned(), Value::to_string)),
            ("PATCH", b) => with_auth(self.agent.patch(&url), auth)
                .content_type("application/json")
                .send(b.map_or_else(|| "{}".to_owned(), Value::to_string)),
            _ => panic!("unsupported method {method}"),
        };
        let mut response = result.map_err(|e| format!("transport error: {e}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let answered_at = Instant::now();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            text,
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
