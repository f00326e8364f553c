//! Integration tests, one module per area.
mod age;
mod consumers;
mod formats;
mod lint_rules;
mod token_file;
