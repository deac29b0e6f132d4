//! Validated names: snapshot names and tenant ids.
//!
//! Both are checked once, when built from outside input, so a bad value cannot
//! travel inward. Both are cheap to clone (`Arc<str>`).

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InvalidInput;

/// The name of a snapshot or transaction checkpoint: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -` (so `v1.0.0`, `pre_v2_deploy` and `auto_12345` are
/// all valid). Names are case-sensitive.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotName(Arc<str>);

impl SnapshotName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 128;

    /// Validates `name`.
    pub fn new(name: impl AsRef<str>) -> Result<Self, InvalidInput> {
        let name = name.as_ref();
        check_name(name, Self::MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
        })
        .map_err(|reason| InvalidInput::SnapshotName {
            name: shorten(name),
            reason,
        })?;
        Ok(SnapshotName(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Names generated for auto snapshots: `auto_<sequence>`.
    pub(crate) fn auto(sequence: u64) -> Self {
        SnapshotName(format!("{}{sequence}", Self::AUTO_PREFIX).into())
    }

    /// A name known to be valid (a constant of this crate).
    pub(crate) fn trusted(name: &str) -> Self {
        debug_assert!(SnapshotName::new(name).is_ok());
        SnapshotName(name.into())
    }

    /// Prefix reserved for generated auto snapshot names.
    pub const AUTO_PREFIX: &'static str = "auto_";

    pub(crate) fn is_auto_name(&self) -> bool {
        self.0.starts_with(Self::AUTO_PREFIX)
    }
}

/// A tenant id: 1 to 64 characters of `A-Z a-z 0-9 _ . -`, case-sensitive.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Longest accepted id, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates `id`.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidInput> {
        let id = id.as_ref();
        check_name(id, Self::MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
        })
        .map_err(|reason| InvalidInput::TenantId {
            id: shorten(id),
            reason,
        })?;
        Ok(TenantId(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(text: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if text.len() > max {
        return Err(format!("it is longer than {max} characters"));
    }
    if let Some(bad) = text.chars().find(|c| !allowed(*c)) {
        return Err(format!("character {bad:?} is not allowed"));
    }
    Ok(())
}

/// Keeps error messages bounded when the rejected input is huge.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 140;
    if text.chars().count() <= SHOWN {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(SHOWN).collect();
        short.push('…');
        short
    }
}

macro_rules! name_impls {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl FromStr for $ty {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = InvalidInput;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                $ty::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $ty::new(s)
            }
        }

        impl TryFrom<&String> for $ty {
            type Error = InvalidInput;
            fn try_from(s: &String) -> Result<Self, Self::Error> {
                $ty::new(s.as_str())
            }
        }

        impl From<&$ty> for $ty {
            fn from(name: &$ty) -> Self {
                name.clone()
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $ty::new(&*text).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_impls!(SnapshotName);
name_impls!(TenantId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_snapshot_names_are_valid() {
        for name in [
            "v1.0.0",
            "pre_v2_deploy",
            "auto_12345",
            "v3.0_release",
            "a:b-c",
        ] {
            SnapshotName::new(name).unwrap();
        }
        SnapshotName::new("x".repeat(128)).unwrap();
    }

    #[test]
    fn bad_snapshot_names_are_rejected_with_a_reason() {
        for name in ["", "has space", "slash/y", "ünï", &"x".repeat(129)] {
            let err = SnapshotName::new(name).unwrap_err();
            assert!(matches!(err, InvalidInput::SnapshotName { .. }), "{name}");
        }
        let err = SnapshotName::new("a b").unwrap_err().to_string();
        assert!(err.contains("' '"), "{err}");
    }

    #[test]
    fn tenant_ids() {
        TenantId::new("acme_corp").unwrap();
        TenantId::new("widgets_r_us").unwrap();
        assert!(TenantId::new("a:b").is_err());
        assert!(TenantId::new("x".repeat(65)).is_err());
        assert_ne!(
            TenantId::new("Acme").unwrap(),
            TenantId::new("acme").unwrap()
        );
    }
}
