//! Integration tests, one module per area.
mod support;
mod third_party;
mod register;
