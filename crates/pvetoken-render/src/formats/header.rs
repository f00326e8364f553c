//! `header`: the value of the HTTP `Authorization` header, one line.
//!
//! ```text
//! PVEAPIToken=automation@pve!privatebox=SECRET
//! ```
//! Use it as `curl -H @FILE`-style input by prefixing `Authorization: `, or
//! `curl -H "Authorization: $(cat FILE)"`. A secret with whitespace or control characters is refused (it could
//! not travel in a header).

use std::io::{self, Write};

use super::header_safe_secret;
use crate::{Renderer, TokenFile};

/// The `header` renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Header;

impl Renderer for Header {
    fn render(&self, token: &TokenFile, out: &mut dyn Write) -> io::Result<()> {
        let secret = header_safe_secret(token)?;
        writeln!(out, "PVEAPIToken={}={secret}", token.token_id)
    }
}
