//! Quoting one value for each output language, so that no value (quotes, `$`, backslashes, newlines) can end the
//! string it is written in or be expanded by the reader.

/// Quotes a value for POSIX shells: `'...'`, a single quote inside written as `'\''`. Nothing inside single quotes
/// is expanded by a shell, newlines included.
pub fn shell_single_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Quotes a value as an HCL (Packer, Terraform) quoted template string: `"..."` with `\\`, `\"`, `\n`, `\r`, `\t`
/// and `\uNNNN` escapes, and the template introducers `${` and `%{` doubled to `$${` and `%%{` so they stay literal.
pub fn hcl_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes a value as a YAML double-quoted scalar that YAML 1.1 and 1.2 readers agree on: printable ASCII as is,
/// `\\`, `\"`, and everything else (controls, newlines, any non-ASCII character) as `\uNNNN` / `\UNNNNNNNN`.
pub fn yaml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Quotes a value as a JSON string.
pub fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_doubles_template_introducers_only_before_a_brace() {
        assert_eq!(hcl_string("a${b}%{c}$d%e"), r#""a$${b}%%{c}$d%e""#);
    }

    #[test]
    fn yaml_escapes_everything_outside_printable_ascii() {
        assert_eq!(yaml_string("a\"b\\c\nd\u{e9}\u{1F600}"), r#""a\"b\\c\u000Ad\u00E9\U0001F600""#);
    }
}
