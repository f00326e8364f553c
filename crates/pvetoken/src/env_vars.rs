//! Every environment variable pvetoken reads, declared once. `pvetoken --help` and the README list these.

/// Disables colour when set to a non-empty value (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
