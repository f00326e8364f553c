//! `pvetoken audit`: every token of a configuration, what it can really do and what is wrong with it.
//!
//! Both modes end in the same place: a user.cfg text (the file offline, a rebuild from the API live, see
//! [`live`]) parsed by pvetoken-acl's `ParsedCfg::parse` and evaluated by its `Engine`. [`audit`] is pure (the
//! caller passes the clock), so the two modes agree by construction and tests can pin time.
//!
//! Module map: [`analysis`] (each token evaluated once over the paths that matter), [`summary`] (role-like
//! names), [`rules`] (finding ids, evidence, fixes), [`profile_check`], [`rawscan`] (what the parser drops),
//! [`live`] (API → user.cfg), [`text`] and [`html`] (reports; JSON is the serde form of [`model::Report`]).

pub mod analysis;
pub mod html;
pub mod live;
pub mod model;
pub mod profile_check;
pub mod rawscan;
pub mod rules;
pub mod summary;
pub mod text;

use pvetoken_acl::{Catalog, ParsedCfg, Token, TokenId};
use rayon::prelude::*;

use model::{Counts, Finding, Report, ReportOptions, Severity, SourceInfo, TokenReport, Warning};

/// What to check and against which clock.
#[derive(Debug, Clone)]
pub struct Options {
    /// Epoch seconds ("now" for expiry).
    pub now: u64,
    /// Report expiry within this many seconds.
    pub expiring_within: u64,
    /// Compare pvetoken-made tokens with their profile.
    pub profile_check: bool,
    /// Exit 1 at or above this severity (`None`: never).
    pub fail_on: Option<Severity>,
}

/// Audits the configuration `text` (user.cfg syntax) for `catalog`'s release.
pub fn audit(text: &str, catalog: &Catalog, source: SourceInfo, options: &Options) -> Report {
    // One parse: the model for the rules, the engine straight from the parsed facts. The parse is dropped before
    // the tokens are evaluated, so their allocations reuse its memory instead of faulting in fresh pages.
    let (cfg, engine, parse_warnings) = {
        let (parsed, parse_warnings) = ParsedCfg::parse(text, catalog);
        (parsed.to_user_cfg(), parsed.engine(catalog), parse_warnings)
    };
    let index = analysis::Index::new(&cfg, engine, catalog);
    let raw = rawscan::scan(text, &cfg, catalog);
    let settings = rules::Settings { now: options.now, window: options.expiring_within };
    // Tokens are audited independently (in parallel, each worker with its own label memo); collecting keeps the
    // configuration's order, so the report does not depend on the scheduling.
    let token_list: Vec<(TokenId, &Token)> = cfg.tokens().collect();
    let audited: Vec<(TokenReport, Vec<Finding>)> = token_list
        .into_par_iter()
        .map_init(summary::Labels::default, |labels, (id, token)| audit_token(&index, id, token, options, labels))
        .collect();
    let mut findings: Vec<Finding> = Vec::new();
    let mut tokens: Vec<TokenReport> = Vec::with_capacity(audited.len());
    for (report, own) in audited {
        tokens.push(report);
        findings.extend(own);
    }
    findings.extend(rules::config_findings(&index, &raw, settings));
    findings.sort_by(|a, b| (a.severity, a.id, &a.subject).cmp(&(b.severity, b.id, &b.subject)));
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    Report {
        schema: model::SCHEMA,
        source,
        options: ReportOptions {
            now: options.now,
            expiring_within_seconds: options.expiring_within,
            fail_on: options.fail_on.map_or_else(|| "none".to_owned(), |s| s.as_str().to_owned()),
            profile_check: options.profile_check,
        },
        users: cfg.users().len(),
        counts: Counts::of(&findings),
        tokens,
        findings,
        warnings: parse_warnings.into_iter().map(|w| Warning { line: w.line, message: w.message }).collect(),
    }
}

/// One token's report and findings.
fn audit_token(
    index: &analysis::Index<'_>,
    id: TokenId,
    token: &Token,
    options: &Options,
    labels: &mut summary::Labels,
) -> (TokenReport, Vec<Finding>) {
    let settings = rules::Settings { now: options.now, window: options.expiring_within };
    let view = analysis::view(index, id, token);
    let profile = profile_check::detect(&view);
    let mut own = rules::token_findings(index, &view, profile.as_deref(), settings);
    if options.profile_check
        && !view.is_full_root()
        && let Some(name) = &profile
        && let Some(finding) = profile_check::check(index, &view, name)
    {
        own.push(finding);
    }
    let access = summary::access_lines(&view.evaluated, index.catalog, labels);
    let mut ids: Vec<&'static str> = own.iter().map(|f| f.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let report = TokenReport {
        id: view.id.to_string(),
        owner: view.owner.to_string(),
        privsep: view.token.privsep,
        expire: view.token.expire,
        status: rules::status(index, &view.id, view.token.expire, options.now),
        comment: view.token.comment.clone(),
        profile,
        access_summary: if view.is_full_root() {
            "full root (every privilege on every path)".to_owned()
        } else {
            summary::one_line(&access)
        },
        access,
        findings: ids,
    };
    (report, own)
}
