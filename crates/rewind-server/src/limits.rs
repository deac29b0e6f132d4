//! [`Limits`]: what one request, one connection or one tenant may take, so
//! that no input and no client can exhaust the server. Past a limit a
//! request is refused (408, 413, 429 or 503) and changes nothing.

use std::time::Duration;

/// Limits of the API and of its connections. Every one has a default and a
/// `rewind serve` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, bytes (default 1 MiB). Past it: 413
    /// `payload_too_large`.
    pub max_body_bytes: usize,
    /// Most operations in one JSON Patch, and in each step of a transaction
    /// (default 1000). Past it: 413 `payload_too_large`.
    pub max_patch_ops: usize,
    /// Most steps in one transaction (default 100). Past it: 413
    /// `payload_too_large`.
    pub max_transaction_steps: usize,
    /// Deepest nesting of a document, or of a value in a patch, counted in
    /// containers (default 64, at most [`Limits::MAX_DEPTH`]). Past it: 413
    /// `payload_too_large`, as for any other size limit.
    pub max_depth: usize,
    /// Most tenants (default 1 000 000). Creating one more: 429
    /// `quota_exceeded`.
    pub max_tenants: usize,
    /// Named snapshots kept per tenant (default 50): the tenants'
    /// `named_limit`. One more prunes the oldest unprotected one; when every
    /// one is protected it is 429 `quota_exceeded`.
    pub max_snapshots: usize,
    /// Most connections served at once (default 4096; `rewind serve`
    /// lowers it to fit the open-file limit when that is lower, see
    /// [`Limits::max_connections_for`]). A connection past it is answered
    /// 503 `overloaded` and closed; `GET /healthz` is still answered.
    pub max_connections: usize,
    /// Time a client has to send a complete request head: from the
    /// connection's start for its first request, from the head's first
    /// byte for later ones (default 10 s). Past it the connection is
    /// closed.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait, idle, for its next request
    /// (default 60 s). Past it the connection is closed.
    pub idle_timeout: Duration,
    /// Time a client has to send a request body (default 30 s). Past it:
    /// 408 `request_timeout`.
    pub body_read_timeout: Duration,
    /// Time a request may take to be answered, body read included (default
    /// 60 s; a watch stream's events are not counted). Past it: 503
    /// `timeout`; a write may still take effect, so check the history.
    pub request_timeout: Duration,
    /// After a refusal sent before the body was read (413, 401, 404...),
    /// at most this many bytes of the body are read and discarded (default
    /// 8 MiB), so the client gets to read the answer, before the
    /// connection is closed.
    pub drain_max_bytes: usize,
    /// ... and for at most this long (default 5 s).
    pub drain_timeout: Duration,
}

impl Limits {
    /// The highest accepted `max_depth`. The JSON parser refuses bodies
    /// nesting past 128 levels before any document is built, and request
    /// envelopes (a transaction's steps and patches) take a few of them.
    pub const MAX_DEPTH: usize = 100;

    /// The default of `max_connections` without an open-file limit.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

    /// The default `max_connections` under an open-file limit of
    /// `fd_limit`: 4096, or 3/4 of what is left after 64 files when that is
    /// lower (720 of 1024). The rest keeps room for the journal, the lanes
    /// that answer `/healthz` and 503 past the cap (at most 192
    /// connections, each for at most 250 ms), and the process's own files.
    pub fn max_connections_for(fd_limit: Option<u64>) -> usize {
        let default = Self::DEFAULT_MAX_CONNECTIONS;
        match fd_limit {
            Some(limit) => {
                let usable = limit.saturating_sub(64) / 4 * 3;
                usize::try_from(usable)
                    .unwrap_or(usize::MAX)
                    .clamp(1, default)
            }
            None => default,
        }
    }

    /// Checks that the limits can work.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_patch_ops", self.max_patch_ops),
            ("max_transaction_steps", self.max_transaction_steps),
            ("max_depth", self.max_depth),
            ("max_tenants", self.max_tenants),
            ("max_snapshots", self.max_snapshots),
            ("max_connections", self.max_connections),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        let times = [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("request_timeout", self.request_timeout),
            ("drain_timeout", self.drain_timeout),
        ];
        if let Some((name, _)) = times.iter().find(|(_, value)| value.is_zero()) {
            return Err(format!("{name} must be longer than 0"));
        }
        if self.max_depth > Self::MAX_DEPTH {
            return Err(format!(
                "max_depth must be at most {} (got {})",
                Self::MAX_DEPTH,
                self.max_depth
            ));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_patch_ops: 1000,
            max_transaction_steps: 100,
            max_depth: 64,
            max_tenants: 1_000_000,
            max_snapshots: 50,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            drain_max_bytes: 8 * 1024 * 1024,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// A duration as `rewind serve` flags take it: `500ms`, `10s`, `2m`, or a
/// bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: use e.g. 500ms, 10s or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}': use ms, s or m"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{text}': {e}"))
}

/// `10s`, `500ms`: how a duration is shown in messages and defaults.
pub(crate) fn show_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "10h", "-1s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(Duration::from_secs(10)), "10s");
        assert_eq!(show_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn the_connection_cap_follows_the_open_file_limit() {
        assert_eq!(Limits::max_connections_for(None), 4096);
        assert_eq!(Limits::max_connections_for(Some(1024)), 720);
        assert_eq!(Limits::max_connections_for(Some(1_000_000)), 4096);
        assert_eq!(Limits::max_connections_for(Some(1)), 1);
    }

    #[test]
    fn zero_limits_are_refused() {
        let limits = Limits {
            header_read_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert!(limits
            .validate()
            .unwrap_err()
            .contains("header_read_timeout"));
        let limits = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert!(limits.validate().unwrap_err().contains("max_connections"));
    }
}
