//! A blocking client of earshotd's HTTP API, shared by the load generator, `setuprate` and the
//! end-to-end tests (`earshot_tests::api`): plain HTTP to loopback or a test namespace only, one
//! keep-alive connection pool per [`Client`], JSON bodies, a bearer token.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

/// How long one exchange may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's address in an `--api` URL: `http://IP:PORT` or `http://localhost:PORT`
/// (no host names, no path).
pub fn api_addr(url: &str) -> Result<SocketAddr, String> {
    let hostport = url
        .strip_prefix("http://")
        .ok_or("--api must start with http://")?
        .trim_end_matches('/');
    match hostport.strip_prefix("localhost:") {
        Some(port) => Ok(SocketAddr::new(
            Ipv4Addr::LOCALHOST.into(),
            port.parse().map_err(|_| "bad --api port")?,
        )),
        None => hostport
            .parse()
            .map_err(|_| format!("--api: {hostport} is not ip:port")),
    }
}

/// One answer: any status (non-2xx answers are values, not errors) and the body as text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub text: String,
}

impl Reply {
    /// The body as JSON; `Null` if empty or not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// The `Authorization` header's value (`Bearer …`); none: no header.
    auth: Option<String>,
}

impl Client {
    /// A client of the daemon at `addr`, presenting `token` as a bearer token (none: no
    /// `Authorization` header).
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Loopback or a namespace of our own: an HTTP_PROXY in the environment must not
            // capture it.
            .proxy(None)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Client {
            base: format!("http://{addr}"),
            agent,
            auth: None,
        }
        .with_token(token)
    }

    /// This client with another bearer token (none: no `Authorization` header).
    pub fn with_token(mut self, token: Option<&str>) -> Client {
        self.auth = token.map(|t| format!("Bearer {t}"));
        self
    }

    /// One exchange: `GET`, `DELETE`, or `POST`/`PATCH` with `body` as JSON (`{}` if none). A
    /// transport error (no connection, timeout) is an `Err`; any HTTP status is an answer.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ureq::Error> {
        let url = format!("{}{path}", self.base);
        let json = || body.map_or_else(|| "{}".to_owned(), Value::to_string);
        let result = match method {
            "GET" => self.authorized(self.agent.get(&url)).call(),
            "DELETE" => self.authorized(self.agent.delete(&url)).call(),
            "POST" => self
                .authorized(self.agent.post(&url))
                .content_type("application/json")
                .send(json()),
            "PATCH" => self
                .authorized(self.agent.patch(&url))
                .content_type("application/json")
                .send(json()),
            "PUT" => self
                .authorized(self.agent.put(&url))
                .content_type("application/json")
                .send(json()),
            _ => panic!("unsupported method {method}"),
        };
        let mut response = result?;
        Ok(Reply {
            status: response.status().as_u16(),
            text: response.body_mut().read_to_string().unwrap_or_default(),
        })
    }

    /// [`Client::exchange`] expecting `status`: the JSON body, else an error naming the request,
    /// the status and the answer's error code.
    pub fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Result<Value, String> {
        let reply = self
            .exchange(method, path, body)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let value = reply.json();
        if reply.status != status {
            let code = value
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("?");
            return Err(format!("{method} {path}: HTTP {} ({code})", reply.status));
        }
        Ok(value)
    }

    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(value) => req.header("authorization", value),
            None => req,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_ip_and_port() {
        let local = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert_eq!(api_addr("http://127.0.0.1:8080"), Ok(local(8080)));
        assert_eq!(api_addr("http://localhost:18080/"), Ok(local(18080)));
        assert_eq!(api_addr("http://[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        for bad in [
            "127.0.0.1:8080",
            "https://127.0.0.1:8080",
            "http://example.com:80",
            "http://localhost:x",
            "http://127.0.0.1",
            "http://127.0.0.1:8080/v1",
        ] {
            assert!(api_addr(bad).is_err(), "{bad}");
        }
    }
}
