fn main() {
    let text = std::fs::read_to_string("/tmp/speedbench/user.cfg").unwrap();
    let catalog = pvetoken_acl::Catalog::newest();
    let what = std::env::args().nth(1).unwrap_or_default();
    for _ in 0..100 {
        let (p, _) = pvetoken_acl::ParsedCfg::parse(&text, &catalog);
        if what == "model" {
            std::hint::black_box(p.to_user_cfg());
        }
        std::hint::black_box(p);
    }
}
