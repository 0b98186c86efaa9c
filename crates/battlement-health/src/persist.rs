//! Atomic snapshot persistence: temporary file in the same directory, fsync, rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `contents` to `path` so that a reader opening `path` sees either the previous file or
/// the complete new one: the bytes go to a fresh temporary file in the same directory (same
/// file system, so the rename is atomic), which is fsynced, then renamed over `path`; the
/// directory is fsynced too (on Unix) so the rename survives a crash. On error the temporary
/// file is removed and `path` is untouched.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn a_concurrent_reader_always_sees_a_complete_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("health.json");
        write_atomic(&path, br#"{"n":0,"pad":""}"#).unwrap();
        let stop = Arc::new(AtomicBool::new(false));

        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut last = 0u64;
                while !stop.load(Ordering::Relaxed) || reads < 100 {
                    let bytes = fs::read(&path).expect("the file always exists");
                    let v: serde_json::Value = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|e| panic!("torn read ({e}): {} bytes", bytes.len()));
                    let n = v["n"].as_u64().unwrap();
                    assert!(n >= last, "went back from {last} to {n}");
                    assert_eq!(v["pad"].as_str().unwrap().len() as u64, n % 5000);
                    last = n;
                    reads += 1;
                }
                reads
            })
        };
        // Documents of very different sizes, so a torn read could not parse.
        for n in 1..=400u64 {
            let doc = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat((n % 5000) as usize));
            write_atomic(&path, doc.as_bytes()).unwrap();
        }
        let big = 4999u64 * 10;
        let doc = format!(
            r#"{{"n":{big},"pad":"{}"}}"#,
            "y".repeat((big % 5000) as usize)
        );
        write_atomic(&path, doc.as_bytes()).unwrap();
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() >= 100);
        // No temporary files are left behind.
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "health.json")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(&dir.path().join("missing/health.json"), b"{}").is_err());
        assert!(write_atomic(Path::new("/"), b"{}").is_err());
        // Renaming over a directory fails: the directory stays and no temp file remains.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"x").unwrap();
        assert!(write_atomic(&target, b"{}").is_err());
        assert!(target.is_dir());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
