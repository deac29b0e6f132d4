//! The edge of `rewind serve` against slow, idle, greedy and hasty clients,
//! over real sockets: header-read and idle timeouts, the connection cap with
//! `/healthz` still answered past it, body and handler time limits, and
//! early refusals (413, 401) that a client still sending can read.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const REWIND: &str = env!("CARGO_BIN_EXE_rewind");

/// A `rewind serve --memory` with extra flags, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let mut command = Command::new(REWIND);
        command.args(["serve", "--memory", "--listen", "127.0.0.1:0"]);
        command.args(flags);
        Server::spawn(command, None)
    }

    /// Under an open-file limit of `fd_limit`, set by the shell before it
    /// becomes `rewind serve`.
    fn start_with_fd_limit(fd_limit: u32, flags: &[&str]) -> Server {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "ulimit -n {fd_limit} && exec \"$0\" serve --memory --listen 127.0.0.1:0 \"$@\""
            ))
            .arg(REWIND)
            .args(flags);
        Server::spawn(command, None)
    }

    fn spawn(mut command: Command, admin_token: Option<&str>) -> Server {
        command.env_remove("REWIND_ADMIN_TOKEN");
        if let Some(token) = admin_token {
            command.env("REWIND_ADMIN_TOKEN", token);
        }
        let mut child = command
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("rewind listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// `GET /healthz` on a new connection; the status and how long it
    /// took, failing after `within`.
    fn healthz(&self, within: Duration) -> (u16, Duration) {
        let started = Instant::now();
        let mut stream = self.connect();
        stream.set_read_timeout(Some(within)).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (status, body) = read_response(&mut stream)
            .unwrap_or_else(|e| panic!("/healthz not answered within {within:?}: {e}"));
        assert_eq!(body["status"], "ok");
        (status, started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one whole response (the server closes after it, or it has a
/// Content-Length): the status and the JSON body.
fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, Value)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = &buffer[end + 4..end + 4 + length];
                let body = serde_json::from_slice(body).unwrap_or(Value::Null);
                return Ok((status, body));
            }
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "closed after {:?}",
                    String::from_utf8_lossy(&buffer)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether the server closed `stream` (EOF or reset) within `within`,
/// discarding whatever it sent first.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut sink = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true, // reset
        }
    }
}

/// Opens file descriptors for `count` more sockets in this process.
fn allow_open_files(count: u64) {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if soft < count {
        rlimit::setrlimit(rlimit::Resource::NOFILE, count.min(hard), hard).unwrap();
    }
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        soft >= count,
        "this test needs {count} open files; the limit is {soft}"
    );
}

/// Slowloris: 2,000 connections that send half a request head and then
/// nothing, against a server allowed 1,024 open files. The server caps what
/// it holds below its fd limit, answers `/healthz` within 1 s throughout,
/// and closes every half-open connection by the header timeout.
#[test]
#[cfg(target_os = "linux")]
fn slowloris_cannot_take_the_server_off_the_air() {
    const ATTACKERS: usize = 2000;
    let header_timeout = Duration::from_secs(2);
    allow_open_files(ATTACKERS as u64 + 256);
    let server = Server::start_with_fd_limit(1024, &["--header-read-timeout", "2s"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some("1024"),
        "{open_files}"
    );

    let started = Instant::now();
    let mut attackers = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        let mut stream = server.connect();
        stream
            .write_all(b"PUT /v1/tenants/acme_corp HTTP/1.1\r\nHost: test\r\nContent-Le")
            .unwrap();
        attackers.push((Instant::now(), stream));
    }
    let opened = started.elapsed();
    assert!(opened < header_timeout, "opening took {opened:?}");

    // Throughout the header timeout and beyond, /healthz answers in 1 s.
    let mut probes = 0;
    while started.elapsed() < header_timeout + Duration::from_secs(1) {
        let (status, took) = server.healthz(Duration::from_secs(1));
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
        probes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(probes >= 20, "only {probes} probes");

    // Each one was closed: refused at once past the cap, or at the header
    // timeout (with a little slack for a loaded machine).
    let slack = Duration::from_millis(1500);
    for (index, (opened_at, stream)) in attackers.iter_mut().enumerate() {
        let left = (*opened_at + header_timeout + slack).saturating_duration_since(Instant::now());
        assert!(
            closed_within(stream, left.max(Duration::from_millis(10))),
            "half-open connection {index} still open {:?} after it was opened",
            opened_at.elapsed()
        );
    }
    // And the server serves as before.
    assert_eq!(server.healthz(Duration::from_secs(1)).0, 200);
}

/// A kept-alive connection is closed after the idle timeout; one that
/// never sends a request, after the header timeout.
#[test]
fn idle_connections_are_closed() {
    let server = Server::start(&["--idle-timeout", "1s", "--header-read-timeout", "3s"]);
    let mut kept = server.connect();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_response(&mut kept).unwrap().0, 200);
    let answered = Instant::now();
    let mut silent = server.connect();
    let connected = Instant::now();

    assert!(closed_within(&mut kept, Duration::from_secs(4)));
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_millis(2900),
        "closed after {idle:?} idle"
    );
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "a silent connection was closed after {waited:?}, before the header timeout"
    );
}

/// Past `--max-connections` a connection is answered 503 and closed, and
/// `/healthz` is still answered; once connections end, service resumes.
#[test]
fn past_the_connection_cap_requests_get_503_and_healthz_answers() {
    let server = Server::start(&["--max-connections", "4"]);
    let held: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    // Let the server accept them before the next one.
    std::thread::sleep(Duration::from_millis(200));

    let mut refused = server.connect();
    refused
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    refused
        .write_all(b"GET /v1/tenants HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let (status, body) = read_response(&mut refused).unwrap();
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limit of 4 connections"));
    assert!(closed_within(&mut refused, Duration::from_secs(2)));
    assert_eq!(server.healthz(Duration::from_secs(1)).0, 200);

    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .write_all(b"GET /v1/tenants HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).unwrap().0, 200);
}

/// A body that stops arriving is 408 after `--body-read-timeout`; a
/// handler that takes longer than `--request-timeout` is 503 `timeout`.
/// Neither creates anything.
#[test]
fn slow_bodies_and_slow_requests_are_cut_off() {
    let server = Server::start(&["--body-read-timeout", "500ms"]);
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"PUT /v1/tenants/acme_corp HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{\"st",
        )
        .unwrap();
    let (status, body) = read_response(&mut stream).unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (408, Some("request_timeout"))
    );
    assert!(started.elapsed() >= Duration::from_millis(450));

    let server = Server::start(&["--body-read-timeout", "10s", "--request-timeout", "500ms"]);
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(
            b"PUT /v1/tenants/acme_corp HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{\"st",
        )
        .unwrap();
    let (status, body) = read_response(&mut stream).unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("timeout"))
    );

    let mut check = server.connect();
    check
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    check
        .write_all(b"GET /v1/tenants HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, body) = read_response(&mut check).unwrap();
    assert_eq!((status, body), (200, serde_json::json!({"tenants": []})));
}

/// Sends a request head and a body of `size` bytes in full, as `urllib`
/// does, and only then reads the answer.
fn send_whole_body_then_read(
    server: &Server,
    head: &str,
    size: usize,
) -> std::io::Result<(u16, Value)> {
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(format!("{head}Content-Length: {size}\r\n\r\n").as_bytes())?;
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let n = chunk.len().min(size - sent);
        stream.write_all(&chunk[..n])?;
        sent += n;
    }
    read_response(&mut stream)
}

/// A 413 for a body over the limit, and a 401 sent before the body is
/// read, reach a client that keeps sending its whole body before reading:
/// the server drains the rest (up to its bound) instead of resetting the
/// connection under it.
#[test]
fn early_refusals_are_read_by_a_client_that_keeps_sending() {
    let server = Server::start(&["--max-body-bytes", "1024"]);
    let head =
        "PUT /v1/tenants/acme_corp HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n";
    let (status, body) = send_whole_body_then_read(&server, head, 4 * 1024 * 1024)
        .expect("the client reads the 413 after sending everything");
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1024 bytes"));

    // Without a Content-Length the limit is found while reading (chunked).
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("{head}Transfer-Encoding: chunked\r\n\r\n").as_bytes())
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 8192, " ".repeat(8192));
    for _ in 0..256 {
        stream.write_all(chunk.as_bytes()).unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut stream).unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Nothing was created.
    let mut check = server.connect();
    check
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    check
        .write_all(b"GET /v1/tenants HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut check).unwrap().1["tenants"],
        serde_json::json!([])
    );

    // Refused before the body is read at all: no token.
    let mut command = Command::new(REWIND);
    command.args(["serve", "--memory", "--listen", "127.0.0.1:0"]);
    let secured = Server::spawn(command, Some("s3cret"));
    let (status, body) = send_whole_body_then_read(&secured, head, 4 * 1024 * 1024)
        .expect("the client reads the 401 after sending everything");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
}
