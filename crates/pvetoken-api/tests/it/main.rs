//! Integration tests, one module per area.

mod secret {
    use pvetoken_api::{ExposeSecret, Secret};

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = Secret::from("0b3c9f1e-aaaa-bbbb-cccc-000000000000".to_owned());
        let shown = format!("{secret:?} {secret:#?}");
        assert!(!shown.contains("0b3c9f1e"), "secret leaked through Debug: {shown}");
        assert_eq!(secret.expose_secret(), "0b3c9f1e-aaaa-bbbb-cccc-000000000000");
    }

    #[test]
    fn secret_deserializes_from_json_string() {
        let secret: Secret = serde_json::from_str("\"s3cret\"").expect("a JSON string is a valid secret");
        assert_eq!(secret.expose_secret(), "s3cret");
    }
}
