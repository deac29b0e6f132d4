//! Bearer-token authentication: [`Tokens`] (an admin token for everything,
//! tenant tokens scoped to one tenant) and the [`Caller`] a request comes
//! from: its [`Access`] and the identity recorded as the author of its
//! writes (a token's label, never the token).
//!
//! With no token configured every request is allowed; `rewind serve` then
//! only listens on loopback addresses (see
//! [`check_listen`](crate::check_listen)).

use std::sync::Arc;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use rewind_core::TenantId;

use crate::error::ApiError;

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owner {
    Admin,
    Tenant(TenantId),
}

/// One configured token.
#[derive(Clone)]
struct Entry {
    owner: Owner,
    token: String,
    /// Who the token stands for in the audit trail: its `label=`, else
    /// `admin` or `tenant:<id>`.
    identity: Arc<str>,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

/// Who made a request: what it may do and who it is recorded as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// What the request may do.
    pub access: Access,
    /// Recorded as the author of its writes: the token's label, `admin`,
    /// `tenant:<id>`, or `anonymous` when authentication is off.
    pub identity: Arc<str>,
}

/// The identity of requests to a server without tokens.
pub const ANONYMOUS: &str = "anonymous";

/// The longest token label.
const MAX_LABEL: usize = 64;

impl std::fmt::Debug for Tokens {
    /// Never shows a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let admins = self.entries.iter().filter(|e| e.owner == Owner::Admin);
        f.debug_struct("Tokens")
            .field("admin", &admins.count())
            .field("tenant", &(self.entries.len() - self.admin_count()))
            .finish()
    }
}

impl Tokens {
    /// No token: authentication off.
    pub fn none() -> Self {
        Tokens::default()
    }

    /// Whether any token is configured (authentication on).
    pub fn is_configured(&self) -> bool {
        !self.entries.is_empty()
    }

    fn admin_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.owner == Owner::Admin)
            .count()
    }

    /// Adds an admin token, allowed everywhere, recorded as `admin`.
    pub fn add_admin(&mut self, token: &str) -> Result<(), String> {
        self.add(Owner::Admin, token, None)
    }

    /// Adds a token allowed only on `tenant`'s routes, recorded as
    /// `tenant:<id>`.
    pub fn add_tenant(&mut self, tenant: TenantId, token: &str) -> Result<(), String> {
        self.add(Owner::Tenant(tenant), token, None)
    }

    /// Adds an admin token (`tenant` `None`) or a tenant's, recorded in the
    /// audit trail as `label` (1-64 characters, no whitespace).
    pub fn add_labelled(
        &mut self,
        tenant: Option<TenantId>,
        token: &str,
        label: &str,
    ) -> Result<(), String> {
        let owner = tenant.map_or(Owner::Admin, Owner::Tenant);
        self.add(owner, token, Some(label))
    }

    fn add(&mut self, owner: Owner, token: &str, label: Option<&str>) -> Result<(), String> {
        if let Some(label) = label {
            if label.is_empty() || label.chars().count() > MAX_LABEL {
                return Err(format!("a label has 1 to {MAX_LABEL} characters"));
            }
            if label.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("a label must not contain whitespace or control characters".into());
            }
        }
        if token.is_empty() {
            return Err("a token must not be empty".into());
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a token must not contain whitespace or control characters".into());
        }
        if self.entries.iter().any(|e| e.token == token) {
            return Err("the same token is given twice".into());
        }
        let identity: Arc<str> = match (label, &owner) {
            (Some(label), _) => label.into(),
            (None, Owner::Admin) => "admin".into(),
            (None, Owner::Tenant(tenant)) => format!("tenant:{tenant}").into(),
        };
        self.entries.push(Entry {
            owner,
            token: token.to_owned(),
            identity,
        });
        Ok(())
    }

    /// Reads a token file: one token a line, `admin <token>` or
    /// `tenant <tenant_id> <token>`, each optionally followed by
    /// `label=NAME` (who the token's writes are recorded as); blank lines
    /// and lines starting with `#` are skipped. Errors name the line.
    pub fn parse_file(&mut self, text: &str) -> Result<(), String> {
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words: Vec<&str> = line.split_whitespace().collect();
            let label = match words.last().and_then(|w| w.strip_prefix("label=")) {
                Some(label) => {
                    words.pop();
                    Some(label)
                }
                None => None,
            };
            let added = match words.as_slice() {
                ["admin", token] => self.add(Owner::Admin, token, label),
                ["tenant", tenant, token] => TenantId::new(tenant)
                    .map_err(|e| e.to_string())
                    .and_then(|tenant| self.add(Owner::Tenant(tenant), token, label)),
                _ => Err(
                    "expected `admin <token>` or `tenant <tenant_id> <token>`, then \
                          optionally `label=NAME`"
                        .into(),
                ),
            };
            added.map_err(|e| format!("line {number}: {e}"))?;
        }
        Ok(())
    }

    /// The access of a request with these headers: every request when no
    /// token is configured, else the owner of its bearer token; 401 when the
    /// token is missing or unknown.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<Access, ApiError> {
        self.authenticate(headers).map(|caller| caller.access)
    }

    /// The [`Caller`] of a request with these headers: [`authorize`]'s
    /// access with the identity its writes are recorded under.
    ///
    /// [`authorize`]: Tokens::authorize
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if !self.is_configured() {
            return Ok(Caller {
                access: Access::Everything,
                identity: ANONYMOUS.into(),
            });
        }
        let header = headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing bearer token (send `Authorization: Bearer <token>`)")
        })?;
        let token = header.to_str().ok().and_then(bearer).ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
        // Every configured token is compared, each in constant time, so the
        // time taken does not tell which one (or how much of one) matched.
        let entry = self.entries.iter().fold(None, |found, entry| {
            if same_bytes(token.as_bytes(), entry.token.as_bytes()) {
                Some(entry)
            } else {
                found
            }
        });
        let entry = entry.ok_or_else(|| ApiError::unauthorized("invalid token"))?;
        let access = match &entry.owner {
            Owner::Admin => Access::Everything,
            Owner::Tenant(tenant) => Access::Tenant(tenant.clone()),
        };
        Ok(Caller {
            access,
            identity: Arc::clone(&entry.identity),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Equality whose time depends on the lengths only, not on where the bytes
/// first differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Everything: the admin token, or authentication is off.
    Everything,
    /// Only this tenant's routes.
    Tenant(TenantId),
}

impl Access {
    /// 403 unless this is admin access.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Access::Everything => Ok(()),
            Access::Tenant(tenant) => Err(ApiError::forbidden(format!(
                "the token of tenant '{tenant}' cannot manage tenants; use an admin token"
            ))),
        }
    }

    /// 403 unless the request may act on the tenant named `tenant` (the raw
    /// path segment, compared before it is validated).
    pub fn require_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        match self {
            Access::Everything => Ok(()),
            Access::Tenant(own) if own.as_str() == tenant => Ok(()),
            Access::Tenant(own) => Err(ApiError::forbidden(format!(
                "the token of tenant '{own}' is not valid for another tenant"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn token_file() {
        let mut tokens = Tokens::none();
        tokens
            .parse_file("# ops\nadmin s3cret\n\ntenant acme_corp acme-token\n")
            .unwrap();
        assert_eq!(
            tokens.authorize(&headers("Bearer s3cret")),
            Ok(Access::Everything)
        );
        assert_eq!(
            tokens.authorize(&headers("bearer  acme-token ")),
            Ok(Access::Tenant(TenantId::new("acme_corp").unwrap()))
        );
        assert_eq!(
            tokens.authorize(&headers("Bearer s3cre")).unwrap_err().code,
            "unauthorized"
        );
        assert_eq!(
            tokens.authorize(&HeaderMap::new()).unwrap_err().code,
            "unauthorized"
        );
        assert_eq!(
            tokens.authorize(&headers("Basic s3cret")).unwrap_err().code,
            "unauthorized"
        );
    }

    #[test]
    fn labels_name_who_a_token_is() {
        let mut tokens = Tokens::none();
        tokens
            .parse_file(
                "admin root-token\nadmin ops-token label=ops\n\
                 tenant acme_corp acme-token label=ci-deployer\ntenant globex globex-token\n",
            )
            .unwrap();
        let identity = |token: &str| {
            tokens
                .authenticate(&headers(&format!("Bearer {token}")))
                .unwrap()
                .identity
                .to_string()
        };
        assert_eq!(identity("root-token"), "admin");
        assert_eq!(identity("ops-token"), "ops");
        assert_eq!(identity("acme-token"), "ci-deployer");
        assert_eq!(identity("globex-token"), "tenant:globex");
        assert_eq!(
            Tokens::none()
                .authenticate(&HeaderMap::new())
                .unwrap()
                .identity
                .as_ref(),
            ANONYMOUS
        );
        // A token is never shown, not even in Debug.
        assert!(!format!("{tokens:?}").contains("acme-token"));
    }

    #[test]
    fn bad_token_files_name_the_line() {
        for (text, line) in [
            ("admin\n", 1),
            ("admin a\ntenant bad/id t\n", 2),
            ("admin a\nadmin a\n", 2),
            ("user x y\n", 1),
            ("admin a label=\n", 1),
            ("admin a\ntenant acme b label=x label=y\n", 2),
        ] {
            let err = Tokens::none().parse_file(text).unwrap_err();
            assert!(err.starts_with(&format!("line {line}:")), "{err}");
        }
    }

    #[test]
    fn without_tokens_everything_is_allowed() {
        assert_eq!(
            Tokens::none().authorize(&HeaderMap::new()),
            Ok(Access::Everything)
        );
    }

    #[test]
    fn constant_time_equality() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(same_bytes(b"", b""));
    }
}
