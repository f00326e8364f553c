//! Reading a file the way the lint rules need it: its language, its assignments (`KEY=value`, `key = value`,
//! `key: value`) with positions, and for HCL the block each line is in.

/// The language of a scanned file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.envrc`, `*.env`, `*.sh`: shell assignments.
    Shell,
    /// `*.pkr.hcl`, `*.pkrvars.hcl`, `*.tf`, `*.tfvars`, `*.hcl`.
    Hcl,
    /// `*.yml`, `*.yaml` (Ansible vars, SOPS templates, inventories).
    Yaml,
}

/// What the file is for, refining [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A Packer template or variable file.
    Packer,
    /// A Terraform/OpenTofu file.
    Terraform,
    /// Anything else of its kind.
    Other,
}

/// Classifies a file name (a trailing `.example`, `.sample`, `.template` or `.tmpl` is ignored); `None` = not ours.
pub fn classify(file_name: &str) -> Option<(Kind, Role)> {
    let mut name = file_name.to_ascii_lowercase();
    for suffix in [".example", ".sample", ".template", ".tmpl", ".dist"] {
        if let Some(stripped) = name.strip_suffix(suffix) {
            name = stripped.to_owned();
        }
    }
    if name.ends_with(".pkr.hcl") || name.ends_with(".pkrvars.hcl") || name.ends_with(".pkr.json") {
        return Some((Kind::Hcl, Role::Packer));
    }
    if name.ends_with(".tf") || name.ends_with(".tfvars") {
        return Some((Kind::Hcl, Role::Terraform));
    }
    if name.ends_with(".hcl") {
        return Some((Kind::Hcl, Role::Other));
    }
    if name.ends_with(".yml") || name.ends_with(".yaml") {
        return Some((Kind::Yaml, Role::Other));
    }
    if name == ".envrc" || name == ".env" || name.ends_with(".env") || name.ends_with(".sh") || name.ends_with(".bash")
    {
        return Some((Kind::Shell, Role::Other));
    }
    None
}

/// One `key = value` found in a file.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// 1-based line.
    pub line: usize,
    /// 1-based column of the value's first character (inside the quotes).
    pub column: usize,
    /// The key as written.
    pub key: String,
    /// The value without its quotes (escapes of the language undone only for `\"` and `\\`).
    pub value: String,
    /// The value is a plain literal (no `$`, `${`, `{{`, `var.`, `env(`...).
    pub literal: bool,
    /// Index into [`Scanned::blocks`] of the innermost HCL block holding the assignment.
    pub block: Option<usize>,
}

impl Assignment {
    /// The key in lower case, without `export`, for rule tables.
    pub fn key_lower(&self) -> String {
        self.key.to_ascii_lowercase()
    }
}

/// An HCL block: `source "proxmox-clone" "debian" {` ... `}`.
#[derive(Debug, Clone)]
pub struct Block {
    /// The header words before `{`, e.g. `source "proxmox-clone" "debian"`.
    pub header: String,
    /// 1-based first and last line.
    pub lines: (usize, usize),
    /// The enclosing block.
    pub parent: Option<usize>,
}

/// A scanned file.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// Its language.
    pub kind: Kind,
    /// What it is for.
    pub role: Role,
    /// The lines, with comments blanked out (same positions).
    pub code: Vec<String>,
    /// Every assignment, in order.
    pub assignments: Vec<Assignment>,
    /// HCL blocks (empty for other kinds).
    pub blocks: Vec<Block>,
    /// For each line (index 0 = line 1), the innermost HCL block containing it.
    pub line_block: Vec<Option<usize>>,
}

impl Scanned {
    /// Whether any assignment has this key (case-insensitive).
    pub fn has_key(&self, key: &str) -> bool {
        self.assignments.iter().any(|a| a.key.eq_ignore_ascii_case(key))
    }

    /// The text of a block's lines, comments removed.
    pub fn block_text(&self, block: usize) -> String {
        let (first, last) = self.blocks[block].lines;
        self.code[first - 1..last.min(self.code.len())].join("\n")
    }

    /// The chain of blocks around a line, innermost first.
    pub fn blocks_around(&self, line: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut current = self.line_block.get(line - 1).copied().flatten();
        while let Some(index) = current {
            chain.push(index);
            current = self.blocks[index].parent;
        }
        chain
    }
}

/// Scans `text` as `kind`.
pub fn scan(text: &str, kind: Kind, role: Role) -> Scanned {
    let code: Vec<String> = text.lines().map(|line| strip_comment(line, kind)).collect();
    let (blocks, line_block) = if kind == Kind::Hcl { hcl_blocks(&code) } else { (Vec::new(), vec![None; code.len()]) };
    let mut assignments = Vec::new();
    for (index, line) in code.iter().enumerate() {
        let found = match kind {
            Kind::Shell => shell_assignment(line),
            Kind::Hcl => hcl_assignment(line),
            Kind::Yaml => yaml_assignment(line),
        };
        if let Some((key, value, column, literal)) = found {
            assignments.push(Assignment { line: index + 1, column, key, value, literal, block: line_block[index] });
        }
    }
    Scanned { kind, role, code, assignments, blocks, line_block }
}

/// Blanks a trailing comment (outside quotes); a comment-only line becomes empty.
fn strip_comment(line: &str, kind: Kind) -> String {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    let mut escaped = false;
    for (index, c) in line.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else if c == '"' || (c == '\'' && kind != Kind::Hcl) {
            quote = Some(c);
        } else if c == '#' && (index == 0 || previous.is_whitespace() || kind == Kind::Hcl) {
            return line[..index].trim_end().to_owned();
        } else if kind == Kind::Hcl && c == '/' && previous == '/' {
            return line[..index - 1].trim_end().to_owned();
        }
        previous = c;
    }
    line.to_owned()
}

fn is_key(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Reads a value that starts at `raw`: quoted (returns the inside) or a bare word/expression.
fn read_value(raw: &str, offset: usize, single_quotes: bool) -> (String, usize) {
    let first = raw.chars().next();
    match first {
        Some('"') => {
            let mut value = String::new();
            let mut escaped = false;
            for c in raw[1..].chars() {
                if escaped {
                    if c != '"' && c != '\\' {
                        value.push('\\');
                    }
                    value.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    break;
                } else {
                    value.push(c);
                }
            }
            (value, offset + 1)
        }
        Some('\'') if single_quotes => {
            let inner = &raw[1..];
            (inner.split('\'').next().unwrap_or_default().to_owned(), offset + 1)
        }
        _ => (raw.trim_end().to_owned(), offset),
    }
}

fn is_literal(value: &str) -> bool {
    !(value.contains('$')
        || value.contains('`')
        || value.contains("{{")
        || value.starts_with("var.")
        || value.starts_with("local.")
        || value.starts_with("data.")
        || value.starts_with("env(")
        || value.starts_with("lookup("))
}

fn shell_assignment(line: &str) -> Option<(String, String, usize, bool)> {
    let trimmed = line.trim_start();
    let mut offset = line.len() - trimmed.len();
    let mut rest = trimmed;
    for prefix in ["export ", "local ", "readonly ", "declare -x "] {
        if let Some(after) = rest.strip_prefix(prefix) {
            let after_trimmed = after.trim_start();
            offset += rest.len() - after_trimmed.len();
            rest = after_trimmed;
        }
    }
    let (key, raw) = rest.split_once('=')?;
    if !is_key(key) || key.contains('-') || key.contains('.') {
        return None;
    }
    let value_offset = offset + key.len() + 1;
    let raw =
        if raw.starts_with('"') || raw.starts_with('\'') { raw } else { raw.split_whitespace().next().unwrap_or("") };
    let (value, start) = read_value(raw, value_offset, true);
    let literal = is_literal(&value) || raw.starts_with('\'');
    Some((key.to_owned(), value, start + 1, literal))
}

fn hcl_assignment(line: &str) -> Option<(String, String, usize, bool)> {
    let trimmed = line.trim_start();
    let offset = line.len() - trimmed.len();
    let (key, rest) = trimmed.split_once('=')?;
    if rest.starts_with('=') || rest.starts_with('>') {
        return None;
    }
    let key = key.trim_end();
    if !is_key(key) {
        return None;
    }
    let after = rest.trim_start();
    let value_offset = offset + (trimmed.len() - after.len());
    let (value, start) = read_value(after, value_offset, false);
    let literal = is_literal(&value) && (after.starts_with('"') || !after.contains('('));
    Some((key.to_owned(), value, start + 1, literal))
}

fn yaml_assignment(line: &str) -> Option<(String, String, usize, bool)> {
    let trimmed = line.trim_start();
    let mut offset = line.len() - trimmed.len();
    let mut rest = trimmed;
    if let Some(after) = rest.strip_prefix("- ") {
        let after_trimmed = after.trim_start();
        offset += rest.len() - after_trimmed.len();
        rest = after_trimmed;
    }
    let (key, raw) = rest.split_once(':')?;
    let key = key.trim_end().trim_matches(|c| c == '"' || c == '\'');
    if !is_key(key) || !(raw.is_empty() || raw.starts_with(' ')) {
        return None;
    }
    let after = raw.trim_start();
    let value_offset = offset + (rest.len() - after.len());
    let after = after.strip_prefix("!unsafe ").unwrap_or(after);
    let (value, start) = read_value(after, value_offset, true);
    Some((key.to_owned(), value.clone(), start + 1, is_literal(&value)))
}

/// Finds HCL blocks by counting braces outside strings (comments are already blanked).
fn hcl_blocks(code: &[String]) -> (Vec<Block>, Vec<Option<usize>>) {
    let mut blocks: Vec<Block> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut line_block = Vec::with_capacity(code.len());
    for (index, line) in code.iter().enumerate() {
        let number = index + 1;
        let mut in_string = false;
        let mut escaped = false;
        let mut template_depth = 0usize;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        // The innermost block at the start of the line holds the line (a header line belongs to its new block).
        let mut holder = stack.last().copied();
        let mut position = 0;
        while position < chars.len() {
            let (byte, c) = chars[position];
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '$' && chars.get(position + 1).is_some_and(|(_, n)| *n == '{') {
                    template_depth += 1;
                    position += 1;
                } else if c == '}' && template_depth > 0 {
                    template_depth -= 1;
                } else if c == '"' && template_depth == 0 {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if c == '{' {
                let header = line[..byte].trim().trim_end_matches('=').trim().to_owned();
                blocks.push(Block { header, lines: (number, number), parent: stack.last().copied() });
                stack.push(blocks.len() - 1);
                if holder == blocks[blocks.len() - 1].parent {
                    holder = Some(blocks.len() - 1);
                }
            } else if c == '}'
                && let Some(open) = stack.pop()
            {
                blocks[open].lines.1 = number;
            }
            position += 1;
        }
        line_block.push(holder);
    }
    for open in stack {
        blocks[open].lines.1 = code.len();
    }
    (blocks, line_block)
}
