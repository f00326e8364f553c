//! Age recipients (`age1...`), validated before anything is encrypted for them.
//!
//! A recipient is Bech32 (BIP 173, not Bech32m) with the human-readable part `age` and a 32-byte X25519 public key
//! as data, or a plugin recipient whose human-readable part starts with `age1` (`age1yubikey1...`). The checksum is
//! verified, so a typo is caught here instead of producing a file nobody can decrypt.
//!
//! ```
//! use pvetoken_render::AgeRecipient;
//! let ok: AgeRecipient = "age1um008hxqt8842e8w3hc6hm2eksvc90r26hdyl6dzkgdfnqauq3qsnh693l".parse().unwrap();
//! assert!(ok.as_str().starts_with("age1"));
//! assert!("age1um008hxqt8842e8w3hc6hm2eksvc90r26hdyl6dzkgdfnqauq3qsnh693m".parse::<AgeRecipient>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

/// A syntactically valid age recipient (lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgeRecipient(String);

/// Why a string is not an age recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgeRecipientError {
    /// It does not start with `age1`.
    #[error("an age recipient starts with `age1` (see `age-keygen -y KEYFILE`)")]
    Prefix,
    /// Mixed case, or a character outside the Bech32 alphabet.
    #[error("an age recipient uses only the Bech32 characters (qpzry9x8gf2tvdw0s3jn54khce6mua7l) in one case")]
    Charset,
    /// The checksum does not match: a typo or a truncated key.
    #[error("the age recipient's checksum does not match (a typo or a truncated key?)")]
    Checksum,
    /// The checksum matches but the key is not 32 bytes.
    #[error("the age recipient does not hold a 32-byte X25519 key")]
    Length,
}

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

impl AgeRecipient {
    /// The recipient, as `age` and `sops --age` take it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AgeRecipient {
    type Err = AgeRecipientError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        if !lower.starts_with("age1") {
            return Err(AgeRecipientError::Prefix);
        }
        let has_lower = text.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = text.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper {
            return Err(AgeRecipientError::Charset);
        }
        // The separator is the last '1'; the human-readable part is `age` or a plugin's `age1name`.
        let separator = lower.rfind('1').ok_or(AgeRecipientError::Prefix)?;
        let (hrp, data) = (&lower[..separator], &lower[separator + 1..]);
        if !(hrp == "age" || hrp.starts_with("age1")) || data.len() < 6 {
            return Err(AgeRecipientError::Prefix);
        }
        let values = data
            .bytes()
            .map(|b| CHARSET.iter().position(|c| *c == b).map(|p| p as u8))
            .collect::<Option<Vec<u8>>>()
            .ok_or(AgeRecipientError::Charset)?;
        let mut checked: Vec<u8> = hrp.bytes().map(|b| b >> 5).collect();
        checked.push(0);
        checked.extend(hrp.bytes().map(|b| b & 31));
        checked.extend(&values);
        if polymod(&checked) != 1 {
            return Err(AgeRecipientError::Checksum);
        }
        let payload_bits = (values.len() - 6) * 5;
        if hrp == "age" && (payload_bits / 8 != 32 || payload_bits % 8 >= 5) {
            return Err(AgeRecipientError::Length);
        }
        Ok(Self(lower))
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The BIP 173 checksum function.
fn polymod(values: &[u8]) -> u32 {
    const GENERATOR: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];
    let mut checksum: u32 = 1;
    for value in values {
        let top = checksum >> 25;
        checksum = ((checksum & 0x01ff_ffff) << 5) ^ u32::from(*value);
        for (bit, generator) in GENERATOR.iter().enumerate() {
            if (top >> bit) & 1 == 1 {
                checksum ^= generator;
            }
        }
    }
    checksum
}
