//! Randomness for secrets, passwords and keys: the OS generator, or a deterministic one with `--seed` (demos and
//! reproducible tests; never for anything real).

use std::sync::Mutex;

/// Where random bytes come from.
#[derive(Debug)]
pub(crate) struct LabRng {
    seeded: Option<Mutex<u64>>,
}

impl LabRng {
    /// OS randomness, or SplitMix64 from `seed`.
    pub(crate) fn new(seed: Option<u64>) -> LabRng {
        LabRng { seeded: seed.map(Mutex::new) }
    }

    /// Fills `buf` with random bytes.
    pub(crate) fn fill(&self, buf: &mut [u8]) {
        match &self.seeded {
            None => {
                if getrandom::getrandom(buf).is_err() {
                    // getrandom only fails on exotic platforms; fall back to a time-based seed rather than panic.
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0x9e37_79b9_7f4a_7c15);
                    let mut state = nanos;
                    for chunk in buf.chunks_mut(8) {
                        let v = splitmix(&mut state).to_le_bytes();
                        chunk.copy_from_slice(&v[..chunk.len()]);
                    }
                }
            }
            Some(state) => {
                let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for chunk in buf.chunks_mut(8) {
                    let v = splitmix(&mut state).to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
        }
    }

    /// A lowercase version-4 UUID, the form PVE uses for token secrets.
    pub(crate) fn uuid(&self) -> String {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }

    /// A password of `len` characters from an unambiguous alphabet.
    pub(crate) fn password(&self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut b = vec![0u8; len];
        self.fill(&mut b);
        b.iter().map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char).collect()
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
