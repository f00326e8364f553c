//! The HTML report: one self-contained file (inline CSS and script, a Content-Security-Policy that forbids any
//! external asset), a sortable findings table and a tokens table. Every value from the configuration is
//! HTML-escaped.
//!
//! Sorting: click a column header (again to reverse). `#sort=<table>:<column>[:desc]` in the address sorts on load
//! (`findings` or `tokens`, column index from 0), which is also how the browser test checks it.

use std::fmt::Write as _;

use super::model::{Finding, Report, Severity, TokenReport};
use super::text::date;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
.meta{color:#555;margin-bottom:1rem}
.counts span{display:inline-block;margin-right:.6rem;padding:.15rem .5rem;border-radius:.3rem}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border:1px solid #d0d7de;padding:.3rem .45rem;vertical-align:top;text-align:left}
th{background:#f3f5f7;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \25B2"} th[aria-sort=descending]::after{content:" \25BC"}
pre{margin:0;white-space:pre-wrap;word-break:break-all;font-size:.8rem}
.sev{font-weight:600;text-transform:uppercase;font-size:.78rem}
.sev-critical{background:#ffd7d5} .sev-high{background:#ffe4c2} .sev-medium{background:#fff4b8}
.sev-low{background:#e2f0ff} .sev-info{background:#eef1f4}
"#;

const SCRIPT: &str = r#"
(function(){
  function key(cell){ return cell.getAttribute('data-sort') !== null ? cell.getAttribute('data-sort') : cell.textContent.trim(); }
  function cmp(a,b){ var x=Number(a), y=Number(b); if(a!==''&&b!==''&&!isNaN(x)&&!isNaN(y)) return x-y; return a.localeCompare(b); }
  function sort(table, col, desc){
    var body=table.tBodies[0]; var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(r1,r2){ var d=cmp(key(r1.cells[col]), key(r2.cells[col])); return desc ? -d : d; });
    rows.forEach(function(r){ body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th,i){
      if(i===col) th.setAttribute('aria-sort', desc ? 'descending' : 'ascending'); else th.removeAttribute('aria-sort');
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th,i){
      th.addEventListener('click', function(){ sort(table, i, th.getAttribute('aria-sort')==='ascending'); });
    });
    table.setAttribute('data-sortable','ready');
  });
  var m=/^#sort=([a-z]+):([0-9]+)(:desc)?$/.exec(location.hash);
  if(m){ var t=document.getElementById(m[1]); if(t) sort(t, Number(m[2]), !!m[3]); }
})();
"#;

fn rank(severity: Severity) -> usize {
    Severity::ALL.iter().position(|s| *s == severity).unwrap_or(0)
}

fn lines(items: &[String]) -> String {
    escape(&items.join("\n"))
}

fn finding_row(out: &mut String, f: &Finding) {
    let fix: Vec<String> = std::iter::once(f.fix.summary.clone())
        .chain(f.fix.pveum.iter().chain(&f.fix.pvetoken).map(|c| format!("$ {c}")))
        .collect();
    let _ = writeln!(
        out,
        "<tr class=\"finding sev-{sev}\" data-id=\"{id}\" data-severity=\"{sev}\" data-subject=\"{subject}\">\
         <td class=\"sev\" data-sort=\"{rank}\">{sev}</td><td><code>{id}</code></td><td>{subject}</td>\
         <td><strong>{title}</strong><br>{detail}</td><td><pre>{evidence}</pre></td><td><pre>{fix}</pre></td></tr>",
        sev = f.severity.as_str(),
        rank = rank(f.severity),
        id = escape(f.id),
        subject = escape(&f.subject),
        title = escape(&f.title),
        detail = escape(&f.detail),
        evidence = lines(&f.evidence),
        fix = lines(&fix),
    );
}

fn token_row(out: &mut String, t: &TokenReport) {
    let access: Vec<String> = t
        .access
        .iter()
        .map(|a| {
            let scope = match a.scope {
                "members" => " (pool members)",
                "path" => " (this path only)",
                _ => "",
            };
            format!("{}{scope}: {}", a.path, a.label)
        })
        .collect();
    let _ = writeln!(
        out,
        "<tr class=\"token\" data-token=\"{id}\"><td>{id}</td><td>{owner}</td><td>{privsep}</td>\
         <td data-sort=\"{expire}\">{expires}</td><td>{status}</td><td><pre>{access}</pre></td><td>{comment}</td>\
         <td>{findings}</td></tr>",
        id = escape(&t.id),
        owner = escape(&t.owner),
        privsep = u8::from(t.privsep),
        expire = t.expire,
        expires = date(t.expire),
        status = t.status,
        access = if access.is_empty() { escape(&t.access_summary) } else { lines(&access) },
        comment = escape(t.comment.as_deref().unwrap_or("")),
        findings = escape(&t.findings.join(", ")),
    );
}

/// Renders the whole report as one HTML document.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("pvetoken audit: {}", report.source.location);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        out,
        "<div class=\"meta\">{} mode, PVE {}, generated for {} (UTC), {} users, {} tokens, expiring window {} days, \
         fail-on {}</div>",
        report.source.mode,
        escape(&report.source.pve_version),
        date(report.options.now),
        report.users,
        report.tokens.len(),
        report.options.expiring_within_seconds / 86_400,
        escape(&report.options.fail_on)
    );
    let _ = write!(out, "<div class=\"counts\">");
    for severity in Severity::ALL {
        let _ = write!(
            out,
            "<span class=\"sev-{s}\" id=\"count-{s}\">{s}: {}</span>",
            report.counts.get(severity),
            s = severity.as_str()
        );
    }
    let _ = writeln!(out, "</div>");
    let _ = writeln!(
        out,
        "<h2>Findings ({})</h2><table id=\"findings\" class=\"sortable\"><thead><tr><th>Severity</th><th>Id</th>\
         <th>Subject</th><th>What</th><th>Evidence</th><th>Fix</th></tr></thead><tbody>",
        report.findings.len()
    );
    for f in &report.findings {
        finding_row(&mut out, f);
    }
    let _ = writeln!(out, "</tbody></table>");
    let _ = writeln!(
        out,
        "<h2>Tokens ({})</h2><table id=\"tokens\" class=\"sortable\"><thead><tr><th>Token</th><th>Owner</th>\
         <th>Privsep</th><th>Expires</th><th>Status</th><th>Effective privileges</th><th>Comment</th>\
         <th>Findings</th></tr></thead><tbody>",
        report.tokens.len()
    );
    for t in &report.tokens {
        token_row(&mut out, t);
    }
    let _ = writeln!(out, "</tbody></table>");
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_configuration_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
