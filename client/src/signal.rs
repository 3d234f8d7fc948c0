//! The scoring-box log, which only exists once the phrase's last hit is in: read from a file
//! given at the start, from standard input when the recorder pipes it at the phrase's end, or
//! from a file the recorder writes then (`--signal-after`), awaited while frames stream.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// Where the log comes from.
#[derive(Debug, Clone)]
pub enum SignalSpec {
    /// A file that exists now.
    File(PathBuf),
    /// Standard input, to its end.
    Stdin,
    /// A file that appears when the phrase ends; taken once it is non-empty and has stopped
    /// changing (a recorder that writes it elsewhere and renames it is taken at once).
    After(PathBuf),
}

impl SignalSpec {
    /// `-` is standard input; anything else a file.
    pub fn from_arg(arg: &str) -> SignalSpec {
        if arg == "-" {
            SignalSpec::Stdin
        } else {
            SignalSpec::File(PathBuf::from(arg))
        }
    }
}

/// The log once known: its bytes, or why it could not be had.
pub type SignalState = Option<Result<Bytes, String>>;

/// How often a `--signal-after` file is looked at.
const POLL: Duration = Duration::from_millis(100);

/// Starts getting the log; the receiver holds it once it is in.
pub fn spawn(spec: SignalSpec) -> watch::Receiver<SignalState> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let got = read(spec).await;
        let _ = tx.send(Some(got));
    });
    rx
}

async fn read(spec: SignalSpec) -> Result<Bytes, String> {
    let bytes = match &spec {
        SignalSpec::File(path) => tokio::fs::read(path).await.map_err(|e| format!("cannot read the log {}: {e}", path.display()))?,
        SignalSpec::Stdin => {
            let mut text = Vec::new();
            tokio::io::stdin().read_to_end(&mut text).await.map_err(|e| format!("cannot read the log from standard input: {e}"))?;
            text
        }
        SignalSpec::After(path) => {
            let mut last = None;
            loop {
                let seen = tokio::fs::metadata(path).await.ok().map(|m| (m.len(), m.modified().ok()));
                if matches!(seen, Some((len, _)) if len > 0) && seen == last {
                    break;
                }
                last = seen;
                tokio::time::sleep(POLL).await;
            }
            tokio::fs::read(path).await.map_err(|e| format!("cannot read the log {}: {e}", path.display()))?
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(match spec {
            SignalSpec::Stdin => "the log on standard input is empty".into(),
            SignalSpec::File(p) | SignalSpec::After(p) => format!("the log {} is empty", p.display()),
        });
    }
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_log_written_later_is_awaited() {
        let dir = std::env::temp_dir().join(format!("referee-client-signal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("phrase.txt");
        let _ = std::fs::remove_file(&path);
        let mut rx = spawn(SignalSpec::After(path.clone()));
        assert!(rx.borrow().is_none());
        std::fs::write(&path, b" 0.000s | Phrase recording started\n").unwrap();
        let got = rx.wait_for(Option::is_some).await.unwrap().clone();
        assert_eq!(got.unwrap().unwrap(), Bytes::from_static(b" 0.000s | Phrase recording started\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn an_empty_log_is_an_error() {
        let path = std::env::temp_dir().join(format!("referee-client-empty-{}.txt", std::process::id()));
        std::fs::write(&path, b"\n").unwrap();
        let mut rx = spawn(SignalSpec::File(path.clone()));
        let got = rx.wait_for(Option::is_some).await.unwrap().clone();
        assert!(got.unwrap().unwrap_err().contains("is empty"));
        std::fs::remove_file(&path).unwrap();
    }
}
