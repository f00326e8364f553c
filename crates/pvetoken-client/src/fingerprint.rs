//! Certificate fingerprints: the SHA-256 of a DER certificate as PVE shows it (`AA:BB:...`), and the error a pinned
//! check reports when the server presents another certificate.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 fingerprint of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// Why a fingerprint could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid SHA-256 fingerprint `{input}`: {reason}; expected 32 bytes of hex such as `AB:CD:...` (as shown by \
     `pvenode cert info`) or `abcd...`"
)]
pub struct FingerprintError {
    input: String,
    reason: &'static str,
}

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex without separators.
    pub fn to_plain_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| FingerprintError { input: input.chars().take(120).collect(), reason };
        let trimmed = input.trim();
        let trimmed = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .or_else(|| trimmed.strip_prefix("SHA256 "))
            .unwrap_or(trimmed);
        let hex: String = if trimmed.contains(':') {
            let groups: Vec<&str> = trimmed.split(':').collect();
            if groups.iter().any(|group| group.len() != 2) {
                return Err(error("colon-separated groups must have two hex digits each"));
            }
            groups.concat()
        } else {
            trimmed.to_owned()
        };
        if hex.len() != 64 {
            return Err(error("a SHA-256 fingerprint has 64 hex digits"));
        }
        let mut bytes = [0_u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            let pair = hex.get(index * 2..index * 2 + 2).ok_or_else(|| error("not hex"))?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| error("contains a character that is not hex"))?;
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    /// PVE's notation: upper-case hex pairs separated by colons.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The error a pinned-certificate check reports inside the TLS error; [`ClientError`] finds it in the source chain
/// and turns it into [`ClientError::CertificateMismatch`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("the server presented a certificate with SHA-256 fingerprint {presented}, not the pinned {expected}")]
pub struct FingerprintMismatch {
    /// The pinned fingerprint.
    pub expected: Fingerprint,
    /// What the server presented.
    pub presented: Fingerprint,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pve_colon_notation_and_plain_hex_parse_to_the_same_fingerprint() {
        let colon = "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF";
        let a: Fingerprint = colon.parse().expect("colon form");
        let b: Fingerprint = PLAIN.parse().expect("plain form");
        let c: Fingerprint = PLAIN.to_uppercase().parse().expect("upper-case plain form");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.to_string(), colon);
        assert_eq!(a.to_plain_hex(), PLAIN);
    }

    #[test]
    fn truncated_or_non_hex_fingerprints_are_rejected_with_the_expected_shape() {
        assert!(PLAIN[..62].parse::<Fingerprint>().is_err());
        assert!(PLAIN.replace('a', "g").parse::<Fingerprint>().is_err());
        let error = "01:2:34".parse::<Fingerprint>().expect_err("bad groups");
        assert!(error.to_string().contains("AB:CD"), "{error}");
    }
}
