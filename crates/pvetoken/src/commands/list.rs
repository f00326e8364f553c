//! `pvetoken list`: the tokens of a user (or of every user with `--all`), with expiry, privsep and comment.

use clap::Args;

use crate::connection::{ConnectionArgs, TargetFallback, remote_error};
use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The user whose tokens to list.
    #[arg(long, value_name = "USER@REALM", default_value = "automation@pve", conflicts_with = "all")]
    pub user: String,
    /// List the tokens of every user.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// One listed token.
#[derive(Debug, serde::Serialize)]
struct Row {
    token_id: String,
    privsep: bool,
    expire: i64,
    expired: bool,
    comment: Option<String>,
}

/// Runs `pvetoken list`.
pub fn run(args: ListArgs, printer: &Printer) -> anyhow::Result<Exit> {
    if !args.all {
        pvetoken_lifecycle::token::validate_user(&args.user)?;
    }
    let target = args.connection.resolve_target(&TargetFallback::from_default_token_file(), printer)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let rows = runtime.block_on(async {
        let crate::connection::AdminSession { client, target, .. } = args.connection.admin_session(target).await?;
        let now = pvetoken_lifecycle::clock::now();
        let mut rows = Vec::new();
        if args.all {
            for user in client.users_full().await.map_err(|error| remote_error(&error, &target))? {
                for token in user.tokens.unwrap_or_default() {
                    rows.push(row(&user.userid, token, now));
                }
            }
        } else {
            for token in client.tokens(&args.user).await.map_err(|error| remote_error(&error, &target))? {
                rows.push(row(&args.user, token, now));
            }
        }
        rows.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        Ok::<_, anyhow::Error>(rows)
    })?;
    if printer.is_json() {
        printer.json(&rows)?;
    } else if rows.is_empty() {
        printer.info("no tokens");
    } else {
        let mut text = format!("{:<40} {:<8} {:<12} {}\n", "TOKEN", "PRIVSEP", "EXPIRE", "COMMENT");
        for row in &rows {
            let expire = match (row.expire, row.expired) {
                (0, _) => "never".to_owned(),
                (_, true) => "EXPIRED".to_owned(),
                (epoch, false) => format!("in {}d", (epoch - pvetoken_lifecycle::clock::now()) / 86_400),
            };
            text.push_str(&format!(
                "{:<40} {:<8} {:<12} {}\n",
                row.token_id,
                if row.privsep { "1" } else { "0 (=user)" },
                expire,
                crate::printer::sanitize(row.comment.as_deref().unwrap_or(""))
            ));
        }
        printer.data(&text)?;
    }
    Ok(Exit::Success)
}

fn row(user: &str, token: pvetoken_api::pve::TokenInfo, now: i64) -> Row {
    Row {
        token_id: format!("{user}!{}", token.tokenid.unwrap_or_default()),
        privsep: token.privsep,
        expire: token.expire,
        expired: token.expire > 0 && token.expire < now,
        comment: token.comment,
    }
}
