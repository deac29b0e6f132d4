//! The built-in health checks, the plain-HTTP fetch they share, and the
//! hosts they may reach.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rewind_core::deploy::{CheckSpec, Condition};
use rewind_core::InvalidInput;

use super::{CheckFuture, CheckOutcome, HealthCheck};
use crate::error::Error;

/// Longest a fetch may take, whatever the interval.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer body read.
const MAX_BODY: usize = 1 << 20;

/// Which hosts built-in checks may fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CheckHosts {
    /// Any host (the library default: the program writes its own URLs).
    #[default]
    Any,
    /// Only these, as `host` (any port) or `host:port`; an empty list
    /// refuses every built-in check (`rewind serve`'s default).
    Only(Vec<String>),
}

impl CheckHosts {
    /// Refuses a built-in check whose URL is not plain `http://` to an
    /// allowed host, with what to do about it.
    pub fn allows(&self, spec: &CheckSpec) -> Result<(), Error> {
        let url = match spec {
            CheckSpec::Prometheus { url, .. } | CheckSpec::Http { url, .. } => url,
            CheckSpec::Custom { .. } => return Ok(()),
        };
        let (host, port) = host_and_port(url)?;
        let allowed = match self {
            CheckHosts::Any => true,
            CheckHosts::Only(hosts) => hosts.iter().any(|entry| {
                match entry
                    .rsplit_once(':')
                    .filter(|(_, p)| p.parse::<u16>().is_ok())
                {
                    Some((h, p)) => h.eq_ignore_ascii_case(&host) && p == port.to_string(),
                    None => entry.eq_ignore_ascii_case(&host),
                }
            }),
        };
        if allowed {
            Ok(())
        } else {
            Err(invalid(format!(
                "check URL '{url}': host '{host}:{port}' is not allowed; start the server with \
                 --allow-check-host {host}:{port} to allow it"
            )))
        }
    }
}

fn invalid(reason: String) -> Error {
    Error::Invalid(InvalidInput::Config(reason))
}

/// The host and port of a plain `http://` URL.
fn host_and_port(url: &str) -> Result<(String, u16), Error> {
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid(format!("check URL '{url}' does not parse: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(invalid(format!(
            "check URL '{url}': only http:// is supported, not {other}:// (put a proxy in front)"
        )))
        }
        None => return Err(invalid(format!("check URL '{url}' needs http://"))),
    }
    let host = uri
        .host()
        .ok_or_else(|| invalid(format!("check URL '{url}' has no host")))?;
    Ok((host.to_owned(), uri.port_u16().unwrap_or(80)))
}

/// `GET url` over plain HTTP/1.1: the status and up to 1 MiB of body.
async fn get(url: &str, timeout: Duration) -> Result<(u16, Bytes), String> {
    let fetch = async {
        let uri: Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let (host, port) = host_and_port(url).map_err(|e| e.to_string())?;
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {host}:{port}: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::USER_AGENT, "rewind-deploy")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("building the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {url}: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    match tokio::time::timeout(timeout.min(FETCH_TIMEOUT), fetch).await {
        Ok(result) => result,
        Err(_) => Err(format!("GET {url}: no answer in time")),
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved kept).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A Prometheus instant query whose result must meet a condition: a
/// scalar, or a vector of exactly one sample (aggregate with `max()`,
/// `sum()`... otherwise). No data, several samples, or an unreachable
/// Prometheus are errors, not failures.
#[derive(Clone, Debug)]
pub struct PrometheusCheck {
    url: String,
    query: String,
    condition: Condition,
}

impl PrometheusCheck {
    /// A check of `query` against the Prometheus at `url` (e.g.
    /// `http://127.0.0.1:9090`).
    pub fn new(url: impl Into<String>, query: impl Into<String>, condition: Condition) -> Self {
        PrometheusCheck {
            url: url.into().trim_end_matches('/').to_owned(),
            query: query.into(),
            condition,
        }
    }

    /// The value of the query's result, or why there is none.
    fn value(body: &[u8]) -> Result<f64, String> {
        let answer: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("not a Prometheus answer: {e}"))?;
        if answer["status"] != "success" {
            return Err(format!(
                "Prometheus answered {}: {}",
                answer["errorType"].as_str().unwrap_or("an error"),
                answer["error"].as_str().unwrap_or("")
            ));
        }
        let data = &answer["data"];
        let sample = match data["resultType"].as_str() {
            Some("scalar") => &data["result"],
            Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
                Some([one]) => &one["value"],
                Some([]) => return Err("the query returned no sample".into()),
                Some(many) => {
                    return Err(format!(
                        "the query returned {} samples; a check needs one (aggregate it, e.g. max(...))",
                        many.len()
                    ))
                }
                None => return Err("a vector answer without a result list".into()),
            },
            other => {
                return Err(format!(
                    "the query's result is a {}, not a scalar or a vector",
                    other.unwrap_or("missing type")
                ))
            }
        };
        let text = sample[1]
            .as_str()
            .ok_or_else(|| "a sample without a value".to_owned())?;
        let value: f64 = text
            .parse()
            .map_err(|_| format!("the sample value '{text}' is not a number"))?;
        if value.is_nan() {
            return Err("the sample value is NaN".into());
        }
        Ok(value)
    }
}

impl HealthCheck for PrometheusCheck {
    fn spec(&self) -> CheckSpec {
        CheckSpec::Prometheus {
            url: self.url.clone(),
            query: self.query.clone(),
            condition: self.condition,
        }
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let url = format!("{}/api/v1/query?query={}", self.url, encode(&self.query));
            let (status, body) = match get(&url, FETCH_TIMEOUT).await {
                Ok(answer) => answer,
                Err(reason) => return CheckOutcome::Error { reason },
            };
            match Self::value(&body) {
                Ok(value) if self.condition.holds(value) => {
                    CheckOutcome::Pass { value: Some(value) }
                }
                Ok(value) => CheckOutcome::Fail {
                    reason: format!("{value} is not {}", self.condition),
                    value: Some(value),
                },
                Err(reason) if status == 200 => CheckOutcome::Error { reason },
                Err(reason) => CheckOutcome::Error {
                    reason: format!("status {status}: {reason}"),
                },
            }
        })
    }
}

/// An HTTP `GET` that must answer a status (200 by default). Another
/// status is a failure; no answer is an error.
#[derive(Clone, Debug)]
pub struct HttpCheck {
    url: String,
    expect_status: u16,
}

impl HttpCheck {
    /// A check that `GET url` answers `expect_status`.
    pub fn new(url: impl Into<String>, expect_status: u16) -> Self {
        HttpCheck {
            url: url.into(),
            expect_status,
        }
    }
}

impl HealthCheck for HttpCheck {
    fn spec(&self) -> CheckSpec {
        CheckSpec::Http {
            url: self.url.clone(),
            expect_status: self.expect_status,
        }
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            match get(&self.url, FETCH_TIMEOUT).await {
                Ok((status, _)) if status == self.expect_status => CheckOutcome::Pass {
                    value: Some(f64::from(status)),
                },
                Ok((status, _)) => CheckOutcome::Fail {
                    reason: format!("status {status}, expected {}", self.expect_status),
                    value: Some(f64::from(status)),
                },
                Err(reason) => CheckOutcome::Error { reason },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_answers_read_as_one_value() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.95"]}]}}"#;
        assert_eq!(PrometheusCheck::value(vector), Ok(0.95));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#;
        assert_eq!(PrometheusCheck::value(scalar), Ok(3.0));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(PrometheusCheck::value(empty)
            .unwrap_err()
            .contains("no sample"));
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(PrometheusCheck::value(two)
            .unwrap_err()
            .contains("2 samples"));
        let error = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(PrometheusCheck::value(error)
            .unwrap_err()
            .contains("parse error"));
    }

    #[test]
    fn only_allowed_hosts_pass() {
        let check = |url: &str| CheckSpec::Http {
            url: url.into(),
            expect_status: 200,
        };
        let hosts = CheckHosts::Only(vec!["127.0.0.1:9090".into(), "metrics".into()]);
        assert!(hosts.allows(&check("http://127.0.0.1:9090/x")).is_ok());
        assert!(hosts.allows(&check("http://METRICS:8080/")).is_ok());
        let refused = hosts.allows(&check("http://127.0.0.1:22/")).unwrap_err();
        assert!(refused
            .to_string()
            .contains("--allow-check-host 127.0.0.1:22"));
        assert!(hosts.allows(&check("http://169.254.169.254/")).is_err());
        assert!(CheckHosts::Only(vec![])
            .allows(&check("http://a/"))
            .is_err());
        assert!(CheckHosts::Any.allows(&check("https://a/")).is_err());
        assert!(CheckHosts::Any.allows(&check("http://a/")).is_ok());
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode("max(a{b=\"c\"}) < 1"),
            "max%28a%7Bb%3D%22c%22%7D%29%20%3C%201"
        );
    }
}
