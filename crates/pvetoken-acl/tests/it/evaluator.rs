//! Property: the compiled evaluator (indexed per subject, roles resolved once) answers exactly what the slow
//! reference path answers, which derives every privilege from `explain` (the traced walk of Proxmox's `roles()`,
//! pools and the privsep intersection). Random configurations come from the same line generator as the round-trip
//! property, so they include invalid lines, unknown members, nested pools, NoAccess and privsep 0/1 tokens. The
//! engine compiled from the parse (for everyone, and for one subject only, as `acl eval --batch` does) must agree
//! too.

use proptest::prelude::*;
use pvetoken_acl::{Catalog, Evaluator, ParsedCfg, Subject, UserCfg};

const SUBJECTS: &[&str] =
    &["a@pve", "bb@pam", "c@ldap", "root@pam", "nobody@pve", "a@pve!tok", "bb@pam!t1", "root@pam!full"];

const PREFIX: &str = "user:a@pve:1:0::::::
user:bb@pam:1:0::::::
user:c@ldap:1:0::::::
token:a@pve!tok:0:1::
token:bb@pam!t1:0:0::
token:root@pam!full:0:1::
group:g1:a@pve,c@ldap::
group:g2:bb@pam::";

const PATHS: &[&str] = &[
    "/",
    "/vms",
    "/vms/100",
    "/vms/7",
    "/vms/0",
    "/pool/p",
    "/pool/p/q",
    "/storage/local",
    "/storage/l",
    "/nodes/n1",
    "/access",
    // Raw forms the API evaluates as given.
    "vms/100",
    "/vms/100/",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn compiled_evaluator_agrees_with_the_reference_walk_on_random_configurations(
        lines in prop::collection::vec(super::roundtrip::line(), 0..30),
        version in prop::sample::select(vec!["7", "8.0", "8.4", "9.0", "9.1"]),
    ) {
        let catalog = Catalog::for_version(version.parse().expect("version"));
        // Subjects that exist (privsep and non-privsep tokens, a root token, a group), then the random lines, which
        // may redefine or contradict them.
        let text = format!("{PREFIX}\n{}", lines.join("\n"));
        let (cfg, _) = UserCfg::parse(&text, &catalog);
        let evaluator = Evaluator::new(&cfg, &catalog);
        // The engine compiled straight from the parse, for everyone and for one subject at a time.
        let (parsed, _) = ParsedCfg::parse(&text, &catalog);
        let engine = parsed.engine(&catalog);
        for id in SUBJECTS {
            let subject: Subject = id.parse().expect("subject");
            let only = parsed.engine_for(&catalog, [*id]);
            for path in PATHS {
                let fast = evaluator.permissions_raw(&subject, path);
                let reference = pvetoken_acl::explain::reference_permissions(&cfg, &catalog, &subject, path);
                prop_assert_eq!(fast, reference, "{} on {} ({})\n{}", subject, path, version, cfg.write());
                prop_assert_eq!(engine.permissions_raw(&subject, path), reference, "parsed engine, {} on {}", id, path);
                prop_assert_eq!(only.permissions_raw(&subject, path), reference, "engine for {} only, on {}", id, path);
            }
        }
    }
}
