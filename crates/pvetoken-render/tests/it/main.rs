//! Integration tests, one module per area.
mod formats;
mod token_file;
