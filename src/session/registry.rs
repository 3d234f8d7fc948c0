//! The sessions this server knows: admission (at most `max_busy` phrases uploading or being
//! decided at once, one upload per session), lookup (in memory, or rebuilt from disk after a
//! restart), and retirement (a session nobody uses leaves memory: decided or failed ones at
//! once, undecided ones once idle; all of it is on disk, where a lookup finds it again).
//!
//! The registry's lock guards the map and nothing else: no file is read or written under it
//! (sessions are rebuilt, created and listed outside it), so one slow disk never stalls
//! admission, lookups or `/metrics` for every piste. Its methods block on the disk: async code
//! calls them on the blocking pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use referee_store as store;

use super::worker::AnalysisPool;
use super::{valid_session_id, Analysis, Session, SessionError, SessionState, SessionSummary};

/// All sessions of this server.
pub struct Sessions {
    output: PathBuf,
    open: Mutex<HashMap<String, Arc<Session>>>,
    max_busy: usize,
    max_phrase_bytes: u64,
    idle: Duration,
    /// Bytes that must stay free on the disk for a new phrase to start.
    min_free: u64,
    pool: Arc<AnalysisPool>,
    /// Whole-video analyses (`/analyze`) running now; they count against `max_busy` too.
    analyses: Arc<AtomicUsize>,
    /// Told each time a whole-video analysis ends (shutdown waits on it).
    analysis_ended: Arc<tokio::sync::Notify>,
}

/// A whole-video analysis's place in the concurrent-phrase limit, given back when dropped.
#[derive(Debug)]
pub struct AnalysisSlot {
    analyses: Arc<AtomicUsize>,
    ended: Arc<tokio::sync::Notify>,
}

impl Drop for AnalysisSlot {
    fn drop(&mut self) {
        self.analyses.fetch_sub(1, Ordering::SeqCst);
        self.ended.notify_waiters();
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("output", &self.output).field("max_busy", &self.max_busy).finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions under `output`: at most `max_busy` uploading or being decided at once, at most
    /// `max_phrase_bytes` of frames each, analysed on `pool`; an undecided one left alone for
    /// `idle` leaves memory and is rebuilt from disk when it is asked for again.
    pub fn new(output: PathBuf, max_busy: usize, max_phrase_bytes: u64, idle: Duration, pool: Arc<AnalysisPool>) -> Sessions {
        Sessions { output, open: Mutex::new(HashMap::new()), max_busy, max_phrase_bytes, idle, min_free: 0, pool, analyses: Arc::new(AtomicUsize::new(0)), analysis_ended: Arc::default() }
    }

    /// The same, refusing new phrases (not resumed ones) while fewer than `bytes` are free on the
    /// disk.
    pub fn with_min_free(mut self, bytes: u64) -> Sessions {
        self.min_free = bytes;
        self
    }

    /// Where the sessions' directories are.
    pub fn root(&self) -> &std::path::Path {
        &self.output
    }

    /// Whether a session of this name is held in memory now (uploading, analysing, or recent).
    pub fn holds(&self, id: &str) -> bool {
        self.registry().contains_key(id)
    }

    /// Sessions on disk whose frames and log are all in but that were never decided (the server
    /// stopped while deciding them): to be analysed again at start-up.
    pub fn undecided_on_disk(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.output) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                let id = e.file_name().to_str()?.to_owned();
                let dir = e.path();
                let undecided = dir.join(store::UPLOAD_COMPLETE).is_file() && dir.join(store::SIGNAL).is_file() && !dir.join(store::RESULT).is_file();
                (valid_session_id(&id) && undecided).then_some(id)
            })
            .collect()
    }

    /// A failed session let go and rebuilt from its files, so that it can be decided again;
    /// any other session as `get` finds it.
    pub fn retry(&self, id: &str) -> Option<Arc<Session>> {
        let failed = {
            let mut open = self.registry();
            let failed = open.get(id).is_some_and(|s| s.progress().state == SessionState::Failed);
            failed.then(|| open.remove(id)).flatten()
        };
        if let Some(s) = failed {
            s.retire();
        }
        self.get(id)
    }

    /// Phrases uploading or being decided now (streamed and `/analyze` alike).
    pub fn busy(&self) -> usize {
        self.busy_locked(&self.registry(), None)
    }

    /// Phrases whose upload or decision a stop would cut now (`/analyze` ones included).
    pub fn running(&self) -> usize {
        self.registry().values().filter(|s| s.running()).count() + self.analyses.load(Ordering::SeqCst)
    }

    /// Waits until no phrase is running (see [`Sessions::running`]): woken by the running
    /// phrases' own progress and by whole-video analyses ending, never by a timer.
    pub async fn until_none_running(&self) {
        loop {
            let analysis_ended = self.analysis_ended.notified();
            tokio::pin!(analysis_ended);
            // Registered before the count is read, so an analysis ending in between is seen.
            analysis_ended.as_mut().enable();
            let running: Vec<Arc<Session>> = self.registry().values().filter(|s| s.running()).cloned().collect();
            if running.is_empty() && self.analyses.load(Ordering::SeqCst) == 0 {
                return;
            }
            if running.is_empty() {
                analysis_ended.await;
                continue;
            }
            tokio::select! {
                () = &mut analysis_ended => {}
                () = async {
                    for session in &running {
                        session.until_settled().await;
                    }
                } => {}
            }
        }
    }

    /// Refuses a new phrase below the free-space floor.
    pub fn check_disk(&self) -> Result<(), SessionError> {
        crate::disk::check_floor(&self.output, self.min_free).map_err(|(free, floor)| SessionError::DiskFull { free_mb: free >> 20, floor_mb: floor >> 20 })
    }

    fn registry(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool that analyses the sessions.
    pub fn pool(&self) -> &AnalysisPool {
        &self.pool
    }

    /// Sessions held in memory now.
    pub fn in_memory(&self) -> usize {
        self.registry().len()
    }

    /// How many sessions in memory are in each state.
    pub fn count_by_state(&self) -> Vec<(SessionState, usize)> {
        let open = self.registry();
        let states = [SessionState::Receiving, SessionState::Interrupted, SessionState::Analysing, SessionState::Done, SessionState::Failed];
        states.iter().map(|&state| (state, open.values().filter(|s| s.progress().state == state).count())).collect()
    }

    /// The newest `limit` sessions, in memory or on disk (newest first, by the last change of
    /// their files), summed up for the piste view's index. Sessions on disk are read, not
    /// rebuilt: listing opens no files for writing and starts nothing.
    pub fn list(&self, limit: usize) -> Vec<SessionSummary> {
        // The directories are read with no lock held; the map is only looked up.
        let Ok(entries) = std::fs::read_dir(&self.output) else { return Vec::new() };
        let mut found: Vec<(std::time::SystemTime, String)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let id = e.file_name().to_str()?.to_owned();
                let dir = e.path();
                let changed = [store::INDEX, store::SIGNAL, store::RESULT]
                    .iter()
                    .filter_map(|f| std::fs::metadata(dir.join(f)).and_then(|m| m.modified()).ok())
                    .max()?;
                (valid_session_id(&id) && dir.join(store::INDEX).is_file()).then_some((changed, id))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        found.truncate(limit);
        let held: Vec<Option<Arc<Session>>> = {
            let open = self.registry();
            found.iter().map(|(_, id)| open.get(id).cloned()).collect()
        };
        found
            .into_iter()
            .zip(held)
            .map(|((changed, id), session)| {
                let updated = crate::analysis::artifacts::utc_rfc3339(changed);
                let dir = self.output.join(&id);
                let call = super::shown_call(&id, &dir);
                match session {
                    Some(session) => SessionSummary::of(&session.progress(), updated, call),
                    None => SessionSummary::on_disk(&dir, id, updated, call),
                }
            })
            .collect()
    }

    /// A session known to this server: in memory, or on disk from before a restart (rebuilt,
    /// not analysed until an upload or its log asks for it).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        if !valid_session_id(id) {
            return None;
        }
        if let Some(s) = self.registry().get(id) {
            return Some(s.clone());
        }
        let dir = self.output.join(id);
        if !dir.join(store::INDEX).is_file() && !dir.join(store::RESULT).is_file() {
            return None;
        }
        // Rebuilt with the lock let go; when two lookups race, the first one in is kept.
        let session = Session::open(id, dir, self.max_phrase_bytes, self.pool.clone()).ok()?;
        Some(self.registry().entry(id.to_owned()).or_insert(session).clone())
    }

    /// Takes a place for a whole-video analysis (`/analyze`) among the `max_busy` phrases that may
    /// run at once; refused when they are all taken.
    pub fn admit_analysis(&self) -> Result<AnalysisSlot, SessionError> {
        self.check_disk()?;
        // Counted under the registry's lock, as uploads are, so the last place is taken once.
        let open = self.registry();
        let busy = self.busy_locked(&open, None);
        if busy >= self.max_busy {
            return Err(SessionError::Busy(busy));
        }
        self.analyses.fetch_add(1, Ordering::SeqCst);
        Ok(AnalysisSlot { analyses: self.analyses.clone(), ended: self.analysis_ended.clone() })
    }

    /// Retires the sessions nobody uses; runs on every new upload and on a timer.
    pub fn sweep(&self) {
        let leaving = self.sweep_locked(&mut self.registry(), None);
        retire_all(leaving);
    }

    /// Takes the sessions nobody uses out of the map; they are retired by the caller once the
    /// lock is let go (letting their analysis state go may close files).
    fn sweep_locked(&self, open: &mut HashMap<String, Arc<Session>>, keep: Option<&str>) -> Vec<Arc<Session>> {
        // Held means a handle beyond the registry's (an upload, an events stream, the pool's
        // queue); a new one can only be had from the registry, under this lock.
        let mut leaving = Vec::new();
        open.retain(|key, s| {
            if Some(key.as_str()) == keep || Arc::strong_count(s) > 1 {
                return true;
            }
            let ended = matches!(s.progress().state, SessionState::Done | SessionState::Failed);
            if ended || s.idle_for(self.idle) {
                leaving.push(s.clone());
                return false;
            }
            true
        });
        leaving
    }

    /// Phrases uploading or being decided, but for `except`, counted under the registry's lock.
    fn busy_locked(&self, open: &HashMap<String, Arc<Session>>, except: Option<&str>) -> usize {
        open.values().filter(|s| Some(s.id.as_str()) != except && s.busy()).count() + self.analyses.load(Ordering::SeqCst)
    }

    /// Opens the session `id` for an upload: created or rebuilt from disk, marked receiving,
    /// and analysed as frames come when `analysis` is given. Refused when `max_busy` others are
    /// busy, when it is complete, or when another connection is uploading to it.
    pub fn open_upload(&self, id: &str, analysis: Option<Analysis>) -> Result<Arc<Session>, SessionError> {
        // A first look, so that a refused phrase creates nothing on disk.
        let busy = self.busy_locked(&self.registry(), Some(id));
        if busy >= self.max_busy {
            return Err(SessionError::Busy(busy));
        }
        // Found or made with the lock let go (both may read or write the disk).
        let session = match self.get(id) {
            Some(s) => s,
            None => {
                self.check_disk()?;
                Session::open(id, self.output.join(id), self.max_phrase_bytes, self.pool.clone())?
            }
        };
        // Counted and claimed under the registry's lock, so two uploads cannot both take the
        // last slot.
        let (session, leaving) = {
            let mut open = self.registry();
            let leaving = self.sweep_locked(&mut open, Some(id));
            let busy = self.busy_locked(&open, Some(id));
            if busy >= self.max_busy {
                drop(open);
                retire_all(leaving);
                return Err(SessionError::Busy(busy));
            }
            // The one in the map wins a race (and a session retired since the lookup is put back).
            let session = open.entry(id.to_owned()).or_insert(session).clone();
            (session.claim_upload().map(|()| session), leaving)
        };
        retire_all(leaving);
        let session = session?;
        session.open_for_upload()?;
        if let Some(analysis) = analysis {
            session.start_analysis(analysis);
        }
        Ok(session)
    }
}

/// Lets the analysis state of sessions taken out of the map go.
fn retire_all(leaving: Vec<Arc<Session>>) {
    for session in leaving {
        session.retire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ai-referee-registry-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn stored_frames_survive_a_reload_and_the_phrase_limit_holds() {
        let dir = temp("reload");
        let pool = AnalysisPool::start(1).unwrap();
        let sessions = Sessions::new(dir.clone(), 2, 13, Duration::from_secs(60), pool.clone());
        let s = sessions.open_upload("r", None).unwrap();
        assert!(s.add_frame(Some(0), Some(0.0), Bytes::from_static(b"AAAA")).unwrap());
        assert!(s.add_frame(None, None, Bytes::from_static(b"BBBB")).unwrap());
        assert!(!s.add_frame(Some(1), None, Bytes::from_static(b"dup!")).unwrap(), "held frames are skipped");
        assert!(matches!(s.add_frame(None, None, Bytes::from_static(b"CCCCCCCC")), Err(SessionError::PhraseTooLarge { .. })));
        s.end_upload(false);
        assert!(matches!(sessions.open_upload("r", None).map(|_| ()), Ok(())));
        let again = sessions.open_upload("r", None);
        assert!(matches!(again, Err(SessionError::ReceivingElsewhere(_))), "one upload per session");
        drop(s);
        let fresh = Sessions::new(dir.clone(), 2, 13, Duration::from_secs(60), pool);
        let p = fresh.get("r").unwrap().progress();
        assert_eq!((p.frames_received, p.next_frame_index, p.bytes), (2, 2, 8));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn busy_sessions_are_counted_and_idle_ones_leave_memory() {
        let dir = temp("busy");
        let pool = AnalysisPool::start(1).unwrap();
        let sessions = Sessions::new(dir.clone(), 1, 1 << 20, Duration::ZERO, pool);
        let a = sessions.open_upload("a", None).unwrap();
        assert!(matches!(sessions.open_upload("b", None), Err(SessionError::Busy(1))));
        a.add_frame(None, None, Bytes::from_static(b"AAAA")).unwrap();
        a.end_upload(false);
        drop(a);
        let b = sessions.open_upload("b", None).unwrap();
        assert_eq!(sessions.in_memory(), 1, "the idle interrupted session left memory");
        // A whole-video analysis takes the one place while it runs, and gives it back.
        let slot = sessions.admit_analysis();
        assert!(matches!(slot, Err(SessionError::Busy(1))), "b is uploading");
        b.end_upload(false);
        let slot = sessions.admit_analysis().unwrap();
        assert!(matches!(sessions.open_upload("c", None), Err(SessionError::Busy(1))));
        drop(slot);
        let c = sessions.open_upload("c", None).unwrap();
        c.end_upload(false);
        drop((b, c));
        sessions.sweep();
        assert_eq!(sessions.in_memory(), 0);
        assert_eq!(sessions.get("a").unwrap().progress().state, SessionState::Interrupted);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_session_is_let_go_and_rebuilt_from_disk_by_a_retry() {
        let dir = temp("retry");
        let pool = AnalysisPool::start(1).unwrap();
        let sessions = Sessions::new(dir.clone(), 2, 1 << 20, Duration::from_secs(60), pool);
        let session = sessions.open_upload("p1", None).unwrap();
        session.add_frame(None, None, Bytes::from_static(b"frame")).unwrap();
        session.end_upload(true);
        {
            let mut inner = session.lock();
            inner.progress.state = SessionState::Failed;
            session.publish(&inner);
        }
        drop(session);
        assert_eq!(sessions.get("p1").unwrap().progress().state, SessionState::Failed, "a lookup keeps the failure");
        let again = sessions.retry("p1").unwrap();
        assert_eq!(again.progress().state, SessionState::Receiving, "rebuilt from its files, to be decided again");
        assert_eq!(again.progress().frames_received, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
