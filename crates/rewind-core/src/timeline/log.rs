//! [`Log`]: the history window as an append-only log whose clones share
//! storage and append without copying.
//!
//! A timeline is cloned for every publication, and the writer goes on
//! appending to its own copy. With a persistent vector, the first append
//! after each clone copies the shared tail chunk (64 pointers, 64 reference
//! counts). Here values live in fixed chunks of write-once slots: a clone
//! shares the chunks and only remembers its own length, so appending to it
//! fills the next slot in place. Only when another clone already filled
//! that slot (two clones of one timeline both appending) does the appender
//! copy the chunk's live prefix. A published clone never sees later slots:
//! it reads below its own length only.
//!
//! Dropping values from the front (the window's retention) moves the start;
//! a chunk is released once every clone has moved past it, so up to
//! `CHUNK - 1` values beyond the window can stay allocated.

use std::fmt;
use std::sync::{Arc, OnceLock};

use imbl::Vector;

/// Slots per chunk.
const CHUNK: usize = 64;

struct Chunk<T> {
    slots: Box<[OnceLock<T>]>,
}

impl<T> Chunk<T> {
    fn new() -> Self {
        Chunk {
            slots: (0..CHUNK).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// An append-only sequence with O(1) clone, O(1) amortised push to the back
/// and pop from the front, and O(log n) indexing.
pub(crate) struct Log<T> {
    chunks: Vector<Arc<Chunk<T>>>,
    /// Position of the first value in the first chunk.
    start: usize,
    len: usize,
}

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log {
            chunks: self.chunks.clone(),
            start: self.start,
            len: self.len,
        }
    }
}

impl<T: Clone + Send + Sync> Log<T> {
    pub(crate) fn new() -> Self {
        Log {
            chunks: Vector::new(),
            start: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at `index`, if `index < len`.
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let position = self.start + index;
        self.chunks[position / CHUNK].slots[position % CHUNK].get()
    }

    pub(crate) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    pub(crate) fn back(&self) -> Option<&T> {
        self.len.checked_sub(1).and_then(|last| self.get(last))
    }

    /// Oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        (0..self.len).filter_map(move |i| self.get(i))
    }

    pub(crate) fn push_back(&mut self, value: T) {
        let position = self.start + self.len;
        let (chunk, slot) = (position / CHUNK, position % CHUNK);
        if chunk == self.chunks.len() {
            let fresh = Chunk::new();
            // A fresh slot is empty.
            let _ = fresh.slots[0].set(value);
            self.chunks.push_back(Arc::new(fresh));
        } else if let Err(value) = self.chunks[chunk].slots[slot].set(value) {
            // Another clone appended here first: copy this chunk's values
            // up to our end, then append to the copy.
            let copy = Chunk::new();
            for (i, cell) in self.chunks[chunk].slots[..slot].iter().enumerate() {
                if let Some(existing) = cell.get() {
                    let _ = copy.slots[i].set(existing.clone());
                }
            }
            let _ = copy.slots[slot].set(value);
            self.chunks.set(chunk, Arc::new(copy));
        }
        self.len += 1;
    }

    pub(crate) fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        self.len -= 1;
        self.start += 1;
        if self.start == CHUNK || self.len == 0 {
            self.chunks.pop_front();
            self.start = if self.len == 0 { 0 } else { self.start - CHUNK };
            if self.len == 0 {
                self.chunks = Vector::new();
            }
        }
    }
}

impl<T: Clone + Send + Sync> std::ops::Index<usize> for Log<T> {
    type Output = T;
    fn index(&self, index: usize) -> &T {
        match self.get(index) {
            Some(value) => value,
            None => panic!("index {index} out of a log of {}", self.len),
        }
    }
}

impl<T: Clone + Send + Sync + fmt::Debug> fmt::Debug for Log<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(log: &Log<u32>) -> Vec<u32> {
        log.iter().copied().collect()
    }

    #[test]
    fn push_pop_and_index_across_chunks() {
        let mut log = Log::new();
        for i in 0..300 {
            log.push_back(i);
        }
        for _ in 0..130 {
            log.pop_front();
        }
        assert_eq!(log.len(), 170);
        assert_eq!(log[0], 130);
        assert_eq!(*log.back().unwrap(), 299);
        assert_eq!(values(&log), (130..300).collect::<Vec<_>>());
        assert_eq!(log.iter().next_back(), Some(&299));
        assert_eq!(log.get(170), None);
    }

    #[test]
    fn clones_are_independent_values() {
        let mut a = Log::new();
        for i in 0..70 {
            a.push_back(i);
        }
        let published = a.clone();
        // The writer appends in place; the published clone does not change.
        a.push_back(70);
        assert_eq!(published.len(), 70);
        assert_eq!(values(&published), (0..70).collect::<Vec<_>>());
        // A second clone of the published one appends something else at the
        // same position: it copies, and neither sees the other's value.
        let mut b = published.clone();
        b.push_back(1000);
        b.push_back(1001);
        assert_eq!(*a.back().unwrap(), 70);
        assert_eq!(values(&b)[68..], [68, 69, 1000, 1001]);
        a.push_back(71);
        assert_eq!(values(&a)[68..], [68, 69, 70, 71]);
        assert_eq!(values(&published), (0..70).collect::<Vec<_>>());
    }

    #[test]
    fn emptied_and_refilled() {
        let mut log = Log::new();
        for i in 0..65 {
            log.push_back(i);
        }
        for _ in 0..65 {
            log.pop_front();
        }
        assert!(log.is_empty());
        assert_eq!(log.front(), None);
        log.pop_front();
        log.push_back(7);
        assert_eq!(values(&log), [7]);
    }

    /// Against a plain vector, with clones taken and abandoned at random.
    #[test]
    fn matches_a_vector_model() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut logs = vec![(Log::new(), Vec::new())];
        for step in 0..20_000u32 {
            let which = (next() % logs.len() as u64) as usize;
            match next() % 10 {
                0 if logs.len() < 8 => {
                    let copy = logs[which].clone();
                    logs.push(copy);
                }
                1 if logs.len() > 1 => {
                    logs.swap_remove(which);
                }
                2 | 3 => {
                    let (log, model) = &mut logs[which];
                    log.pop_front();
                    if !model.is_empty() {
                        model.remove(0);
                    }
                }
                _ => {
                    let (log, model) = &mut logs[which];
                    log.push_back(step);
                    model.push(step);
                }
            }
            for (log, model) in &logs {
                assert_eq!(log.len(), model.len());
                assert_eq!(log.front(), model.first());
                assert_eq!(log.back(), model.last());
            }
        }
        for (log, model) in &logs {
            assert_eq!(&values(log), model);
        }
    }
}
