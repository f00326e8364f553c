//! The hasher of the string-keyed maps of the parser and the engine.
//!
//! Ids such as `user1234@pve` or `/vms/4928` differ in a few bytes. With `rustc_hash::FxHasher` the top bits of
//! their hashes (hashbrown's 7-bit tag, which decides which keys are compared) collided so often that key
//! comparisons (`memcmp`) were the top cost of parsing and querying; std's SipHash avoids that but spends as much
//! hashing. foldhash's fast hasher mixes every input bit into the whole output and is cheaper than both.
//! `FixedState` is deterministic (no per-process seed): the input is a local file, not a network peer.

/// The hasher of string-keyed maps and sets.
pub(crate) type StrHash = foldhash::fast::FixedState;

/// A `HashMap` keyed by strings, hashed with [`StrHash`].
pub(crate) type StrMap<K, V> = std::collections::HashMap<K, V, StrHash>;
