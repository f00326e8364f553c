//! The text report: a header, the tokens table, then the findings grouped by severity.

use std::fmt::Write as _;

use super::model::{Report, Severity};
use crate::printer::sanitize;

/// `YYYY-MM-DD` (UTC) of an epoch; `never` for 0.
pub fn date(epoch: u64) -> String {
    if epoch == 0 {
        return "never".to_owned();
    }
    // Howard Hinnant's civil_from_days.
    let days = i64::try_from(epoch / 86_400).unwrap_or(i64::MAX / 2) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if len >= width { format!("{s} ") } else { format!("{s}{}", " ".repeat(width - len)) }
}

/// Renders the report for a terminal (control characters from the configuration are removed).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let c = &report.counts;
    let _ = writeln!(
        out,
        "pvetoken audit of {} ({}, PVE {}): {} users, {} tokens, {} findings ({} critical, {} high, {} medium, {} \
         low, {} info)",
        sanitize(&report.source.location),
        report.source.mode,
        report.source.pve_version,
        report.users,
        report.tokens.len(),
        report.findings.len(),
        c.critical,
        c.high,
        c.medium,
        c.low,
        c.info
    );
    let _ = writeln!(out, "\nTOKENS");
    if report.tokens.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let width = report.tokens.iter().map(|t| t.id.chars().count()).max().unwrap_or(5).clamp(5, 48) + 1;
    for token in &report.tokens {
        let _ = writeln!(
            out,
            "  {}privsep {}  expires {}  {}{}",
            pad(&sanitize(&token.id), width),
            u8::from(token.privsep),
            pad(&date(token.expire), 10),
            pad(token.status, 14),
            token.comment.as_deref().map(|c| format!("  # {}", sanitize(c))).unwrap_or_default()
        );
        let _ = writeln!(out, "  {}{}", " ".repeat(width), sanitize(&token.access_summary));
    }
    for severity in Severity::ALL {
        let group: Vec<_> = report.findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} ({})", severity.as_str().to_uppercase(), group.len());
        for f in group {
            let _ = writeln!(out, "  [{}] {}: {}", f.id, sanitize(&f.subject), sanitize(&f.title));
            let _ = writeln!(out, "      {}", sanitize(&f.detail));
            if !f.evidence.is_empty() {
                let _ = writeln!(out, "      evidence:");
                for line in &f.evidence {
                    let _ = writeln!(out, "        {}", sanitize(line));
                }
            }
            let _ = writeln!(out, "      fix: {}", sanitize(&f.fix.summary));
            for cmd in f.fix.pveum.iter().chain(&f.fix.pvetoken) {
                let _ = writeln!(out, "        $ {}", sanitize(cmd));
            }
        }
    }
    if report.findings.is_empty() {
        let _ = writeln!(out, "\nNo findings.");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(date(0), "never");
        assert_eq!(date(1_893_456_000), "2030-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}
