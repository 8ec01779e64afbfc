//! CCF's Merkle tree over ledger entries: append, roots, inclusion paths, flushing on global
//! commit, retraction on rollback, and the `public:ccf.internal.tree` serialisation.
//!
//! # Shape (`3rdparty/internal/merklecpp/merklecpp.h`, `src/node/history.h`)
//!
//! - A node's hash is `SHA-256(left ‖ right)` over the two 32-byte child hashes. There is no
//!   domain-separation prefix (this is *not* RFC 6962).
//! - When a level has an odd number of nodes, the last one is promoted to the next level
//!   unchanged (not duplicated, not hashed).
//! - Leaf `i` is the leaf of seqno `i`; CCF appends a leaf 0 of 32 zero bytes itself. This crate
//!   knows nothing about that: a tree is just a list of 32-byte leaves.
//!
//! Because of odd promotion, the tree over `n` leaves is the right fold over the perfect
//! subtrees of the binary decomposition of `n`, largest (leftmost) first:
//! `root = H(P_a, H(P_b, … P_z))`. For `n = 7`: `H(P₄(0..4), H(P₂(4..6), leaf 6))`.
//!
//! # Representation
//!
//! [`MerkleTree`] keeps, for each level `k`, the hashes of the *complete* perfect subtrees of
//! `2^k` leaves (aligned at multiples of `2^k`) from index `(first_index >> k) & !1` upward. That
//! is every node a future root, path or serialisation can need: the nodes over retained leaves,
//! plus the one flushed left sibling per level where bit `k` of `first_index` is set. Appending a
//! leaf completes at most one node per level (amortised O(1) hashes); a root or path combines at
//! most one stored node per level (O(log n)). Memory is about two hashes per retained leaf plus
//! one per level.
//!
//! # Serialisation of `public:ccf.internal.tree` (merklecpp `TreeT::serialise(from, to)`)
//!
//! | Field | Encoding |
//! |---|---|
//! | `num_leaves` | u64 **big-endian**: number of leaves serialised |
//! | `first_index` | u64 big-endian: index of the first serialised leaf (the flush point) |
//! | leaves | `num_leaves` × 32 bytes |
//! | extra hashes | for each set bit `k` of `first_index`, least significant first: the 32-byte hash of the flushed perfect subtree of `2^k` leaves ending just before the left edge at that level |
//!
//! A serialisation with zero leaves and a non-zero `first_index` is invalid (merklecpp and
//! `ccf/merkletree.py` both reject it), and so is a tree state that would produce one; see
//! [`MerkleTree::flush_to`] and [`MerkleTree::retract_to`].

use std::collections::VecDeque;

use coco_crypto::Sha256;

/// A 32-byte SHA-256 hash: a leaf or an interior node.
pub type Hash = [u8; 32];

/// Size of every hash in the tree and in its serialisation.
pub const HASH_SIZE_BYTES: usize = 32;

/// Size of the serialisation header (`num_leaves` and `first_index`, both u64 BE).
pub const SERIALISED_HEADER_SIZE_BYTES: usize = 16;

/// Why a tree operation refused its arguments or a serialisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A root of an empty tree was requested.
    #[error("an empty tree has no root")]
    Empty,
    /// A leaf count or index lies outside what the tree retains.
    #[error("{what} {value} is outside the retained range {first_index}..={len}")]
    OutOfRange {
        /// Which argument was out of range.
        what: &'static str,
        /// The offending value.
        value: u64,
        /// The first retained leaf index.
        first_index: u64,
        /// The number of leaves in the tree.
        len: u64,
    },
    /// The serialisation ends before the header, leaves or extra hashes it announces.
    #[error("serialised tree truncated: need {needed_bytes} bytes, have {actual_bytes}")]
    Truncated {
        /// Bytes the header implies.
        needed_bytes: u64,
        /// Bytes present.
        actual_bytes: u64,
    },
    /// The serialisation has bytes after the last extra hash.
    #[error("serialised tree has {0} trailing bytes")]
    TrailingBytes(u64),
    /// The serialisation holds no leaves but claims flushed ones, which cannot define a root.
    #[error("serialised tree has no retained leaves but first_index {0}")]
    NoRetainedLeaves(u64),
    /// `first_index + num_leaves` overflows u64.
    #[error("serialised tree leaf indices overflow")]
    IndexOverflow,
}

/// One step of an inclusion proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathElem {
    /// `true` if `hash` is the left sibling (fold as `H(hash ‖ acc)`), `false` if it is the
    /// right sibling (fold as `H(acc ‖ hash)`). merklecpp calls these `PATH_LEFT`/`PATH_RIGHT`.
    pub sibling_is_left: bool,
    /// The sibling's hash.
    pub hash: Hash,
}

/// Hashes two child nodes into their parent, as `sha256_history` in CCF does.
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finish()
}

/// A transaction's leaf (ccf-reference §1.8): SHA-256 of the entry's write-set digest, the
/// digest of its commit evidence and its claims digest, concatenated.
pub fn transaction_leaf(
    write_set_digest: &Hash,
    commit_evidence_digest: &Hash,
    claims_digest: &Hash,
) -> Hash {
    let mut h = Sha256::new();
    h.update(write_set_digest);
    h.update(commit_evidence_digest);
    h.update(claims_digest);
    h.finish()
}

/// Folds an inclusion path onto `leaf`, returning the root it proves (receipt verification).
pub fn fold_path(leaf: &Hash, path: &[PathElem]) -> Hash {
    path.iter().fold(*leaf, |acc, elem| {
        if elem.sibling_is_left {
            hash_children(&elem.hash, &acc)
        } else {
            hash_children(&acc, &elem.hash)
        }
    })
}

/// CCF's append-only Merkle tree; see the crate docs for the shape and representation.
#[derive(Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// Index of the first retained leaf; leaves before it have been flushed.
    first_index: u64,
    /// Total number of leaves ever appended and not retracted, flushed ones included.
    leaf_count: u64,
    /// `levels[k][j - base(k)]` is the hash of the perfect subtree over leaves
    /// `j·2^k .. (j+1)·2^k`, for every complete such subtree with `j >= base(k)`, where
    /// `base(k) = (first_index >> k) & !1`. Invariant:
    /// `levels[k].len() == (leaf_count >> k) - base(k)` for every stored level, and levels above
    /// the last stored one would be empty.
    levels: Vec<VecDeque<Hash>>,
}

impl MerkleTree {
    /// Creates an empty tree.
    pub fn new() -> Self {
        Self {
            first_index: 0,
            leaf_count: 0,
            levels: Vec::new(),
        }
    }

    /// Number of leaves, flushed ones included (so the next leaf gets index `len()`).
    pub fn len(&self) -> u64 {
        self.leaf_count
    }

    /// Whether no leaf has been appended (or all were retracted).
    pub fn is_empty(&self) -> bool {
        self.leaf_count == 0
    }

    /// Index of the first retained leaf (the flush point); merklecpp's `min_index`.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Number of retained (not flushed) leaves.
    pub fn retained_len(&self) -> u64 {
        self.leaf_count - self.first_index
    }

    /// Returns leaf `index` if it is retained.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        (self.first_index <= index && index < self.leaf_count).then(|| self.node(0, index))
    }

    /// Appends a leaf. Costs one hash per level the new leaf completes: amortised one.
    pub fn append(&mut self, leaf: Hash) {
        // Nobody appends 2^64 ledger entries; overflow here would be a caller bug.
        assert!(
            self.leaf_count < u64::MAX,
            "Merkle tree leaf count overflow"
        );
        self.push_node(0, leaf);
        self.leaf_count += 1;
        let mut level = 0;
        let mut index = self.leaf_count - 1;
        // A node with an odd index completes its parent.
        while index & 1 == 1 {
            let parent = hash_children(&self.node(level, index - 1), &self.node(level, index));
            level += 1;
            index >>= 1;
            self.push_node(level, parent);
        }
    }

    /// The root over all leaves, in O(log n) hashes.
    ///
    /// An empty tree has no root in CCF (merklecpp throws); here it is 32 zero bytes, which is
    /// also the root of CCF's one-leaf tree holding only the zero leaf 0. Use
    /// [`MerkleTree::root_at`] to get an error instead.
    pub fn root(&self) -> Hash {
        if self.leaf_count == 0 {
            return [0u8; HASH_SIZE_BYTES];
        }
        self.fold_right_edge(self.leaf_count, 64)
            .expect("a non-empty tree has a root")
    }

    /// The root of the tree formed by the first `leaf_count` leaves (the root a signature
    /// transaction at seqno `leaf_count` recorded), for any `leaf_count` in
    /// `max(first_index, 1)..=len()`; merklecpp's `past_root`. O(log n).
    pub fn root_at(&self, leaf_count: u64) -> Result<Hash, MerkleError> {
        if leaf_count == 0 {
            return Err(MerkleError::Empty);
        }
        self.check_count("leaf_count", leaf_count)?;
        Ok(self
            .fold_right_edge(leaf_count, 64)
            .expect("leaf_count > 0 has a root"))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `leaf_count` leaves, leaf
    /// first. Requires `first_index <= index < leaf_count <= len()`. O(log n).
    pub fn path(&self, index: u64, leaf_count: u64) -> Result<Vec<PathElem>, MerkleError> {
        self.check_count("leaf_count", leaf_count)?;
        if index < self.first_index || index >= leaf_count {
            return Err(self.out_of_range("index", index));
        }
        let mut path = Vec::new();
        let mut level = 0u32;
        // Level `level` has `((leaf_count - 1) >> level) + 1` nodes; stop at the single root.
        while shr(leaf_count - 1, level) > 0 {
            let j = index >> level;
            if j & 1 == 1 {
                path.push(PathElem {
                    sibling_is_left: true,
                    hash: self.node(level, j - 1),
                });
            } else if j < shr(leaf_count - 1, level) {
                // The right sibling exists. It is a stored perfect node unless it is the
                // right-edge node of a partial subtree, whose hash folds the stored perfect
                // subtrees below it (the bits of leaf_count under this level).
                let sibling = j + 1;
                let hash = if sibling < shr(leaf_count, level) {
                    self.node(level, sibling)
                } else {
                    self.fold_right_edge(leaf_count, level)
                        .expect("a partial right sibling has leaves")
                };
                path.push(PathElem {
                    sibling_is_left: false,
                    hash,
                });
            }
            // Otherwise node j is the last of its level and is promoted unchanged.
            level += 1;
        }
        Ok(path)
    }

    /// Forgets leaves before `index` (called on global commit so memory stays bounded), keeping
    /// what future roots, retained-leaf paths and serialisation need. A no-op if `index` is at
    /// or before the current flush point. At least one leaf must stay retained, as in
    /// merklecpp, so `index < len()` is required otherwise.
    pub fn flush_to(&mut self, index: u64) -> Result<(), MerkleError> {
        if index <= self.first_index {
            return Ok(());
        }
        if index >= self.leaf_count {
            return Err(self.out_of_range("flush index", index));
        }
        for (level, nodes) in self.levels.iter_mut().enumerate() {
            let old_base = base(self.first_index, level as u32);
            let new_base = base(index, level as u32);
            let drop_count = to_usize(new_base - old_base);
            assert!(drop_count <= nodes.len(), "flush within stored nodes");
            nodes.drain(..drop_count);
        }
        self.first_index = index;
        Ok(())
    }

    /// Rolls the tree back to its first `leaf_count` leaves (rollback of uncommitted entries).
    ///
    /// Requires `leaf_count <= len()` and `leaf_count > first_index()` (a flushed prefix
    /// cannot be reopened and at least one leaf stays retained); retracting to 0 is allowed
    /// when nothing was flushed.
    pub fn retract_to(&mut self, leaf_count: u64) -> Result<(), MerkleError> {
        self.check_count("leaf_count", leaf_count)?;
        if leaf_count == self.first_index && self.first_index != 0 {
            return Err(self.out_of_range("leaf_count", leaf_count));
        }
        for (level, nodes) in self.levels.iter_mut().enumerate() {
            let keep = (leaf_count >> level) - base(self.first_index, level as u32);
            nodes.truncate(to_usize(keep));
        }
        while self.levels.last().is_some_and(VecDeque::is_empty) {
            self.levels.pop();
        }
        self.leaf_count = leaf_count;
        Ok(())
    }

    /// Serialises all retained leaves in CCF's `ccf.internal.tree` format (crate docs).
    pub fn serialise(&self) -> Vec<u8> {
        self.serialise_range(self.first_index, self.leaf_count)
            .expect("the retained range is always serialisable")
    }

    /// Serialises leaves `from..leaf_count` as merklecpp's `serialise(from, leaf_count - 1)`
    /// does; CCF writes `serialise(begin_index, seqno - 1)` into each signature transaction.
    /// Requires `first_index <= from < leaf_count <= len()`, or an empty tree with both 0.
    pub fn serialise_range(&self, from: u64, leaf_count: u64) -> Result<Vec<u8>, MerkleError> {
        self.check_count("leaf_count", leaf_count)?;
        let empty_tree = from == 0 && leaf_count == 0;
        if !empty_tree && (from < self.first_index || from >= leaf_count) {
            return Err(self.out_of_range("from", from));
        }
        let extra_count = from.count_ones() as usize;
        let mut out = Vec::with_capacity(
            SERIALISED_HEADER_SIZE_BYTES
                + (to_usize(leaf_count - from) + extra_count) * HASH_SIZE_BYTES,
        );
        out.extend_from_slice(&(leaf_count - from).to_be_bytes());
        out.extend_from_slice(&from.to_be_bytes());
        for index in from..leaf_count {
            out.extend_from_slice(&self.node(0, index));
        }
        for level in 0..u64::BITS {
            if (from >> level) & 1 == 1 {
                out.extend_from_slice(&self.node(level, (from >> level) - 1));
            }
        }
        Ok(out)
    }

    /// Rebuilds a tree from [`MerkleTree::serialise`] output (or CCF's). The result has the
    /// same root, retained leaves and flush point; its `len()` is `first_index + num_leaves`.
    pub fn deserialise(bytes: &[u8]) -> Result<MerkleTree, MerkleError> {
        let actual_bytes = bytes.len() as u64;
        let truncated = |needed_bytes: u64| MerkleError::Truncated {
            needed_bytes,
            actual_bytes,
        };
        if bytes.len() < SERIALISED_HEADER_SIZE_BYTES {
            return Err(truncated(SERIALISED_HEADER_SIZE_BYTES as u64));
        }
        let num_leaves = u64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let first_index = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
        if num_leaves == 0 && first_index != 0 {
            return Err(MerkleError::NoRetainedLeaves(first_index));
        }
        first_index
            .checked_add(num_leaves)
            .ok_or(MerkleError::IndexOverflow)?;
        let hash_count = u128::from(num_leaves) + u128::from(first_index.count_ones());
        let needed = SERIALISED_HEADER_SIZE_BYTES as u128 + hash_count * HASH_SIZE_BYTES as u128;
        if needed > u128::from(actual_bytes) {
            return Err(truncated(u64::try_from(needed).unwrap_or(u64::MAX)));
        }
        if needed < u128::from(actual_bytes) {
            return Err(MerkleError::TrailingBytes(actual_bytes - needed as u64));
        }

        let hashes: Vec<Hash> = bytes[SERIALISED_HEADER_SIZE_BYTES..]
            .chunks_exact(HASH_SIZE_BYTES)
            .map(|c| c.try_into().expect("32-byte chunk"))
            .collect();
        let (leaves, extras) = hashes.split_at(to_usize(num_leaves));

        // A tree with all of 0..first_index flushed stores exactly the extra hashes: at each
        // level k with bit k set, the one node (first_index >> k) - 1. Appending the retained
        // leaves then completes every node above them.
        let mut tree = MerkleTree {
            first_index,
            leaf_count: first_index,
            levels: Vec::new(),
        };
        let mut extras = extras.iter();
        for level in 0..u64::BITS {
            if (first_index >> level) & 1 == 1 {
                let extra = *extras.next().expect("one extra hash per set bit");
                tree.push_node(level, extra);
            }
        }
        for leaf in leaves {
            tree.append(*leaf);
        }
        Ok(tree)
    }

    /// The node at `level`, index `j`; it must be stored.
    fn node(&self, level: u32, j: u64) -> Hash {
        let offset = j - base(self.first_index, level);
        self.levels[level as usize][to_usize(offset)]
    }

    fn push_node(&mut self, level: u32, hash: Hash) {
        let level = level as usize;
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, VecDeque::new);
        }
        self.levels[level].push_back(hash);
    }

    /// Right fold over the perfect subtrees given by the set bits of `leaf_count` below
    /// `level_limit`, smallest (rightmost) first: the hash of the right-edge node at level
    /// `level_limit` of the tree of `leaf_count` leaves (the whole root for a limit of 64).
    /// Returns `None` if no such bit is set.
    fn fold_right_edge(&self, leaf_count: u64, level_limit: u32) -> Option<Hash> {
        let mut acc: Option<Hash> = None;
        for level in 0..level_limit {
            if (leaf_count >> level) & 1 == 1 {
                let subtree = self.node(level, (leaf_count >> level) - 1);
                acc = Some(match acc {
                    None => subtree,
                    Some(right) => hash_children(&subtree, &right),
                });
            }
        }
        acc
    }

    fn check_count(&self, what: &'static str, leaf_count: u64) -> Result<(), MerkleError> {
        if leaf_count < self.first_index || leaf_count > self.leaf_count {
            return Err(self.out_of_range(what, leaf_count));
        }
        Ok(())
    }

    fn out_of_range(&self, what: &'static str, value: u64) -> MerkleError {
        MerkleError::OutOfRange {
            what,
            value,
            first_index: self.first_index,
            len: self.leaf_count,
        }
    }
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleTree")
            .field("first_index", &self.first_index)
            .field("len", &self.leaf_count)
            .finish_non_exhaustive()
    }
}

/// First stored node index at `level` for a tree flushed to `first_index`: the node containing
/// the first retained leaf, or its left sibling when that node is a right child.
fn base(first_index: u64, level: u32) -> u64 {
    shr(first_index, level) & !1
}

/// `n >> level`, and 0 for shifts of 64 or more (where Rust's `>>` would overflow).
fn shr(n: u64, level: u32) -> u64 {
    n.checked_shr(level).unwrap_or(0)
}

fn to_usize(n: u64) -> usize {
    // Every count here indexes an in-memory buffer, so it fits in usize.
    usize::try_from(n).expect("in-memory count fits in usize")
}

#[cfg(test)]
mod tests;
