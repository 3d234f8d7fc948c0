//! The disk under the phrases: how much is free, whether an I/O error means it is full, and the
//! retention sweep that removes phrases older than `--retention-days`.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Bytes available to this process on the filesystem holding `path` (the nearest existing
/// ancestor is asked when `path` is not there yet); `None` when the system cannot say.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer the size statvfs fills; read only on success.
    let status = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stats = unsafe { stats.assume_init() };
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Whether an I/O error says the disk (or the user's quota on it) is full.
pub fn is_full(err: &std::io::Error) -> bool {
    matches!(err.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Refuses new work below the free-space floor: `Err((free, floor))` when fewer than `floor`
/// bytes are free where `path` lives. A system that cannot say is let through.
pub fn check_floor(path: &Path, floor: u64) -> Result<(), (u64, u64)> {
    match free_bytes(path) {
        Some(free) if free < floor => Err((free, floor)),
        _ => Ok(()),
    }
}

/// Removes the directories directly under `root` that nothing has changed for `age` (the newest
/// change of the directory or any file directly in it) and that `in_use` does not claim;
/// returns how many went. Files directly under `root` and hidden entries are left alone.
pub fn remove_older_than(root: &Path, age: Duration, in_use: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else { return 0 };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let dir = entry.path();
        if name.starts_with('.') || !dir.is_dir() || in_use(&name) {
            continue;
        }
        let Some(changed) = last_change(&dir) else { continue };
        if now.duration_since(changed).is_ok_and(|old| old >= age) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(dir = %dir.display(), "removed: older than the retention period");
                }
                Err(e) => tracing::warn!(dir = %dir.display(), %e, "cannot remove an expired directory"),
            }
        }
    }
    removed
}

/// The newest modification time of a directory and the files directly in it.
fn last_change(dir: &Path) -> Option<SystemTime> {
    let own = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    let files = std::fs::read_dir(dir).ok()?.flatten().filter_map(|e| e.metadata().and_then(|m| m.modified()).ok());
    files.chain(own).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_a_full_disk_is_recognised() {
        let free = free_bytes(&std::env::temp_dir().join("not/there/yet")).expect("statvfs answers for /tmp");
        assert!(free > 0);
        assert!(check_floor(&std::env::temp_dir(), 0).is_ok());
        assert_eq!(check_floor(&std::env::temp_dir(), u64::MAX).map_err(|(_, floor)| floor), Err(u64::MAX));
        assert!(is_full(&std::io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_full(&std::io::Error::from_raw_os_error(libc::EACCES)));
    }

    #[test]
    fn only_old_unclaimed_directories_are_removed() {
        let root = std::env::temp_dir().join(format!("ai-referee-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for name in ["old", "claimed", ".hidden"] {
            std::fs::create_dir_all(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("f"), b"x").unwrap();
        }
        std::fs::write(root.join("loose-file"), b"x").unwrap();
        assert_eq!(remove_older_than(&root, Duration::from_secs(3600), |_| false), 0, "nothing is an hour old");
        assert_eq!(remove_older_than(&root, Duration::ZERO, |name| name == "claimed"), 1);
        assert!(!root.join("old").exists());
        assert!(root.join("claimed").exists() && root.join(".hidden").exists() && root.join("loose-file").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
