//! [`Object`]: the persistent ordered map behind JSON objects.
//!
//! A B+tree of `Arc`-shared nodes. Entries live in the leaves (16 each), keys
//! ([`Key`], inline when short) and values ([`Doc`]) in two fixed arrays
//! per leaf; a branch holds the smallest key of each child next to the
//! child's pointer (24 children). Every node is one allocation of
//! [`NODE_BYTES`] (800 bytes).
//!
//! - A clone is O(1) (one reference count).
//! - An update copies the nodes on the path from the root to its leaf
//!   (copy on write, `make_mut`: only nodes still shared with another version are
//!   copied), so every other node stays shared with the previous version.
//!   [`update_bytes`] estimates what one update copies.
//! - Built from sorted input ([`FromIterator`], the JSON parser,
//!   `Doc::from_json`), leaves are full; insertion at the end of a full
//!   leaf keeps it full, so ascending inserts fill leaves too.
//! - [`Object::diff`] walks two versions together and skips every node they
//!   share, so it costs the number of changed leaves, not the size.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use super::key::Probe;
use super::{Doc, Key};

/// Entries per leaf. Chosen by measurement (see `BENCHMARKS.md`): 32
/// read about 15% faster but every update copies twice the bytes (the
/// 1%-churn memory row grew from 59 to 87 MiB); 16 keeps one 100k-key
/// state at 5.0 MiB.
pub(super) const LEAF_CAP: usize = 16;
/// Children per branch: a branch (24 B key + 8 B pointer per child) is
/// then the size of a leaf (24 B key + 24 B value per entry), so the one
/// node type wastes nothing.
pub(super) const BRANCH_CAP: usize = 24;
// `Object::get_mut` remembers child indices in bytes.
const _: () = assert!(BRANCH_CAP <= 256);

/// Heap bytes of one node: the `Arc`'s two counters and the node.
pub const NODE_BYTES: usize = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Node>();

/// The estimated heap bytes one single-key update (replace, add or remove)
/// copies in an object of `len` entries: one node per level, the leaf and
/// the branches above it, for a tree as [`FromIterator`] builds it (full
/// leaves and branches). Keys spilled to the heap are shared, not copied,
/// and the new value itself is not counted. Time: O(log len).
pub fn update_bytes(len: usize) -> usize {
    NODE_BYTES * height_for(len)
}

/// Levels of a tree of `len` entries with full nodes (0 when empty).
fn height_for(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let mut nodes = len.div_ceil(LEAF_CAP);
    let mut height = 1;
    while nodes > 1 {
        nodes = nodes.div_ceil(BRANCH_CAP);
        height += 1;
    }
    height
}

/// A node's entries: `len` keys and items in sorted key order; the slots
/// past `len` hold defaults (an empty inline key, `null`, `None`).
struct Slots<T, const N: usize> {
    len: usize,
    keys: [Key; N],
    items: [T; N],
}

type Leaf = Slots<Doc, LEAF_CAP>;
type Branch = Slots<Option<Arc<Node>>, BRANCH_CAP>;

enum Node {
    Leaf(Leaf),
    /// `keys[i]` is the smallest key under `items[i]`, which is never `None`
    /// below `len`.
    Branch(Branch),
}

impl<T: Clone, const N: usize> Clone for Slots<T, N> {
    fn clone(&self) -> Self {
        Slots {
            len: self.len,
            keys: self.keys.clone(),
            items: self.items.clone(),
        }
    }

    /// Element by element, in place (see [`make_mut`]).
    fn clone_from(&mut self, source: &Self) {
        self.len = source.len;
        self.keys.clone_from(&source.keys);
        self.items.clone_from(&source.items);
    }
}

impl Clone for Node {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(leaf) => Node::Leaf(leaf.clone()),
            Node::Branch(branch) => Node::Branch(branch.clone()),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        match (self, source) {
            (Node::Leaf(a), Node::Leaf(b)) => a.clone_from(b),
            (Node::Branch(a), Node::Branch(b)) => a.clone_from(b),
            (this, source) => *this = source.clone(),
        }
    }
}

/// `Arc::make_mut` for nodes: a shared node is copied into a fresh
/// allocation element by element, rather than cloned on the stack and
/// moved (an 800-byte copy that stalled on the clone's small stores).
fn make_mut(node: &mut Arc<Node>) -> &mut Node {
    if Arc::get_mut(node).is_none() {
        let mut copy = Arc::new(match **node {
            Node::Leaf(_) => Node::Leaf(Leaf::new()),
            Node::Branch(_) => Node::Branch(Branch::new()),
        });
        Arc::get_mut(&mut copy)
            .expect("a new Arc is unique")
            .clone_from(node);
        *node = copy;
    }
    Arc::get_mut(node).expect("unique after the copy")
}

impl<T: Default, const N: usize> Slots<T, N> {
    fn new() -> Self {
        Slots {
            len: 0,
            keys: std::array::from_fn(|_| Key::default()),
            items: std::array::from_fn(|_| T::default()),
        }
    }

    /// Where `key` is (`Ok`) or would go (`Err`).
    #[inline]
    fn search(&self, key: &Probe<'_>) -> Result<usize, usize> {
        self.keys[..self.len].binary_search_by(|k| k.cmp_probe(key))
    }

    /// The child whose range holds `key` (branches).
    #[inline]
    fn child_index(&self, key: &Probe<'_>) -> usize {
        match self.search(key) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    fn is_full(&self) -> bool {
        self.len == N
    }

    fn push(&mut self, key: Key, item: T) {
        self.keys[self.len] = key;
        self.items[self.len] = item;
        self.len += 1;
    }

    fn insert_at(&mut self, i: usize, key: Key, item: T) {
        debug_assert!(self.len < N && i <= self.len);
        self.keys[i..=self.len].rotate_right(1);
        self.items[i..=self.len].rotate_right(1);
        self.keys[i] = key;
        self.items[i] = item;
        self.len += 1;
    }

    fn remove_at(&mut self, i: usize) -> (Key, T) {
        debug_assert!(i < self.len);
        let key = std::mem::take(&mut self.keys[i]);
        let item = std::mem::take(&mut self.items[i]);
        self.keys[i..self.len].rotate_left(1);
        self.items[i..self.len].rotate_left(1);
        self.len -= 1;
        (key, item)
    }

    /// Moves the entries from `at` on into a new node.
    fn split_off(&mut self, at: usize) -> Self {
        let mut right = Self::new();
        for i in at..self.len {
            right.push(
                std::mem::take(&mut self.keys[i]),
                std::mem::take(&mut self.items[i]),
            );
        }
        self.len = at;
        right
    }

    /// Moves every entry of `right` (all greater) to the end of `self`.
    fn append(&mut self, right: &mut Self) {
        for i in 0..right.len {
            self.push(
                std::mem::take(&mut right.keys[i]),
                std::mem::take(&mut right.items[i]),
            );
        }
        right.len = 0;
    }

    /// Evens out two neighbours (`self` on the left) holding more than `N`
    /// entries together.
    fn balance(&mut self, right: &mut Self) {
        let total = self.len + right.len;
        let want = total / 2;
        if self.len < want {
            let moved = want - self.len;
            for i in 0..moved {
                self.push(
                    std::mem::take(&mut right.keys[i]),
                    std::mem::take(&mut right.items[i]),
                );
            }
            right.keys[..right.len].rotate_left(moved);
            right.items[..right.len].rotate_left(moved);
            right.len -= moved;
        } else {
            let moved = self.len - want;
            right.keys[..right.len + moved].rotate_right(moved);
            right.items[..right.len + moved].rotate_right(moved);
            for i in 0..moved {
                right.keys[i] = std::mem::take(&mut self.keys[want + i]);
                right.items[i] = std::mem::take(&mut self.items[want + i]);
            }
            right.len += moved;
            self.len = want;
        }
    }
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(l) => l.len,
            Node::Branch(b) => b.len,
        }
    }

    fn min_key(&self) -> &Key {
        match self {
            Node::Leaf(l) => &l.keys[0],
            Node::Branch(b) => &b.keys[0],
        }
    }

    fn is_underfull(&self) -> bool {
        match self {
            Node::Leaf(l) => l.len < LEAF_CAP / 2,
            Node::Branch(b) => b.len < BRANCH_CAP / 2,
        }
    }

    fn child(&self, i: usize) -> &Arc<Node> {
        match self {
            Node::Branch(b) => b.items[i].as_ref().expect("a branch child below len"),
            Node::Leaf(_) => unreachable!("a leaf has no children"),
        }
    }

    fn height(&self) -> usize {
        let mut node = self;
        let mut height = 1;
        while let Node::Branch(b) = node {
            node = b.items[0].as_deref().expect("a branch has children");
            height += 1;
        }
        height
    }
}

fn child_mut(slot: &mut Option<Arc<Node>>) -> &mut Arc<Node> {
    slot.as_mut().expect("a branch child below len")
}

/// A split off right sibling and its smallest key.
type Split = Option<(Key, Arc<Node>)>;

fn insert_rec(node: &mut Arc<Node>, key: Key, value: Doc) -> (Option<Doc>, Split) {
    match make_mut(node) {
        Node::Leaf(leaf) => match leaf.search(&Probe::of(&key)) {
            Ok(i) => (Some(std::mem::replace(&mut leaf.items[i], value)), None),
            Err(i) if !leaf.is_full() => {
                leaf.insert_at(i, key, value);
                (None, None)
            }
            Err(i) => {
                // At the end, keep this leaf full (ascending inserts);
                // elsewhere split at the middle.
                let mut right;
                if i == LEAF_CAP {
                    right = Leaf::new();
                    right.push(key, value);
                } else {
                    right = leaf.split_off(LEAF_CAP / 2);
                    if i <= leaf.len {
                        leaf.insert_at(i, key, value);
                    } else {
                        right.insert_at(i - leaf.len, key, value);
                    }
                }
                let min = right.keys[0].clone();
                (None, Some((min, Arc::new(Node::Leaf(right)))))
            }
        },
        Node::Branch(branch) => {
            let i = branch.child_index(&Probe::of(&key));
            if key < branch.keys[i] {
                // A new smallest key (only possible under the first child).
                branch.keys[i] = key.clone();
            }
            let (old, split) = insert_rec(child_mut(&mut branch.items[i]), key, value);
            let Some((min, right)) = split else {
                return (old, None);
            };
            let at = i + 1;
            if !branch.is_full() {
                branch.insert_at(at, min, Some(right));
                return (old, None);
            }
            let mut upper;
            if at == BRANCH_CAP {
                upper = Branch::new();
                upper.push(min, Some(right));
            } else {
                upper = branch.split_off(BRANCH_CAP / 2);
                if at <= branch.len {
                    branch.insert_at(at, min, Some(right));
                } else {
                    upper.insert_at(at - branch.len, min, Some(right));
                }
            }
            let upper_min = upper.keys[0].clone();
            (old, Some((upper_min, Arc::new(Node::Branch(upper)))))
        }
    }
}

/// Removes `key`, which is present under `node`.
fn remove_rec(node: &mut Arc<Node>, key: &Probe<'_>) -> (Key, Doc) {
    match make_mut(node) {
        Node::Leaf(leaf) => {
            let i = leaf.search(key).expect("the key is present");
            leaf.remove_at(i)
        }
        Node::Branch(branch) => {
            let i = branch.child_index(key);
            let removed = remove_rec(child_mut(&mut branch.items[i]), key);
            let child = branch.items[i]
                .as_deref()
                .expect("a branch child below len");
            if child.len() == 0 {
                branch.remove_at(i);
            } else {
                if branch.keys[i].cmp_probe(key).is_eq() {
                    branch.keys[i] = child.min_key().clone();
                }
                if child.is_underfull() {
                    rebalance(branch, i);
                }
            }
            removed
        }
    }
}

/// Merges the underfull child `i` with a neighbour, or evens the two out
/// when they do not fit in one node.
fn rebalance(branch: &mut Branch, i: usize) {
    if branch.len < 2 {
        return;
    }
    let left = if i + 1 < branch.len { i } else { i - 1 };
    let (head, tail) = branch.items.split_at_mut(left + 1);
    let a = make_mut(child_mut(&mut head[left]));
    let b = make_mut(child_mut(&mut tail[0]));
    let merged = match (a, b) {
        (Node::Leaf(a), Node::Leaf(b)) => merge_or_balance(a, b),
        (Node::Branch(a), Node::Branch(b)) => merge_or_balance(a, b),
        _ => unreachable!("neighbours have the same height"),
    };
    if merged {
        branch.remove_at(left + 1);
    } else {
        let min = branch.items[left + 1]
            .as_deref()
            .expect("a branch child below len")
            .min_key()
            .clone();
        branch.keys[left + 1] = min;
    }
}

/// Whether `b` was merged into `a` (and is now empty).
fn merge_or_balance<T: Default, const N: usize>(a: &mut Slots<T, N>, b: &mut Slots<T, N>) -> bool {
    if a.len + b.len <= N {
        a.append(b);
        true
    } else {
        a.balance(b);
        false
    }
}

/// Builds the levels above `nodes` (each with its smallest key), filling
/// every node: all but the last few hold `cap` entries.
fn build_levels(mut level: Vec<(Key, Arc<Node>)>) -> Option<Arc<Node>> {
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(BRANCH_CAP));
        let mut children = level.into_iter();
        for size in even_chunks(children.len(), BRANCH_CAP) {
            let mut branch = Branch::new();
            for (key, child) in children.by_ref().take(size) {
                branch.push(key, Some(child));
            }
            next.push((branch.keys[0].clone(), Arc::new(Node::Branch(branch))));
        }
        level = next;
    }
    level.pop().map(|(_, node)| node)
}

/// Sizes of `ceil(n / cap)` chunks that differ by at most one: full nodes,
/// and none under half full when there are two or more.
fn even_chunks(n: usize, cap: usize) -> impl Iterator<Item = usize> {
    let chunks = n.div_ceil(cap).max(1);
    let (base, extra) = (n / chunks, n % chunks);
    (0..chunks).map(move |i| base + usize::from(i < extra))
}

/// A persistent JSON object: a map from [`Key`] to [`Doc`], ordered by key.
///
/// `Clone` is O(1); updates copy O(log n) nodes and share the rest with the
/// previous version. 16 bytes: the length and the root pointer.
#[derive(Clone, Default)]
pub struct Object {
    len: usize,
    root: Option<Arc<Node>>,
}

impl Object {
    /// An empty object. Time: O(1), no allocation.
    pub fn new() -> Object {
        Object::default()
    }

    /// Number of entries. Time: O(1).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries. Time: O(1).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether both are the same tree (or both empty): then they are equal
    /// without looking further. Time: O(1).
    pub fn ptr_eq(&self, other: &Object) -> bool {
        match (&self.root, &other.root) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The value of `key`. Time: O(log n) key comparisons, on bytes.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Doc> {
        self.get_key_value(key).map(|(_, v)| v)
    }

    /// The stored key and value of `key`. Time: O(log n).
    pub fn get_key_value(&self, key: &str) -> Option<(&Key, &Doc)> {
        let key = &Probe::new(key);
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Leaf(leaf) => {
                    let i = leaf.search(key).ok()?;
                    return Some((&leaf.keys[i], &leaf.items[i]));
                }
                Node::Branch(branch) => {
                    node = branch.items[branch.child_index(key)]
                        .as_deref()
                        .expect("a branch child below len");
                }
            }
        }
    }

    /// Whether `key` is present. Time: O(log n).
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value of `key`, mutable: copies the path to it first where it is
    /// shared with another version (nothing is copied when `key` is absent).
    /// Searches once: the way down is remembered, then followed copying.
    /// Time: O(log n).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Doc> {
        const MAX_DEPTH: usize = 32;
        let probe = &Probe::new(key);
        // Child indices on the way down (deeper trees search again on the
        // way down; they do not occur with nodes this wide).
        let mut way = [0u8; MAX_DEPTH];
        let mut depth = 0;
        let mut node = self.root.as_deref()?;
        let slot = loop {
            match node {
                Node::Leaf(leaf) => break leaf.search(probe).ok()?,
                Node::Branch(branch) => {
                    let i = branch.child_index(probe);
                    if let Some(step) = way.get_mut(depth) {
                        *step = i as u8;
                    }
                    depth += 1;
                    node = branch.items[i]
                        .as_deref()
                        .expect("a branch child below len");
                }
            }
        };
        let mut node = make_mut(self.root.as_mut()?);
        let mut level = 0;
        loop {
            match node {
                Node::Leaf(leaf) => return Some(&mut leaf.items[slot]),
                Node::Branch(branch) => {
                    let i = match way.get(level) {
                        Some(&i) if depth <= MAX_DEPTH => usize::from(i),
                        _ => branch.child_index(probe),
                    };
                    level += 1;
                    node = make_mut(child_mut(&mut branch.items[i]));
                }
            }
        }
    }

    /// Inserts or replaces; returns the previous value. Copies the path to
    /// the leaf where it is shared. Time: O(log n).
    pub fn insert(&mut self, key: impl Into<Key>, value: Doc) -> Option<Doc> {
        let key = key.into();
        let Some(root) = self.root.as_mut() else {
            let mut leaf = Leaf::new();
            leaf.push(key, value);
            self.root = Some(Arc::new(Node::Leaf(leaf)));
            self.len = 1;
            return None;
        };
        let (old, split) = insert_rec(root, key, value);
        if let Some((min, right)) = split {
            let left = self.root.take().expect("the root was just updated");
            let mut branch = Branch::new();
            branch.push(left.min_key().clone(), Some(left));
            branch.push(min, Some(right));
            self.root = Some(Arc::new(Node::Branch(branch)));
        }
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// A copy with `key` set to `value` (the original is unchanged).
    /// Time: O(log n).
    pub fn update(&self, key: impl Into<Key>, value: Doc) -> Object {
        let mut copy = self.clone();
        copy.insert(key, value);
        copy
    }

    /// Removes `key`; returns its value. Copies the path where shared
    /// (nothing when `key` is absent). Time: O(log n).
    pub fn remove(&mut self, key: &str) -> Option<Doc> {
        self.remove_with_key(key).map(|(_, v)| v)
    }

    /// Removes `key`; returns the stored key and value. Time: O(log n).
    pub fn remove_with_key(&mut self, key: &str) -> Option<(Key, Doc)> {
        if !self.contains_key(key) {
            return None;
        }
        let root = self.root.as_mut()?;
        let removed = remove_rec(root, &Probe::new(key));
        self.len -= 1;
        loop {
            let root = self.root.as_deref().expect("the root was just updated");
            match root {
                Node::Leaf(Slots { len: 0, .. }) | Node::Branch(Slots { len: 0, .. }) => {
                    self.root = None
                }
                Node::Branch(branch) if branch.len == 1 => {
                    self.root = branch.items[0].clone();
                    continue;
                }
                _ => {}
            }
            break;
        }
        Some(removed)
    }

    /// A copy without `key` (the original is unchanged). Time: O(log n).
    pub fn without(&self, key: &str) -> Object {
        let mut copy = self.clone();
        copy.remove(key);
        copy
    }

    /// The entries in key order. Time: O(1) to start, O(1) amortized per
    /// entry.
    pub fn iter(&self) -> Iter<'_> {
        let mut iter = Iter {
            branches: Vec::new(),
            leaf: None,
            remaining: self.len,
        };
        if let Some(root) = self.root.as_deref() {
            iter.descend(root);
        }
        iter
    }

    /// The keys in order. Time: as [`Object::iter`].
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Key> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values in key order. Time: as [`Object::iter`].
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Doc> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// The differences from `self` to `other`, in key order: keys only in
    /// `other` are [`DiffItem::Add`], keys only in `self`
    /// [`DiffItem::Remove`], keys in both with unequal values
    /// [`DiffItem::Update`]. Nodes shared by both versions are skipped
    /// without being visited. Time: O(changed leaves · (leaf size + log n))
    /// for versions that share structure, O(n) for unrelated ones.
    pub fn diff<'a>(&'a self, other: &'a Object) -> DiffIter<'a> {
        let side = |object: &'a Object| {
            object
                .root
                .as_ref()
                .map(|root| vec![Item::Node(root, root.height())])
                .unwrap_or_default()
        };
        DiffIter {
            old: side(self),
            new: side(other),
        }
    }

    /// Builds from entries sorted by key without duplicates, filling every
    /// node. Time: O(n).
    fn from_sorted(entries: Vec<(Key, Doc)>) -> Object {
        let len = entries.len();
        let mut entries = entries.into_iter();
        let mut leaves = Vec::with_capacity(len.div_ceil(LEAF_CAP));
        if len > 0 {
            for size in even_chunks(len, LEAF_CAP) {
                let mut leaf = Leaf::new();
                for (key, value) in entries.by_ref().take(size) {
                    leaf.push(key, value);
                }
                leaves.push((leaf.keys[0].clone(), Arc::new(Node::Leaf(leaf))));
            }
        }
        Object {
            len,
            root: build_levels(leaves),
        }
    }

    /// Builds from entries in any order; of equal keys the last wins (as
    /// repeated inserts would). Time: O(n) when sorted, else O(n log n).
    pub fn from_entries(mut entries: Vec<(Key, Doc)>) -> Object {
        let sorted = entries.is_sorted_by(|a, b| a.0 < b.0);
        if !sorted {
            // Stable: of equal keys the last stays last.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut deduped: Vec<(Key, Doc)> = Vec::with_capacity(entries.len());
            for entry in entries {
                match deduped.last_mut() {
                    Some(last) if last.0 == entry.0 => *last = entry,
                    _ => deduped.push(entry),
                }
            }
            entries = deduped;
        }
        Object::from_sorted(entries)
    }

    /// Estimated heap bytes owned: every node, keys that spill to the heap,
    /// and the values' own heap bytes. Time: O(size).
    pub fn heap_bytes(&self) -> usize {
        fn walk(node: &Node) -> usize {
            NODE_BYTES
                + match node {
                    Node::Leaf(leaf) => (0..leaf.len)
                        .map(|i| leaf.keys[i].heap_bytes() + leaf.items[i].heap_bytes())
                        .sum::<usize>(),
                    // Branch keys are clones of leaf keys: a spilled one
                    // shares the leaf key's allocation.
                    Node::Branch(branch) => (0..branch.len).map(|i| walk(node.child(i))).sum(),
                }
        }
        self.root.as_deref().map_or(0, walk)
    }

    /// Checks the tree's invariants (tests): order, smallest keys in
    /// branches, fill, equal depth, length.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        fn walk(node: &Node, is_root: bool, out: &mut Vec<Key>) -> usize {
            match node {
                Node::Leaf(leaf) => {
                    assert!(is_root || leaf.len >= 1, "empty leaf");
                    out.extend(leaf.keys[..leaf.len].iter().cloned());
                    1
                }
                Node::Branch(branch) => {
                    assert!(branch.len >= if is_root { 2 } else { 1 });
                    let mut height = None;
                    for i in 0..branch.len {
                        let child = node.child(i);
                        assert_eq!(&branch.keys[i], child.min_key(), "stale smallest key");
                        let h = walk(child, false, out);
                        assert!(height.is_none_or(|x| x == h), "uneven depth");
                        height = Some(h);
                    }
                    height.unwrap_or(0) + 1
                }
            }
        }
        let mut keys = Vec::new();
        if let Some(root) = self.root.as_deref() {
            walk(root, true, &mut keys);
        }
        assert_eq!(keys.len(), self.len);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Object {
    /// Entry by entry, skipping shared nodes. Time: O(changes · log n) for
    /// related versions.
    fn eq(&self, other: &Object) -> bool {
        self.ptr_eq(other) || (self.len == other.len && self.diff(other).next().is_none())
    }
}

impl<K: Into<Key>, V: Into<Doc>> FromIterator<(K, V)> for Object {
    /// Builds with full nodes; of equal keys the last wins. Time: O(n) for
    /// sorted input, else O(n log n).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Object {
        Object::from_entries(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<Key>, V: Into<Doc>> Extend<(K, V)> for Object {
    /// Inserts each entry. Time: O(k log n).
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v.into());
        }
    }
}

impl<'a> IntoIterator for &'a Object {
    type Item = (&'a Key, &'a Doc);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<&str> for Object {
    type Output = Doc;
    /// The value of `key`; panics when absent.
    fn index(&self, key: &str) -> &Doc {
        self.get(key).expect("no such key in the object")
    }
}

impl serde::Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// Iterator over an [`Object`]'s entries in key order.
pub struct Iter<'a> {
    /// The branches above the current leaf, each with the index of the
    /// next child to visit.
    branches: Vec<(&'a Branch, usize)>,
    leaf: Option<(&'a Leaf, usize)>,
    remaining: usize,
}

impl<'a> Iter<'a> {
    fn descend(&mut self, mut node: &'a Node) {
        loop {
            match node {
                Node::Leaf(leaf) => {
                    self.leaf = Some((leaf, 0));
                    return;
                }
                Node::Branch(branch) => {
                    self.branches.push((branch, 1));
                    node = branch.items[0].as_deref().expect("a branch has children");
                }
            }
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Key, &'a Doc);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((leaf, i)) = &mut self.leaf {
                if *i < leaf.len {
                    let at = *i;
                    *i += 1;
                    self.remaining -= 1;
                    return Some((&leaf.keys[at], &leaf.items[at]));
                }
                self.leaf = None;
            }
            let (branch, i) = self.branches.last_mut()?;
            if *i < branch.len {
                let child = branch.items[*i]
                    .as_deref()
                    .expect("a branch child below len");
                *i += 1;
                self.descend(child);
            } else {
                self.branches.pop();
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl std::iter::FusedIterator for Iter<'_> {}

/// One difference between two [`Object`]s, from [`Object::diff`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiffItem<'a> {
    /// Only in the newer object.
    Add(&'a Key, &'a Doc),
    /// Only in the older object.
    Remove(&'a Key, &'a Doc),
    /// In both, with unequal values.
    Update {
        /// The older entry.
        old: (&'a Key, &'a Doc),
        /// The newer entry.
        new: (&'a Key, &'a Doc),
    },
}

/// What is left to compare on one side: a whole subtree (with its height)
/// or one entry.
#[derive(Clone, Copy)]
enum Item<'a> {
    Node(&'a Arc<Node>, usize),
    Entry(&'a Key, &'a Doc),
}

/// Iterator over the differences of two [`Object`]s; see [`Object::diff`].
pub struct DiffIter<'a> {
    /// Stacks of what is left, next on top.
    old: Vec<Item<'a>>,
    new: Vec<Item<'a>>,
}

/// Replaces the node on top of `stack` by its children (or entries).
fn expand<'a>(stack: &mut Vec<Item<'a>>) {
    let Some(Item::Node(node, height)) = stack.pop() else {
        unreachable!("only nodes are expanded");
    };
    match &**node {
        Node::Leaf(leaf) => {
            for i in (0..leaf.len).rev() {
                stack.push(Item::Entry(&leaf.keys[i], &leaf.items[i]));
            }
        }
        Node::Branch(branch) => {
            for i in (0..branch.len).rev() {
                let child = branch.items[i].as_ref().expect("a branch child below len");
                stack.push(Item::Node(child, height - 1));
            }
        }
    }
}

impl<'a> Iterator for DiffIter<'a> {
    type Item = DiffItem<'a>;

    fn next(&mut self) -> Option<DiffItem<'a>> {
        loop {
            match (self.old.last().copied(), self.new.last().copied()) {
                (None, None) => return None,
                (Some(Item::Entry(k, v)), None) => {
                    self.old.pop();
                    return Some(DiffItem::Remove(k, v));
                }
                (None, Some(Item::Entry(k, v))) => {
                    self.new.pop();
                    return Some(DiffItem::Add(k, v));
                }
                (Some(Item::Node(..)), None) => expand(&mut self.old),
                (None, Some(Item::Node(..))) => expand(&mut self.new),
                (Some(Item::Node(a, ha)), Some(Item::Node(b, hb))) => {
                    if Arc::ptr_eq(a, b) {
                        self.old.pop();
                        self.new.pop();
                    } else if ha >= hb {
                        expand(&mut self.old);
                    } else {
                        expand(&mut self.new);
                    }
                }
                (Some(Item::Node(a, _)), Some(Item::Entry(k, v))) => {
                    if k < a.min_key() {
                        self.new.pop();
                        return Some(DiffItem::Add(k, v));
                    }
                    expand(&mut self.old);
                }
                (Some(Item::Entry(k, v)), Some(Item::Node(b, _))) => {
                    if k < b.min_key() {
                        self.old.pop();
                        return Some(DiffItem::Remove(k, v));
                    }
                    expand(&mut self.new);
                }
                (Some(Item::Entry(ka, va)), Some(Item::Entry(kb, vb))) => match ka.cmp(kb) {
                    Ordering::Less => {
                        self.old.pop();
                        return Some(DiffItem::Remove(ka, va));
                    }
                    Ordering::Greater => {
                        self.new.pop();
                        return Some(DiffItem::Add(kb, vb));
                    }
                    Ordering::Equal => {
                        self.old.pop();
                        self.new.pop();
                        if !va.ptr_eq(vb) && va != vb {
                            return Some(DiffItem::Update {
                                old: (ka, va),
                                new: (kb, vb),
                            });
                        }
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    type Model = BTreeMap<String, i64>;

    /// Keys spread over `0..span`; every fifth is longer than the inline
    /// limit, so spilled keys are exercised too.
    fn key_name(i: u32) -> String {
        if i.is_multiple_of(5) {
            format!("a_rather_long_key_name_{i:08}")
        } else {
            format!("k{i:06}")
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, i64),
        Remove(u32),
        /// Sets through `get_mut` (no effect when absent).
        Set(u32, i64),
        /// Remembers the current version (to check it is never changed).
        Keep,
    }

    fn op(span: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..span, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0..span).prop_map(Op::Remove),
            1 => (0..span, any::<i64>()).prop_map(|(k, v)| Op::Set(k, v)),
            1 => Just(Op::Keep),
        ]
    }

    fn assert_same(object: &Object, model: &Model) {
        object.check();
        assert_eq!(object.len(), model.len());
        assert_eq!(object.is_empty(), model.is_empty());
        let entries: Vec<(String, i64)> = object
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_i64().expect("an integer")))
            .collect();
        let expected: Vec<(String, i64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(entries, expected);
        assert_eq!(object.iter().len(), model.len());
    }

    /// The model's diff: (key, old, new) in key order.
    fn model_diff(a: &Model, b: &Model) -> Vec<(String, Option<i64>, Option<i64>)> {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (x, y) = (a.get(k).copied(), b.get(k).copied());
                (x != y).then(|| (k.clone(), x, y))
            })
            .collect()
    }

    fn object_diff(a: &Object, b: &Object) -> Vec<(String, Option<i64>, Option<i64>)> {
        a.diff(b)
            .map(|item| match item {
                DiffItem::Add(k, v) => (k.to_string(), None, v.as_i64()),
                DiffItem::Remove(k, v) => (k.to_string(), v.as_i64(), None),
                DiffItem::Update { old, new } => {
                    assert_eq!(old.0, new.0);
                    (old.0.to_string(), old.1.as_i64(), new.1.as_i64())
                }
            })
            .collect()
    }

    fn run(start: Vec<(u32, i64)>, ops: Vec<Op>) {
        let mut model: Model = start.iter().map(|&(k, v)| (key_name(k), v)).collect();
        let mut object: Object = start
            .iter()
            .map(|&(k, v)| (key_name(k), Doc::from(v)))
            .collect();
        assert_same(&object, &model);
        let (first, first_model) = (object.clone(), model.clone());
        let mut kept = vec![(object.clone(), model.clone())];
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    let old = object.insert(key_name(k), Doc::from(v));
                    let expected = model.insert(key_name(k), v);
                    assert_eq!(old.and_then(|d| d.as_i64()), expected);
                }
                Op::Remove(k) => {
                    let old = object.remove(&key_name(k));
                    assert_eq!(old.and_then(|d| d.as_i64()), model.remove(&key_name(k)));
                }
                Op::Set(k, v) => {
                    let key = key_name(k);
                    match (object.get_mut(&key), model.get_mut(&key)) {
                        (Some(d), Some(m)) => {
                            *d = Doc::from(v);
                            *m = v;
                        }
                        (None, None) => {}
                        _ => panic!("get_mut disagrees on {key}"),
                    }
                }
                Op::Keep => kept.push((object.clone(), model.clone())),
            }
            if object.len() < 300 {
                object.check();
            }
            let k = key_name(0);
            assert_eq!(object.get(&k).and_then(Doc::as_i64), model.get(&k).copied());
        }
        assert_same(&object, &model);
        for k in 0..64 {
            let key = key_name(k);
            assert_eq!(
                object.get(&key).and_then(Doc::as_i64),
                model.get(&key).copied()
            );
            assert_eq!(object.contains_key(&key), model.contains_key(&key));
        }
        // Older versions are untouched, and diffs between any two match the
        // model's.
        for (old, old_model) in &kept {
            assert_same(old, old_model);
            assert_eq!(object_diff(old, &object), model_diff(old_model, &model));
            assert_eq!(object_diff(&object, old), model_diff(&model, old_model));
            assert_eq!(*old == object, *old_model == model);
        }
        assert_eq!(
            object_diff(&first, &object),
            model_diff(&first_model, &model)
        );
        // A rebuilt copy shares nothing and diffs the same.
        let rebuilt: Object = object.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(object_diff(&object, &rebuilt).is_empty());
        assert_eq!(
            object_diff(&first, &rebuilt),
            model_diff(&first_model, &model)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn small_maps_behave_like_btreemap(
            start in prop::collection::vec((0u32..200, any::<i64>()), 0..100),
            ops in prop::collection::vec(op(200), 0..400),
        ) {
            run(start, ops);
        }

        #[test]
        fn deep_maps_behave_like_btreemap(
            size in 0usize..6000,
            ops in prop::collection::vec(op(8000), 0..1500),
        ) {
            run((0..size as u32).map(|i| (i, i64::from(i))).collect(), ops);
        }
    }

    #[test]
    fn removing_everything_in_any_order_empties_the_tree() {
        for size in [1usize, 33, 1000, 3000] {
            let mut object: Object = (0..size)
                .map(|i| (key_name(i as u32), Doc::from(i as i64)))
                .collect();
            object.check();
            let full = object.clone();
            // Every third key, then the rest from the end.
            for i in (0..size).step_by(3) {
                assert!(object.remove(&key_name(i as u32)).is_some());
            }
            object.check();
            for i in (0..size).rev() {
                object.remove(&key_name(i as u32));
                object.check();
            }
            assert!(object.is_empty() && object.root.is_none());
            assert_eq!(full.len(), size);
            full.check();
        }
    }

    #[test]
    fn ascending_inserts_fill_leaves_and_bulk_builds_are_full() {
        let n: usize = 100_000;
        let built: Object = (0..n)
            .map(|i| (format!("key_{i:011}"), Doc::from(i as i64)))
            .collect();
        let mut inserted = Object::new();
        for i in 0..n {
            inserted.insert(format!("key_{i:011}"), Doc::from(i as i64));
        }
        built.check();
        inserted.check();
        let nodes = |o: &Object| o.heap_bytes() / NODE_BYTES;
        // Full nodes on every level.
        let (mut level, mut full) = (n.div_ceil(LEAF_CAP), 0);
        loop {
            full += level;
            if level == 1 {
                break;
            }
            level = level.div_ceil(BRANCH_CAP);
        }
        assert_eq!(nodes(&built), full);
        assert!(
            nodes(&inserted) <= nodes(&built) + 3,
            "{}",
            nodes(&inserted)
        );
        assert_eq!(built, inserted);
    }

    #[test]
    fn an_update_copies_one_path_and_shares_the_rest() {
        let n: usize = 100_000;
        let a: Object = (0..n)
            .map(|i| (format!("key_{i:011}"), Doc::from(i as i64)))
            .collect();
        let mut b = a.clone();
        b.insert("key_00000050000", Doc::from(-1));
        // Nodes of `b` not shared with `a`.
        fn unshared(
            b: &Arc<Node>,
            out: &mut usize,
            shared: &std::collections::HashSet<*const Node>,
        ) {
            if shared.contains(&Arc::as_ptr(b)) {
                return;
            }
            *out += 1;
            if let Node::Branch(branch) = &**b {
                for i in 0..branch.len {
                    unshared(b.child(i), out, shared);
                }
            }
        }
        fn all(node: &Arc<Node>, set: &mut std::collections::HashSet<*const Node>) {
            set.insert(Arc::as_ptr(node));
            if let Node::Branch(branch) = &**node {
                for i in 0..branch.len {
                    all(node.child(i), set);
                }
            }
        }
        let mut set = std::collections::HashSet::new();
        all(a.root.as_ref().unwrap(), &mut set);
        let mut copied = 0;
        unshared(b.root.as_ref().unwrap(), &mut copied, &set);
        assert_eq!(copied, height_for(n));
        assert_eq!(copied * NODE_BYTES, update_bytes(n));
        assert_eq!(a.root.as_ref().unwrap().height(), height_for(n));
        assert_eq!(a.get("key_00000050000").and_then(Doc::as_i64), Some(50_000));
        assert_eq!(
            object_diff(&a, &b),
            [("key_00000050000".to_owned(), Some(50_000), Some(-1))]
        );

        // A long key is shared by both versions, not copied.
        let long = "a_key_that_is_too_long_to_be_inline";
        let mut c = a.clone();
        c.insert(long, Doc::from(1));
        let d = c.update("key_00000000001", Doc::from(2));
        let (kc, _) = c.get_key_value(long).unwrap();
        let (kd, _) = d.get_key_value(long).unwrap();
        assert!(!kc.is_inline() && kc.ptr_eq(kd));
    }
}
