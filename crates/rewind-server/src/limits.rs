//! [`Limits`]: what one request or one tenant may take, so that no input can
//! exhaust the server. Past a limit a request is refused (413 or 429) and
//! changes nothing.

/// Limits of the API. Every one has a default and a `rewind serve` flag.
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
    /// Most tenants (default 10 000). Creating one more: 429
    /// `quota_exceeded`.
    pub max_tenants: usize,
    /// Named snapshots kept per tenant (default 50): the tenants'
    /// `named_limit`. One more prunes the oldest unprotected one; when every
    /// one is protected it is 429 `quota_exceeded`.
    pub max_snapshots: usize,
}

impl Limits {
    /// The highest accepted `max_depth`. The JSON parser refuses bodies
    /// nesting past 128 levels before any document is built, and request
    /// envelopes (a transaction's steps and patches) take a few of them.
    pub const MAX_DEPTH: usize = 100;

    /// Checks that the limits can work.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_patch_ops", self.max_patch_ops),
            ("max_transaction_steps", self.max_transaction_steps),
            ("max_depth", self.max_depth),
            ("max_tenants", self.max_tenants),
            ("max_snapshots", self.max_snapshots),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be at least 1"));
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
            max_tenants: 10_000,
            max_snapshots: 50,
        }
    }
}
