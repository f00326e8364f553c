//! Integration tests, one module per area.

mod roundtrip;
mod semantics;
mod vectors;
