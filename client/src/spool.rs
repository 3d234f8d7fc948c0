//! The phrase's frames kept on the laptop's disk as they are captured, so that capture never
//! waits for the network, memory stays one frame whatever the phrase's length, and an upload cut
//! off mid-phrase can be resumed from any frame. Removed when the command ends.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::sync::watch;

/// How far capture has got.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpoolStatus {
    /// Frames stored so far (their indexes are `0..frames`).
    pub frames: u64,
    /// Capture has ended: no more frames will come.
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    offset: u64,
    length: u64,
    timestamp: f64,
}

struct Writer {
    file: File,
    end: u64,
    records: Vec<Record>,
}

/// Captured JPEG frames on disk, numbered from 0 in capture order.
pub struct Spool {
    path: PathBuf,
    reader: File,
    writer: Mutex<Writer>,
    status: watch::Sender<SpoolStatus>,
}

impl Spool {
    /// A new, empty spool file under the system's temp directory.
    pub fn create(tag: &str) -> std::io::Result<Spool> {
        let path = std::env::temp_dir().join(format!("referee-client-{tag}-{}.mjpeg", std::process::id()));
        let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
        let reader = file.try_clone()?;
        let (status, _) = watch::channel(SpoolStatus::default());
        Ok(Spool { path, reader, writer: Mutex::new(Writer { file, end: 0, records: Vec::new() }), status })
    }

    /// Appends one frame (taken at `timestamp` seconds into the phrase).
    pub fn push(&self, jpeg: &[u8], timestamp: f64) -> std::io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.file.write_all(jpeg)?;
        let record = Record { offset: w.end, length: jpeg.len() as u64, timestamp };
        w.end += record.length;
        w.records.push(record);
        let frames = w.records.len() as u64;
        drop(w);
        self.status.send_modify(|s| s.frames = frames);
        Ok(())
    }

    /// Capture has ended.
    pub fn finish(&self) {
        self.status.send_modify(|s| s.done = true);
    }

    /// Follows capture's progress.
    pub fn watch(&self) -> watch::Receiver<SpoolStatus> {
        self.status.subscribe()
    }

    /// Frame `index`: its JPEG bytes and timestamp.
    pub fn frame(&self, index: u64) -> std::io::Result<(Vec<u8>, f64)> {
        let record = {
            let w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            *w.records.get(index as usize).ok_or_else(|| std::io::Error::other(format!("no frame {index} in the spool")))?
        };
        let mut bytes = vec![0u8; record.length as usize];
        self.reader.read_exact_at(&mut bytes, record.offset)?;
        Ok((bytes, record.timestamp))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_as_stored_and_the_file_goes_away() {
        let spool = Spool::create("unit").unwrap();
        let rx = spool.watch();
        spool.push(b"first", 0.0).unwrap();
        spool.push(b"second frame", 0.066).unwrap();
        assert_eq!(*rx.borrow(), SpoolStatus { frames: 2, done: false });
        assert_eq!(spool.frame(1).unwrap(), (b"second frame".to_vec(), 0.066));
        assert_eq!(spool.frame(0).unwrap().0, b"first");
        assert!(spool.frame(2).is_err());
        spool.finish();
        assert!(rx.borrow().done);
        let path = spool.path.clone();
        assert!(path.is_file());
        drop(spool);
        assert!(!path.exists());
    }
}
