//! One module per consumer format. Each module's documentation shows its exact output for the example token
//! `automation@pve!privatebox` on `https://pve.lan:8006`, node `pve`, secret `SECRET`.

pub mod ansible_env;
pub mod ansible_vars;
pub mod cloud_init;
pub mod env;
pub mod header;
pub mod json;
pub mod packer;
pub mod packer_pkrvars;
pub mod semaphore;
pub mod sops;
pub mod terraform_bpg;
pub mod terraform_bpg_tfvars;
pub mod terraform_telmate;
pub mod terraform_telmate_tfvars;

use std::io::{self, Write};

use crate::TokenFile;
use crate::quote::{hcl_string, shell_single_quote};

/// Writes `# comment` lines, then `export KEY='value'` lines.
pub(crate) fn write_exports(out: &mut dyn Write, comments: &[&str], pairs: &[(&str, &str)]) -> io::Result<()> {
    for comment in comments {
        writeln!(out, "# {comment}")?;
    }
    for (key, value) in pairs {
        writeln!(out, "export {key}={}", shell_single_quote(value))?;
    }
    Ok(())
}

/// An HCL attribute value: a quoted string or a bare boolean/number.
pub(crate) enum HclValue<'a> {
    /// A string, quoted with [`hcl_string`].
    Str(&'a str),
    /// `true` / `false`.
    Bool(bool),
}

/// Writes `# comment` lines, then aligned `key = value` HCL attributes.
pub(crate) fn write_hcl(out: &mut dyn Write, comments: &[&str], pairs: &[(&str, HclValue<'_>)]) -> io::Result<()> {
    for comment in comments {
        writeln!(out, "# {comment}")?;
    }
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    for (key, value) in pairs {
        let value = match value {
            HclValue::Str(text) => hcl_string(text),
            HclValue::Bool(flag) => flag.to_string(),
        };
        writeln!(out, "{key:<width$} = {value}")?;
    }
    Ok(())
}

/// The first comment line of every format: which token this is.
pub(crate) fn title(consumer: &str, token: &TokenFile) -> String {
    format!("{consumer} credentials for Proxmox VE token {} (written by pvetoken)", token.token_id)
}

/// An error for a value the consumer cannot take; `what` never contains the value.
pub(crate) fn unrepresentable(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The secret, refused when it holds whitespace or control characters (they cannot travel in an HTTP header).
pub(crate) fn header_safe_secret(token: &TokenFile) -> io::Result<&str> {
    use pvetoken_api::ExposeSecret;
    let secret = token.secret.expose_secret();
    if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(unrepresentable(
            "the token secret contains whitespace or control characters, which cannot be sent in an HTTP header",
        ));
    }
    Ok(secret)
}
