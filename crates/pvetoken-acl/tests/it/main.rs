//! Integration tests, one module per area.

mod evaluator;
mod roundtrip;
mod semantics;
mod vectors;
