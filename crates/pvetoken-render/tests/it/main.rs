//! Integration tests, one module per area.
mod age;
mod formats;
mod token_file;
