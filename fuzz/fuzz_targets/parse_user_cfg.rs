//! Fuzz target: any bytes as user.cfg (every supported release) must parse without panicking and evaluate any
//! subject/path without panicking; rewriting must converge. (One rewrite is not always a fixed point, in Proxmox
//! too: a NUL-separated member list can hold a user id containing `,`, which the written comma list splits.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvetoken_acl::{Catalog, Evaluator, PveVersion, Subject, UserCfg};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for version in [PveVersion::V7_4, PveVersion::V8_4, PveVersion::NEWEST] {
        let catalog = Catalog::for_version(version);
        let (cfg, _warnings) = UserCfg::parse(&text, &catalog);
        let (once, _) = UserCfg::parse(&cfg.write(), &catalog);
        let written = once.write();
        let (again, _) = UserCfg::parse(&written, &catalog);
        assert_eq!(again.write(), written, "rewriting does not converge");
        let eval = Evaluator::new(&cfg, &catalog);
        // Evaluate the first line's fields as subject/path, plus users of the config.
        for line in text.lines().take(4) {
            for field in line.split(':') {
                if let Ok(subject) = field.parse::<Subject>() {
                    for path in ["/", "/vms/100", "", "vms//1/", "/pool/a"] {
                        let _ = eval.permissions_raw(&subject, path);
                    }
                    let _ = eval.permission_map(&subject);
                }
            }
        }
    }
});
