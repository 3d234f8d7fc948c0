//! Session ids: the rule every id must follow (it names a folder on the server's disk and travels
//! in URLs and headers), and fresh ids that follow it and that nobody can guess.

use crate::random::random_hex;

/// The longest id the rule allows.
pub const SESSION_ID_MAX_LEN: usize = 64;

/// Whether `id` is a valid session id: 1 to 64 of `A-Z a-z 0-9 _ -` (`[A-Za-z0-9_-]{1,64}`).
pub fn valid_session_id(id: &str) -> bool {
    (1..=SESSION_ID_MAX_LEN).contains(&id.len()) && id.bytes().all(allowed)
}

/// A fresh session id, `<ms since 1970>-<128 random bits in hex>`: valid, at most 53 characters,
/// and unguessable (the random part comes from the OS).
pub fn new_session_id() -> String {
    new_session_id_with_prefix("")
}

/// A fresh session id as [`new_session_id`], with `prefix` in front as it is (`"piste-"` gives
/// `piste-<ms>-<hex>`, `"s"` gives `s<ms>-<hex>`). Characters the rule does not allow are dropped
/// from the prefix, and it is cut to fit 64 characters: the result is always valid, and the random
/// part is always whole.
pub fn new_session_id_with_prefix(prefix: &str) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    // As u64: at most 20 digits, so the time and random part take at most 53 characters.
    let rest = format!("{}-{}", millis as u64, random_hex());
    let room = SESSION_ID_MAX_LEN - rest.len();
    let prefix: String = prefix.chars().filter(|c| c.is_ascii() && allowed(*c as u8)).take(room).collect();
    prefix + &rest
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_rule_at_its_edges() {
        assert!(valid_session_id("phrase-01_A"));
        assert!(valid_session_id("a"));
        assert!(valid_session_id(&"a".repeat(64)));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id(&"a".repeat(65)));
        assert!(!valid_session_id("../etc"));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id("a/b"));
        assert!(!valid_session_id("a.b"));
        assert!(!valid_session_id("é"));
    }

    #[test]
    fn fresh_ids_are_valid_and_distinct() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(valid_session_id(id), "{id}");
            assert!(id.len() <= SESSION_ID_MAX_LEN);
        }
        let random = a.rsplit('-').next().unwrap();
        assert_eq!(random.len(), 32, "128 random bits in hex: {a}");
    }

    #[test]
    fn a_thousand_ids_are_all_distinct() {
        let ids: HashSet<String> = (0..1000).map(|_| new_session_id_with_prefix("piste-")).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| valid_session_id(id)));
    }

    #[test]
    fn the_prefix_is_kept_as_given_when_it_can_be() {
        let piste = new_session_id_with_prefix("piste-");
        assert!(piste.starts_with("piste-") && valid_session_id(&piste), "{piste}");
        let server = new_session_id_with_prefix("s");
        assert!(server.starts_with('s') && server[1..].starts_with(|c: char| c.is_ascii_digit()), "{server}");
        assert!(valid_session_id(&server));
    }

    #[test]
    fn a_bad_prefix_still_gives_a_valid_id_with_all_its_randomness() {
        for prefix in ["../etc/", "a b", "é", &"p".repeat(100)] {
            let id = new_session_id_with_prefix(prefix);
            assert!(valid_session_id(&id), "{prefix:?} gave {id}");
            assert_eq!(id.rsplit('-').next().unwrap().len(), 32, "{id}");
        }
        assert!(new_session_id_with_prefix("../etc/").starts_with("etc"));
        assert_eq!(new_session_id_with_prefix(&"p".repeat(100)).len(), SESSION_ID_MAX_LEN);
    }
}
