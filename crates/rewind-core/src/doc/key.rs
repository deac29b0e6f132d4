//! [`Key`]: an object key, stored inline when short.
//!
//! A key of up to [`Key::INLINE_CAP`] bytes lives inside the 24-byte `Key`
//! itself (no heap allocation; cloning it is a copy); a longer key is a
//! shared `Arc<str>` (cloning it bumps a reference count). Keys order,
//! compare and hash exactly like the `str` they hold.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Length of an inline key. An enum rather than a `u8` so that the values
/// above [`Key::INLINE_CAP`] are free for the compiler to tag the heap form
/// with, which keeps [`Key`] at 24 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Len {
    L0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
    L23,
}

impl Len {
    const ALL: [Len; 24] = [
        Len::L0,
        Len::L1,
        Len::L2,
        Len::L3,
        Len::L4,
        Len::L5,
        Len::L6,
        Len::L7,
        Len::L8,
        Len::L9,
        Len::L10,
        Len::L11,
        Len::L12,
        Len::L13,
        Len::L14,
        Len::L15,
        Len::L16,
        Len::L17,
        Len::L18,
        Len::L19,
        Len::L20,
        Len::L21,
        Len::L22,
        Len::L23,
    ];
}

#[derive(Clone)]
enum Repr {
    Inline {
        len: Len,
        bytes: [u8; Key::INLINE_CAP],
    },
    Heap(Arc<str>),
}

/// An object key: a string, inline when it is at most
/// [`Key::INLINE_CAP`] bytes, else a shared `Arc<str>`.
///
/// `Deref<Target = str>`, `Borrow<str>` (so maps look keys up by `&str`),
/// and `Ord`/`Eq`/`Hash` exactly as `str`. `size_of::<Key>()` is 24.
#[derive(Clone)]
pub struct Key(Repr);

impl Key {
    /// Longest key stored inline, in bytes.
    pub const INLINE_CAP: usize = 23;

    /// The key's text. Time: O(length) for an inline key (its bytes are
    /// validated as UTF-8 again: the crate uses no `unsafe`), O(1) otherwise.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize])
                .expect("an inline key holds the bytes of a str"),
            Repr::Heap(s) => s,
        }
    }

    /// The key's bytes (UTF-8). Time: O(1). Comparisons use these: they
    /// order like the `str`.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(s) => s.as_bytes(),
        }
    }

    /// Length in bytes. Time: O(1).
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => *len as usize,
            Repr::Heap(s) => s.len(),
        }
    }

    /// Whether the key is the empty string. Time: O(1).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the key is stored inline (owns no heap memory). Time: O(1).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// Heap bytes this key owns: 0 inline, else the `Arc<str>` allocation
    /// (shared with its clones). Time: O(1).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Heap(s) => arc_str_bytes(s.len()),
        }
    }

    /// Whether both keys are the same storage: equal inline keys, or the
    /// same `Arc<str>`. Time: O(1).
    pub fn ptr_eq(&self, other: &Key) -> bool {
        match (&self.0, &other.0) {
            (Repr::Heap(a), Repr::Heap(b)) => Arc::ptr_eq(a, b),
            (Repr::Inline { .. }, Repr::Inline { .. }) => self.as_bytes() == other.as_bytes(),
            _ => false,
        }
    }

    /// An inline key as big-endian words (bytes 0..8, 8..16, 15..23; the
    /// unused bytes are zero) and its length: comparing these tuples orders
    /// like the bytes, without a `memcmp` call. `None` for a heap key.
    #[inline]
    fn words(&self) -> Option<(u128, u64, u8)> {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let word = |at: usize| {
                    let mut w = [0; 8];
                    w.copy_from_slice(&bytes[at..at + 8]);
                    u64::from_be_bytes(w)
                };
                let high = (u128::from(word(0)) << 64) | u128::from(word(8));
                Some((high, word(15), *len as u8))
            }
            Repr::Heap(_) => None,
        }
    }

    /// Compares with a probe made once per lookup. Time: O(1) for inline
    /// keys and probes, else O(length).
    #[inline]
    pub(super) fn cmp_probe(&self, probe: &Probe<'_>) -> Ordering {
        match (self.words(), &probe.words) {
            (Some(a), Some(b)) => a.cmp(b),
            _ => self.as_bytes().cmp(probe.bytes),
        }
    }

    fn inline(s: &str) -> Option<Key> {
        let len = *Len::ALL.get(s.len())?;
        let mut bytes = [0; Key::INLINE_CAP];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Key(Repr::Inline { len, bytes }))
    }
}

/// A looked-up key, prepared for fast comparisons with stored keys.
pub(super) struct Probe<'a> {
    words: Option<(u128, u64, u8)>,
    bytes: &'a [u8],
}

impl<'a> Probe<'a> {
    #[inline]
    pub(super) fn new(key: &'a str) -> Probe<'a> {
        Probe {
            words: Key::inline(key).and_then(|k| k.words()),
            bytes: key.as_bytes(),
        }
    }

    /// A probe for a stored key.
    #[inline]
    pub(super) fn of(key: &'a Key) -> Probe<'a> {
        Probe {
            words: key.words(),
            bytes: key.as_bytes(),
        }
    }
}

/// Bytes of the allocation behind an `Arc<str>` of `len` bytes: two
/// counters and the text, rounded up to the counters' alignment.
pub(super) fn arc_str_bytes(len: usize) -> usize {
    (2 * std::mem::size_of::<usize>() + len).next_multiple_of(std::mem::align_of::<usize>())
}

impl Default for Key {
    fn default() -> Key {
        Key(Repr::Inline {
            len: Len::L0,
            bytes: [0; Key::INLINE_CAP],
        })
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::inline(s).unwrap_or_else(|| Key(Repr::Heap(Arc::from(s))))
    }
}

impl From<&String> for Key {
    fn from(s: &String) -> Key {
        Key::from(s.as_str())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key::inline(&s).unwrap_or_else(|| Key(Repr::Heap(Arc::from(s))))
    }
}

impl From<Box<str>> for Key {
    fn from(s: Box<str>) -> Key {
        Key::inline(&s).unwrap_or_else(|| Key(Repr::Heap(Arc::from(s))))
    }
}

impl From<Arc<str>> for Key {
    /// Keeps the `Arc` (shared, no copy) when the key is too long to inline.
    fn from(s: Arc<str>) -> Key {
        Key::inline(&s).unwrap_or(Key(Repr::Heap(s)))
    }
}

impl From<std::borrow::Cow<'_, str>> for Key {
    fn from(s: std::borrow::Cow<'_, str>) -> Key {
        Key::from(&*s)
    }
}

impl From<&Key> for Key {
    fn from(k: &Key) -> Key {
        k.clone()
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.as_str().to_owned()
    }
}

impl From<Key> for Arc<str> {
    fn from(k: Key) -> Arc<str> {
        match k.0 {
            Repr::Heap(s) => s,
            Repr::Inline { .. } => Arc::from(k.as_str()),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Byte order, which is `str` order.
    fn cmp(&self, other: &Key) -> Ordering {
        match (self.words(), other.words()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

impl Hash for Key {
    /// Hashes like the `str` (required by `Borrow<str>`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq<str> for Key {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Key {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for Key {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<Key> for str {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<Key> for &str {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Key::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_24_bytes_and_inline_up_to_the_cap() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let short = Key::from("key_00000000123");
        assert!(short.is_inline());
        assert_eq!(short.heap_bytes(), 0);
        let max = "x".repeat(Key::INLINE_CAP);
        assert!(Key::from(max.as_str()).is_inline());
        let long = Key::from("y".repeat(Key::INLINE_CAP + 1));
        assert!(!long.is_inline());
        assert_eq!(long.heap_bytes(), 40);
        assert!(long.ptr_eq(&long.clone()));
        assert!(!long.ptr_eq(&Key::from(long.as_str())));
        assert_eq!(&*long, "y".repeat(24));
    }

    #[test]
    fn orders_and_compares_like_str() {
        let words = [
            "",
            "a",
            "a\u{0}",
            "ab",
            "b",
            "é",
            "z",
            "zz",
            "\u{10ffff}",
            "abcdefghijklmnopqrstuvw",
            "abcdefghijklmnopqrstuvwx",
        ];
        for a in words {
            for b in words {
                assert_eq!(Key::from(a).cmp(&Key::from(b)), a.cmp(b), "{a:?} {b:?}");
                let (x, y) = (Key::from(a), Key::from(b));
                assert_eq!(x == y, a == b);
            }
            assert_eq!(Key::from(a), a);
            assert_eq!(Key::from(a).to_string(), a);
            let json = serde_json::to_string(&Key::from(a)).unwrap();
            assert_eq!(serde_json::from_str::<Key>(&json).unwrap(), a);
        }
    }
}
