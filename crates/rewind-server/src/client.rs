//! [`Client`]: the HTTP side of the `rewind` command line — HTTP/1 over
//! plain TCP, one connection per request, no TLS (put a proxy in front of a
//! remote server and reach it over loopback or a tunnel).

use std::fmt;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Why a request of the command line failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL cannot be used.
    #[error("invalid server URL '{url}': {reason}")]
    InvalidServer {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the server's address.
    #[error(
        "cannot reach the rewind server at {server}: {cause} (is `rewind serve` running \
         there? set --server or REWIND_SERVER)"
    )]
    Unreachable {
        /// The server URL.
        server: String,
        /// The connection error (in the message rather than chained, so it
        /// is said once).
        cause: std::io::Error,
    },
    /// The server refused the request: its `{"error": {"code", "message"}}`.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`snapshot_not_found`, ...).
        code: String,
        /// The API's message.
        message: String,
        /// The whole `error` object: some codes carry data beside the
        /// message (`paths` of a `conflict`, `forks` and
        /// `protected_snapshots` of a `delete_refused`). `Null` when the
        /// body was not the API's.
        details: Value,
    },
    /// The connection broke or the answer is not the API's.
    #[error("talking to {server}: {reason}")]
    Protocol {
        /// The server URL.
        server: String,
        /// What went wrong.
        reason: String,
    },
}

/// Tries of [`Client::send_write`] at most.
pub(crate) const WRITE_TRIES: usize = 5;

/// A fresh idempotency key: 128 bits from the process's hash seeds, the
/// time and a counter, as hex.
fn new_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The `ETag` header without its quotes: the revision of a document.
    pub etag: Option<String>,
    /// The JSON body; `Null` when empty.
    pub body: Value,
}

/// A client of one rewind server. Holds no connection: each request opens
/// its own, which is plenty for a command that makes one or two.
#[derive(Clone, Debug)]
pub struct Client {
    server: Server,
    /// Sent as `Authorization: Bearer <token>`.
    token: Option<String>,
    /// Sent as `X-Rewind-Reason`: recorded with every write.
    reason: Option<String>,
}

/// Where a server is: `http://host[:port][/prefix]`.
#[derive(Clone, Debug)]
struct Server {
    /// The URL as given, without a trailing `/`: named in errors.
    url: String,
    /// `host:port` to connect to.
    address: String,
    /// The `Host` header.
    host: HeaderValue,
    /// Path prefix before `/v1/...` (empty, or `/something` behind a proxy).
    prefix: String,
}

impl Server {
    fn parse(url: &str) -> Result<Server, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidServer {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim().trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "https is not supported: rewind speaks plain HTTP; reach a TLS proxy's \
                     backend or tunnel to it and use http://",
                ))
            }
            _ => return Err(invalid("expected http://HOST:PORT")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("expected http://HOST:PORT"))?;
        if uri.query().is_some() {
            return Err(invalid("a server URL takes no query"));
        }
        let port = authority.port_u16().unwrap_or(80);
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| invalid("the host is not a valid header value"))?;
        Ok(Server {
            url: trimmed.to_owned(),
            address: format!("{}:{port}", authority.host()),
            host,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

impl Client {
    /// A client of the server at `url` (`http://host:port`, optionally with
    /// a path prefix), authenticating with `token` if given.
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ClientError> {
        Ok(Client {
            server: Server::parse(url)?,
            token: token.filter(|t| !t.is_empty()),
            reason: None,
        })
    }

    /// This client, sending `reason` as `X-Rewind-Reason` with every
    /// request: the server records it with each write.
    pub fn with_reason(mut self, reason: Option<String>) -> Result<Client, ClientError> {
        if let Some(reason) = &reason {
            HeaderValue::from_str(reason).map_err(|_| ClientError::InvalidServer {
                url: self.server.url.clone(),
                reason: "the reason must be one line of text".into(),
            })?;
        }
        self.reason = reason.filter(|r| !r.trim().is_empty());
        Ok(self)
    }

    /// The server URL, as named in messages.
    pub fn server(&self) -> &str {
        &self.server.url
    }

    /// One request: `path` is the API path with its query (`/v1/...`),
    /// `if_match` a revision for `If-Match`. A non-2xx answer is
    /// [`ClientError::Api`] with the server's code and message.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
    ) -> Result<Reply, ClientError> {
        self.send_as(method, path, body, if_match, "application/json")
            .await
    }

    /// [`send`](Self::send) with the body's `Content-Type` (e.g.
    /// `application/merge-patch+json`).
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
        content_type: &'static str,
    ) -> Result<Reply, ClientError> {
        self.send_keyed(method, path, body, if_match, content_type, None)
            .await
    }

    async fn send_keyed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
        content_type: &'static str,
        key: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let mut request = self.request(method, path, body, content_type)?;
        if let Some(key) = key {
            request.headers_mut().insert(
                "idempotency-key",
                HeaderValue::from_str(key).expect("hex digits"),
            );
        }
        if let Some(revision) = if_match {
            request.headers_mut().insert(
                hyper::header::IF_MATCH,
                HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits and quotes"),
            );
        }
        let (response, connection) = self.exchange(request).await?;
        let status = response.status();
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_owned());
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.protocol(format!("reading the answer: {e}")))?
            .to_bytes();
        connection.abort();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                self.protocol(format!(
                    "HTTP {status} with a body that is not JSON ({e}): {}",
                    excerpt(&bytes)
                ))
            })?
        };
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body));
        }
        Ok(Reply {
            status: status.as_u16(),
            etag,
            body,
        })
    }

    /// A write that is safe to retry: sent with a new `Idempotency-Key`,
    /// and sent again with the same key while its outcome is unknown (503
    /// `outcome_unknown`, or the connection lost after the request went
    /// out) or it was refused for now (503 `unavailable`), waiting a second
    /// between tries, up to 5 tries. For the routes that
    /// honour the key: `PUT /v1/tenants/{t}`, `PUT` and `PATCH .../state`.
    pub async fn send_write(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
        content_type: &'static str,
    ) -> Result<Reply, ClientError> {
        let key = new_key();
        let mut tries = 0;
        loop {
            tries += 1;
            let result = self
                .send_keyed(
                    method.clone(),
                    path,
                    body,
                    if_match,
                    content_type,
                    Some(&key),
                )
                .await;
            let again = match &result {
                Err(ClientError::Api {
                    status: 503, code, ..
                }) => code == "outcome_unknown" || code == "unavailable",
                Err(ClientError::Protocol { .. }) => true,
                _ => false,
            };
            if !again || tries >= WRITE_TRIES {
                return result;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// `GET` of a server-sent event stream: the events as they come; with
    /// `last_event_id`, those after it first (`Last-Event-ID`).
    pub async fn events(
        &self,
        path: &str,
        last_event_id: Option<u64>,
    ) -> Result<EventStream, ClientError> {
        let mut request = self.request(Method::GET, path, None, "application/json")?;
        if let Some(id) = last_event_id {
            request.headers_mut().insert(
                "last-event-id",
                HeaderValue::from_str(&id.to_string()).expect("digits"),
            );
        }
        let (response, connection) = self.exchange(request).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.protocol(format!("reading the answer: {e}")))?
                .to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(api_error(status.as_u16(), &body));
        }
        Ok(EventStream {
            server: self.server.url.clone(),
            body: response.into_body(),
            parser: EventParser::default(),
            connection,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &'static str,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.server.prefix))
            .header(HOST, self.server.host.clone());
        if let Some(token) = &self.token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(reason) = &self.reason {
            builder = builder.header("x-rewind-reason", reason.as_str());
        }
        let payload = match body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(payload))
            .map_err(|e| ClientError::InvalidServer {
                url: self.server.url.clone(),
                reason: format!("cannot build a request for '{path}': {e}"),
            })
    }

    /// Connects, sends `request` and returns the answer's head with the task
    /// driving the connection (which ends with the body).
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(hyper::Response<Incoming>, JoinHandle<()>), ClientError> {
        let stream = TcpStream::connect(&self.server.address)
            .await
            .map_err(|cause| ClientError::Unreachable {
                server: self.server.url.clone(),
                cause,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(e.to_string()))?;
        let connection = tokio::spawn(async move {
            // Its errors surface in the response or the body.
            let _ = connection.await;
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.protocol(format!("the request failed: {e}")))?;
        Ok((response, connection))
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            server: self.server.url.clone(),
            reason,
        }
    }
}

/// The API's error body as a [`ClientError::Api`], or the status alone if
/// the body is not one.
fn api_error(status: u16, body: &Value) -> ClientError {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => ClientError::Api {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            details: error.clone(),
        },
        _ => ClientError::Api {
            status,
            code: format!("http_{status}"),
            message: format!("the server answered HTTP {status}"),
            details: Value::Null,
        },
    }
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerEvent {
    /// Its `event:` type (`message` when absent).
    pub event: String,
    /// Its `id:`, if any.
    pub id: Option<String>,
    /// Its `data:` lines, joined by `\n`.
    pub data: String,
}

impl fmt::Display for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.event, self.data)
    }
}

/// The events of an open `text/event-stream` answer.
#[derive(Debug)]
pub struct EventStream {
    server: String,
    body: Incoming,
    parser: EventParser,
    connection: JoinHandle<()>,
}

impl EventStream {
    /// The next event; `None` when the server ends the stream.
    pub async fn next(&mut self) -> Result<Option<ServerEvent>, ClientError> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Protocol {
                        server: self.server.clone(),
                        reason: format!("the event stream broke: {e}"),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Cuts received bytes into server-sent events (the subset of the format
/// the API uses: `event`, `id`, `data` and comments).
#[derive(Debug, Default)]
struct EventParser {
    /// Bytes received and not yet read as lines.
    buffer: Vec<u8>,
    /// The event whose lines are being read.
    pending: ServerEvent,
}

impl EventParser {
    /// The next complete event in the buffer, if one is.
    fn next_event(&mut self) -> Option<ServerEvent> {
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = self.line(line.trim_end_matches(['\n', '\r'])) {
                return Some(event);
            }
        }
        None
    }

    /// Takes one line; a blank line completes an event.
    fn line(&mut self, line: &str) -> Option<ServerEvent> {
        if line.is_empty() {
            let mut event = std::mem::take(&mut self.pending);
            if event.data.is_empty() && event.event.is_empty() {
                return None;
            }
            if event.event.is_empty() {
                "message".clone_into(&mut event.event);
            }
            return Some(event);
        }
        if line.starts_with(':') {
            return None; // a comment: the keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.pending.event),
            "id" => self.pending.id = Some(value.to_owned()),
            "data" => {
                if !self.pending.data.is_empty() {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
            }
            _ => {}
        }
        None
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Percent-encodes `text` for a path segment or a query value: everything
/// but RFC 3986's unreserved characters (so a time's `+` stays a `+`).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let server = Server::parse("http://127.0.0.1:7070/").unwrap();
        assert_eq!(server.address, "127.0.0.1:7070");
        assert_eq!(server.prefix, "");
        let server = Server::parse("http://proxy/rewind").unwrap();
        assert_eq!(server.address, "proxy:80");
        assert_eq!(server.prefix, "/rewind");
        for bad in ["https://x:1", "127.0.0.1:7070", "http://x/?a=1", "ftp://x"] {
            assert!(Server::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoding_keeps_unreserved_characters_only() {
        assert_eq!(encode("pre_v2.0-x~"), "pre_v2.0-x~");
        assert_eq!(
            encode("2026-03-14T14:30:00+01:00"),
            "2026-03-14T14%3A30%3A00%2B01%3A00"
        );
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn api_errors_carry_the_servers_code_and_message() {
        let body = serde_json::json!({"error": {"code": "snapshot_not_found", "message": "snapshot 'x' not found"}});
        let error = api_error(404, &body);
        assert_eq!(
            error.to_string(),
            "snapshot 'x' not found (snapshot_not_found)"
        );
        assert_eq!(
            api_error(502, &Value::Null).to_string(),
            "the server answered HTTP 502 (http_502)"
        );
    }

    #[test]
    fn events_are_cut_at_blank_lines_across_chunks() {
        let mut parser = EventParser::default();
        parser
            .buffer
            .extend_from_slice(b": keep-alive\n\nevent: revision\nid: 3\nda");
        assert_eq!(parser.next_event(), None);
        parser
            .buffer
            .extend_from_slice(b"ta: {\"revision\":3}\r\n\ndata: a\ndata: b\n\n");
        assert_eq!(
            parser.next_event(),
            Some(ServerEvent {
                event: "revision".into(),
                id: Some("3".into()),
                data: "{\"revision\":3}".into(),
            })
        );
        let second = parser.next_event().unwrap();
        assert_eq!(
            (second.event.as_str(), second.data.as_str()),
            ("message", "a\nb")
        );
        assert_eq!(parser.next_event(), None);
    }
}
