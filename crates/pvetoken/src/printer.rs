//! The one output path: data to stdout, messages to stderr, honouring `--quiet`, `--verbose`, `--no-color` and
//! `NO_COLOR`. Only this module writes to the terminal.

use std::io::{IsTerminal, Write};

use crate::args::{GlobalArgs, OutputFormat};

/// Writes everything the user sees.
#[derive(Debug, Clone)]
pub struct Printer {
    output: OutputFormat,
    quiet: bool,
    verbose: u8,
    color: bool,
}

impl Printer {
    /// The privileges a token lacks, each with its path, side, reason and fix (text mode).
    pub fn missing(&self, missing: &[pvetoken_lifecycle::verify::Missing]) {
        for item in missing {
            self.error(&format!(
                "missing {} on {} ({} side): needed to {}",
                item.privilege, item.path, item.lacking_side, item.reason
            ));
            if !item.fix.is_empty() {
                self.hint(&item.fix);
            }
        }
    }

    /// Builds the printer from the global flags and the environment (`NO_COLOR`).
    pub fn from_args(args: &GlobalArgs) -> Self {
        let no_color_env =
            std::env::var_os(pvetoken_lifecycle::env_vars::NO_COLOR).is_some_and(|value| !value.is_empty());
        Self {
            output: args.output,
            quiet: args.quiet,
            verbose: args.verbose,
            color: !args.no_color && !no_color_env && std::io::stderr().is_terminal(),
        }
    }

    /// The output format the user asked for.
    pub fn output(&self) -> OutputFormat {
        self.output
    }

    /// A printer that prints only errors and warnings, in text (for commands run inside another command).
    pub fn quiet_text(&self) -> Printer {
        Printer { output: OutputFormat::Text, quiet: true, verbose: 0, color: self.color }
    }

    /// True when `--output json` was given.
    pub fn is_json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// Writes data (the command's result) to stdout, followed by a newline.
    ///
    /// On a terminal the text is sanitised like every message (it may carry names from a `user.cfg` or a path);
    /// piped, it is written as is for the program reading it.
    pub fn data(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if out.is_terminal() {
            out.write_all(sanitize(text).as_bytes())?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Writes a value as one line of JSON to stdout.
    ///
    /// Piped, it is serialised straight into a buffered stdout (an audit report runs to tens of megabytes, and
    /// building it as one string first cost a third of the serialisation); on a terminal it goes through
    /// [`data`](Self::data) and its sanitising.
    pub fn json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            let text = serde_json::to_string(value)?;
            self.data(&text)?;
            return Ok(());
        }
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        serde_json::to_writer(&mut out, value)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    }

    /// A progress or status message on stderr (hidden by `--quiet`).
    pub fn info(&self, message: &str) {
        if !self.quiet {
            self.stderr_line("", message);
        }
    }

    /// A success message on stderr (hidden by `--quiet`).
    pub fn success(&self, message: &str) {
        if !self.quiet {
            let mark = self.paint("32", "ok");
            self.stderr_line(&format!("{mark}: "), message);
        }
    }

    /// Detail shown only with `-v`.
    pub fn verbose(&self, message: &str) {
        if self.verbose > 0 && !self.quiet {
            self.stderr_line("", message);
        }
    }

    /// A warning on stderr (always shown).
    pub fn warn(&self, message: &str) {
        let label = self.paint("33", "warning");
        self.stderr_line(&format!("{label}: "), message);
    }

    /// An error on stderr (always shown).
    pub fn error(&self, message: &str) {
        let label = self.paint("31", "error");
        self.stderr_line(&format!("{label}: "), message);
    }

    /// The fix for the error just printed.
    pub fn hint(&self, message: &str) {
        let label = self.paint("36", "hint");
        self.stderr_line(&format!("{label}: "), message);
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    fn stderr_line(&self, prefix: &str, message: &str) {
        let mut err = std::io::stderr().lock();
        // A closed stderr is not worth failing the command for.
        // Continuation lines are indented, so a newline inside a path or a name can never forge a line of its own
        // (`error: ...`, `ok: ...`).
        let text = sanitize(message).replace('\n', "\n  ");
        let _ = writeln!(err, "{prefix}{text}");
    }
}

/// The lifecycle library reports through the printer: progress as info, warnings as warnings, detail with `-v`.
impl pvetoken_lifecycle::Observer for Printer {
    fn info(&self, message: &str) {
        Printer::info(self, message);
    }

    fn warn(&self, message: &str) {
        Printer::warn(self, message);
    }

    fn detail(&self, message: &str) {
        self.verbose(message);
    }
}

/// Makes text that may come from a server or a file safe for a terminal: control characters (escape sequences)
/// are removed, keeping newlines and tabs, and bidirectional-override characters (which reorder what is shown,
/// e.g. U+202E) are shown escaped as `<U+202E>`.
pub fn sanitize(text: &str) -> std::borrow::Cow<'_, str> {
    // Printable ASCII, newlines and tabs (nearly all text) pass unchanged without a copy; only other bytes need the
    // character-wise pass (an audit report of the benchmark configuration is 7 MB of text).
    if text.bytes().all(|b| matches!(b, b' '..=b'~' | b'\n' | b'\t')) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else if !c.is_control() || c == '\n' || c == '\t' {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn sanitize_strips_escape_sequences_but_keeps_newlines() {
        assert_eq!(sanitize("a\x1b[31mb\nc\u{7}"), "a[31mb\nc");
    }

    #[test]
    fn sanitize_shows_bidi_overrides_instead_of_obeying_them() {
        assert_eq!(sanitize("user\u{202E}cod.exe"), "user<U+202E>cod.exe");
        assert_eq!(sanitize("a\u{2066}b\u{2069}"), "a<U+2066>b<U+2069>");
    }
}
