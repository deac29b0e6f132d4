//! Documents, deep-copy baselines, patches and a small deterministic RNG.
//!
//! Keys are 15 bytes (`key_00000000123`), values small integers: the same
//! content in a rewind [`Doc`] and in a `HashMap<String, i64>`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rewind::core::{Doc, Patch, PatchOp, Pointer};

/// The deep-copy baseline's state.
pub(crate) type Map = HashMap<String, i64>;

/// The key of entry `i`.
pub(crate) fn key(i: usize) -> String {
    format!("key_{i:011}")
}

/// A flat object of `n` keys, values `0..n`.
pub(crate) fn doc(n: usize) -> Doc {
    (0..n).map(|i| (key(i), i as i64)).collect()
}

/// The same content as [`doc`] in a `HashMap`.
pub(crate) fn map(n: usize) -> Map {
    (0..n).map(|i| (key(i), i as i64)).collect()
}

/// The seed's baseline for taking or restoring a state: deep-clone the
/// map, `iters` times. Freeing the copies is left out of the time:
/// generous to the baseline.
pub(crate) fn deep_clones(map: Arc<Map>) -> impl FnMut(u64) -> std::time::Duration + Send {
    move |iters| {
        let mut copies = Vec::with_capacity(iters as usize);
        let started = std::time::Instant::now();
        for _ in 0..iters {
            copies.push((*map).clone());
        }
        let took = started.elapsed();
        drop(copies);
        took
    }
}

/// One `replace` per key, setting `value`.
pub(crate) fn replace_patch(keys: &[usize], value: i64) -> Patch {
    Patch::new(
        keys.iter()
            .map(|&k| PatchOp::Replace {
                path: Pointer::from_tokens([key(k)]),
                value: Doc::from(value),
            })
            .collect(),
    )
}

/// `count` one-key patches on random keys of an `n`-key document.
pub(crate) fn one_key_patches(rng: &mut Rng, n: usize, count: usize) -> Arc<Vec<Patch>> {
    Arc::new(
        (0..count)
            .map(|i| replace_patch(&[rng.below(n)], -(i as i64)))
            .collect(),
    )
}

/// xorshift64*: deterministic, no dependency, good enough to spread keys.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `k` distinct indices in `0..n`.
    pub(crate) fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n);
        let mut seen = HashSet::with_capacity(k);
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let i = self.below(n);
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}
