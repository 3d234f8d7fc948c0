//! The line readers every reading of a log shares: a line's time, a timed event, a word on the
//! `Scores ->` line, and the lines that carry the referee's call.

/// True for the lines the recorder writes about the referee's call: any line naming a
/// winner, any remote-referee line, the broadcast text, and the bracketed `[date time] …`
/// bookkeeping written after the phrase ended (interpretation, upload, compression).
pub fn is_referee_call_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    line.trim_start().starts_with('[')
        || ["winner", "referee", "broadcast:", "abstain"].iter().any(|w| lower.contains(w))
}

/// The log without the referee's call lines (see [`is_referee_call_line`]); every other line
/// is kept as it was, each ending with a newline.
pub fn strip_referee_call(log: &str) -> String {
    log.lines().filter(|l| !is_referee_call_line(l)).flat_map(|l| [l, "\n"]).collect()
}

/// `<digits>.<digits>s |` at the start of a line (after spaces): the event time and the text after `|`.
pub fn event_line(line: &str) -> Option<(f64, &str)> {
    let s = line.trim_start();
    let int = s.bytes().take_while(u8::is_ascii_digit).count();
    if int == 0 || s.as_bytes().get(int) != Some(&b'.') {
        return None;
    }
    let frac = s[int + 1..].bytes().take_while(u8::is_ascii_digit).count();
    let after = &s[int + 1 + frac..];
    if frac == 0 || !after.starts_with('s') {
        return None;
    }
    let rest = after[1..].trim_start().strip_prefix('|')?;
    Some((s[..int + 1 + frac].parse().ok()?, rest.trim()))
}

/// The first `<digits>.<digits>s` on the line (the regex `(\d+\.\d+)s`).
pub fn line_time(line: &str) -> Option<f64> {
    let b = line.as_bytes();
    let digits_from = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let int_end = i + digits_from(i);
            if b.get(int_end) == Some(&b'.') {
                let frac_end = int_end + 1 + digits_from(int_end + 1);
                if frac_end > int_end + 1 && b.get(frac_end) == Some(&b's') {
                    return line[i..frac_end].parse().ok();
                }
            }
            // Any later start inside this run of digits fails the same way.
            i = int_end.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

/// The word (`\w+`) after `label` (lower-case ASCII) and optional spaces, found
/// case-insensitively, upper-cased.
pub fn word_after(line: &str, label: &str) -> Option<String> {
    // ASCII lower-casing keeps every byte where it was, so the label's end in `lower` is its end
    // in `line`; full Unicode lower-casing would not (`İ` is 2 bytes, its lower case 3).
    let lower = line.to_ascii_lowercase();
    let at = lower.find(label)? + label.len();
    let rest = line[at..].trim_start();
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!word.is_empty()).then(|| word.to_uppercase())
}

/// `(Confirmed result winner|Manual selection winner):\s*(Right|Left)`, case-insensitive →
/// `right`/`left`.
pub fn referee_call(line: &str) -> Option<String> {
    let lower = line.to_lowercase();
    for label in ["confirmed result winner:", "manual selection winner:"] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(label) {
            let rest = lower[from + pos + label.len()..].trim_start();
            for side in ["right", "left"] {
                if rest.starts_with(side) {
                    return Some(side.to_owned());
                }
            }
            from += pos + label.len();
        }
    }
    None
}
