//! Unguessable bytes for session ids and boundaries: 128 bits from the operating system
//! (`getrandom`), with a keyed-hash fallback for the day the OS cannot give them.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// 128 random bits as 32 lower-case hex digits.
pub(crate) fn random_hex() -> String {
    format!("{:032x}", u128::from_be_bytes(random_bytes()))
}

/// 16 bytes from the OS; should it fail (it does not on any supported system), from `fallback`.
fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => bytes,
        Err(_) => fallback(),
    }
}

/// 16 bytes nobody outside this process can predict: SipHash, keyed by std's `RandomState` (its
/// keys come from the OS once per thread), of the time, the process id and a counter. Weaker
/// than asking the OS each time, but still secret keys over inputs that never repeat.
fn fallback() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let keys = std::collections::hash_map::RandomState::new();
    let mut bytes = [0u8; 16];
    for (half, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = keys.build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_u64(count);
        hasher.write_usize(half);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hex_is_128_bits_and_fresh_each_time() {
        let a = random_hex();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, random_hex());
    }

    #[test]
    fn the_fallback_never_repeats_itself_either() {
        let seen: HashSet<[u8; 16]> = (0..1000).map(|_| fallback()).collect();
        assert_eq!(seen.len(), 1000);
    }
}
