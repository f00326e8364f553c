//! Integration tests, one module per area.
mod acl_cli;
mod support;
mod third_party;
mod register;
