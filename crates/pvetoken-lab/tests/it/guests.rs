//! guests tests.
