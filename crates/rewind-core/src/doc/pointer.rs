//! RFC 6901 JSON Pointers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An RFC 6901 JSON Pointer: a sequence of reference tokens, `""` for the
/// whole document, `/a/b` for member `b` of member `a`. In text, `~1` stands
/// for `/` and `~0` for `~` inside a token.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pointer {
    tokens: Vec<String>,
}

/// Text that is not a JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON Pointer '{pointer}': {reason}")]
pub struct InvalidPointer {
    /// The rejected text (shortened).
    pub pointer: String,
    /// Why it is invalid.
    pub reason: &'static str,
}

impl Pointer {
    /// The pointer to the whole document, `""`.
    pub fn root() -> Self {
        Pointer::default()
    }

    /// Parses pointer text. It must be empty or start with `/`; `~` must be
    /// followed by `0` or `1`.
    pub fn parse(text: &str) -> Result<Self, InvalidPointer> {
        let invalid = |reason| InvalidPointer {
            pointer: text.chars().take(140).collect(),
            reason,
        };
        if text.is_empty() {
            return Ok(Pointer::root());
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(invalid("it must be empty or start with '/'"));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => token.push('~'),
                        Some('1') => token.push('/'),
                        _ => return Err(invalid("'~' must be followed by '0' or '1'")),
                    }
                } else {
                    token.push(c);
                }
            }
            tokens.push(token);
        }
        Ok(Pointer { tokens })
    }

    /// Builds a pointer from unescaped tokens.
    pub fn from_tokens<I, T>(tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Pointer {
            tokens: tokens.into_iter().map(Into::into).collect(),
        }
    }

    /// The unescaped reference tokens.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Whether this is the root pointer `""`.
    pub fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens (the root pointer).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The last token, if any: the key or index this pointer names.
    pub fn last(&self) -> Option<&str> {
        self.tokens.last().map(String::as_str)
    }

    /// This pointer with `token` appended.
    pub fn child(&self, token: impl Into<String>) -> Pointer {
        let mut tokens = Vec::with_capacity(self.tokens.len() + 1);
        tokens.extend_from_slice(&self.tokens);
        tokens.push(token.into());
        Pointer { tokens }
    }

    /// Appends `token` in place.
    pub fn push(&mut self, token: impl Into<String>) {
        self.tokens.push(token.into());
    }

    /// Removes and returns the last token.
    pub fn pop(&mut self) -> Option<String> {
        self.tokens.pop()
    }

    /// The parent pointer and the last token, or `None` for the root.
    pub fn split_last(&self) -> Option<(&[String], &str)> {
        self.tokens
            .split_last()
            .map(|(last, parent)| (parent, last.as_str()))
    }

    /// Whether `self` is a proper prefix of `other` (`/a` of `/a/b`).
    pub fn is_proper_prefix_of(&self, other: &Pointer) -> bool {
        self.tokens.len() < other.tokens.len() && other.tokens.starts_with(&self.tokens)
    }
}

/// Parses an array index token: `0` or digits without a leading zero.
/// `-` and anything else give `None`.
pub(crate) fn parse_index(token: &str) -> Option<usize> {
    let bytes = token.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    if valid {
        token.parse().ok()
    } else {
        None
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for token in &self.tokens {
            f.write_str("/")?;
            for c in token.chars() {
                match c {
                    '~' => f.write_str("~0")?,
                    '/' => f.write_str("~1")?,
                    c => write!(f, "{c}")?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pointer({:?})", self.to_string())
    }
}

impl FromStr for Pointer {
    type Err = InvalidPointer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pointer::parse(s)
    }
}

impl Serialize for Pointer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Pointer::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6901_examples() {
        assert!(Pointer::parse("").unwrap().is_root());
        assert_eq!(Pointer::parse("/").unwrap().tokens(), [""]);
        assert_eq!(Pointer::parse("/a~1b").unwrap().tokens(), ["a/b"]);
        assert_eq!(Pointer::parse("/m~0n").unwrap().tokens(), ["m~n"]);
        assert_eq!(Pointer::parse("/~01").unwrap().tokens(), ["~1"]);
        assert!(Pointer::parse("a").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert!(Pointer::parse("/a~").is_err());
    }

    #[test]
    fn display_escapes_tokens() {
        for text in ["", "/", "/a~1b/m~0n/0", "/~01"] {
            assert_eq!(Pointer::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn indexes() {
        assert_eq!(parse_index("0"), Some(0));
        assert_eq!(parse_index("10"), Some(10));
        for bad in [
            "",
            "01",
            "-",
            "-1",
            "1e0",
            "+1",
            " 1",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes() {
        let a = Pointer::parse("/a").unwrap();
        assert!(a.is_proper_prefix_of(&Pointer::parse("/a/b").unwrap()));
        assert!(!a.is_proper_prefix_of(&a));
        assert!(!a.is_proper_prefix_of(&Pointer::parse("/ab").unwrap()));
        assert!(Pointer::root().is_proper_prefix_of(&a));
    }
}
