//! The consumer table against the renderers and lint: a format writes exactly the keys the table declares, lint
//! judges every key that holds a credential, a URL or a TLS switch, and the Semaphore layouts hold the right values.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::PathBuf;

use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_render::consumers::{self, SemaphoreLayout};
use pvetoken_render::{Format, RenderOptions, TokenFile};

fn token() -> TokenFile {
    TokenFile::new(
        "https://192.168.1.10:8006",
        "pve",
        "automation@pve!ansible".parse().unwrap(),
        Secret::from("11111111-2222-3333-4444-555555555555".to_owned()),
    )
    .unwrap()
}

/// A token with every optional field set.
fn full_token() -> TokenFile {
    let mut token = token();
    token.fingerprint = Some(["AB"; 32].join(":"));
    token.storage = Some("tank".to_owned());
    token.ca_file = Some(PathBuf::from("/etc/pve-ca.pem"));
    token.tls_insecure = true;
    token
}

/// The keys of the assignment lines of a rendered file (`KEY=`, `export KEY=`, `key = `, `key: `), in order.
fn written_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let end = line.find(['=', ':'])?;
            let key = line[..end].trim();
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then(|| key.to_owned())
        })
        .collect()
}

#[test]
fn every_format_writes_exactly_the_keys_the_consumer_table_declares() {
    for &format in Format::ALL {
        let declared = consumers::keys(format);
        if declared.is_empty() {
            continue;
        }
        let required: Vec<&str> = declared.iter().filter(|key| !key.optional).map(|key| key.name).collect();
        let all: Vec<&str> = declared.iter().map(|key| key.name).collect();
        let minimal = format.render_to_string(&token(), &RenderOptions::default()).unwrap();
        assert_eq!(written_keys(&minimal), required, "{format} without optional fields");
        let full = format.render_to_string(&full_token(), &RenderOptions::default()).unwrap();
        let keys = written_keys(&full);
        assert!(keys.iter().all(|key| all.contains(&key.as_str())), "{format} writes undeclared keys: {keys:?}");
        assert!(required.iter().all(|key| keys.iter().any(|k| k == key)), "{format} with every field: {keys:?}");
    }
}

#[test]
fn lint_judges_every_key_that_holds_a_credential_a_url_or_a_tls_switch() {
    let mut unjudged = Vec::new();
    for &format in Format::ALL {
        for key in consumers::keys(format).iter().filter(|key| key.holds.is_checked()) {
            if !pvetoken_render::lint::judges_key(key.name) {
                unjudged.push(format!("{format}: {}", key.name));
            }
        }
    }
    for layout in SemaphoreLayout::ALL {
        for key in layout.keys().into_iter().filter(|key| key.holds.is_checked()) {
            if !pvetoken_render::lint::judges_key(key.name) {
                unjudged.push(format!("semaphore layout {}: {}", layout.name(), key.name));
            }
        }
    }
    assert!(unjudged.is_empty(), "lint has no rule for {unjudged:?}");
    assert!(!pvetoken_render::lint::judges_key("PROXMOX_NODE"), "judges_key must be able to say no");
}

#[test]
fn the_environment_formats_are_the_ones_exec_can_hand_to_a_child() {
    for &format in Format::ALL {
        let variables = format.variables(&token());
        assert_eq!(variables.is_some(), consumers::is_environment(format), "{format}");
        if let Some(variables) = variables {
            let names: Vec<String> = variables.unwrap().into_iter().map(|(name, _)| name).collect();
            for name in &names {
                assert!(consumers::environment_variables().contains(&name.as_str()), "{format}: {name}");
            }
        }
    }
    let names = consumers::environment_variables();
    let mut unique = names.clone();
    unique.dedup();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "each name once");
    for name in ["PROXMOX_VE_API_TOKEN", "PM_API_TOKEN_SECRET", "PROXMOX_USERNAME", "PROXMOX_API_TOKEN"] {
        assert!(names.contains(&name), "{name}");
    }
}

fn pairs(layout: SemaphoreLayout, token: &TokenFile) -> Vec<(String, String)> {
    layout
        .variables(token)
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.expose_secret().to_owned()))
        .collect()
}

#[test]
fn seed_layout_is_exactly_the_four_variables_of_the_design_note_with_the_full_token_id() {
    let pairs = pairs(SemaphoreLayout::Seed, &token());
    let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["PROXMOX_HOST", "PROXMOX_NODE", "PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET"]);
    assert_eq!(pairs[0].1, "192.168.1.10");
    assert_eq!(pairs[2].1, "automation@pve!ansible");
    assert_eq!(pairs[3].1, "11111111-2222-3333-4444-555555555555");
}

#[test]
fn community_layout_splits_user_and_token_name_and_port_and_cannot_pin() {
    let get = |pairs: &[(String, String)], key: &str| {
        pairs.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone())
    };
    let mut token = token();
    token.port = 8443;
    let plain = pairs(SemaphoreLayout::CommunityProxmox, &token);
    assert_eq!(plain.len(), 6);
    assert_eq!(get(&plain, "PROXMOX_HOST").as_deref(), Some("192.168.1.10"));
    assert_eq!(get(&plain, "PROXMOX_PORT").as_deref(), Some("8443"));
    assert_eq!(get(&plain, "PROXMOX_USER").as_deref(), Some("automation@pve"));
    assert_eq!(get(&plain, "PROXMOX_TOKEN_ID").as_deref(), Some("ansible"));
    assert_eq!(get(&plain, "PROXMOX_VALIDATE_CERTS").as_deref(), Some("true"));
    token.fingerprint = Some(["AB"; 32].join(":"));
    let pinned = pairs(SemaphoreLayout::CommunityProxmox, &token);
    assert_eq!(get(&pinned, "PROXMOX_VALIDATE_CERTS").as_deref(), Some("false"));
}

#[test]
fn layouts_are_found_by_name_and_manage_every_name_they_write() {
    for layout in SemaphoreLayout::ALL {
        assert_eq!(SemaphoreLayout::parse(layout.name()), Some(layout));
        assert_eq!(layout.variables(&token()).len(), layout.keys().len(), "{} has a value for each", layout.name());
        for name in layout.names() {
            assert!(SemaphoreLayout::managed_names().contains(&name));
        }
    }
    assert_eq!(SemaphoreLayout::parse("seeds"), None);
    assert_eq!(SemaphoreLayout::managed_names().len(), 7);
}
